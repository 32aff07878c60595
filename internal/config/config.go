// Package config holds the server configuration: one struct, documented
// defaults, and validation that reports every problem at once. A flag, an
// environment variable and a field share one name: --data-dir, FLO_DATA_DIR.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/floruntime/flo/wire"
)

// Config is the whole server configuration.
type Config struct {
	// Listen is the client address (default ":9000"). Port 0 picks a free
	// port; ReadyFile then tells which.
	Listen string
	// DataDir holds all durable state (default "flo-data").
	DataDir string
	// Durability is "sync" (ack after fsync, group commit; default) or
	// "interval" (ack after apply, fsync every FlushInterval).
	Durability string
	// FlushInterval is the fsync period in interval mode (default 1s).
	FlushInterval time.Duration
	// ReadyFile, if set, receives the bound address once the server listens.
	ReadyFile string
	// LogFormat is "text" or "json"; LogLevel is debug, info, warn or error.
	LogFormat string
	LogLevel  string
	// CacheBytes sizes the storage block cache (default 256 MiB).
	CacheBytes int64
	// MaxFrameBytes bounds a request payload (default 16 MiB + 192 KiB).
	MaxFrameBytes int
	// MaxConnections bounds open client connections (default 10000).
	MaxConnections int
	// MaxInflightPerConn bounds requests read but not yet answered on one
	// connection; past it the server stops reading that connection (default 1024).
	MaxInflightPerConn int
	// MaxWaiters bounds blocked calls server-wide (default 100000).
	MaxWaiters int
	// ShutdownTimeout bounds how long a graceful stop waits for in-flight
	// requests (default 10s).
	ShutdownTimeout time.Duration
}

// Default returns a valid configuration with every default filled in.
func Default() Config {
	return Config{
		Listen:             ":9000",
		DataDir:            "flo-data",
		Durability:         "sync",
		FlushInterval:      time.Second,
		LogFormat:          "text",
		LogLevel:           "info",
		CacheBytes:         256 << 20,
		MaxFrameBytes:      wire.DefaultMaxPayloadBytes,
		MaxConnections:     10_000,
		MaxInflightPerConn: 1024,
		MaxWaiters:         100_000,
		ShutdownTimeout:    10 * time.Second,
	}
}

// Validate reports every invalid field at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Listen == "" {
		bad("listen: must not be empty")
	}
	if c.DataDir == "" {
		bad("data-dir: must not be empty")
	}
	if c.Durability != "sync" && c.Durability != "interval" {
		bad("durability: %q is not sync or interval", c.Durability)
	}
	if c.FlushInterval <= 0 {
		bad("flush-interval: must be positive")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format: %q is not text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level: %q is not debug, info, warn or error", c.LogLevel)
	}
	if c.CacheBytes < 1<<20 {
		bad("cache-size: %d is under 1 MiB", c.CacheBytes)
	}
	if c.MaxFrameBytes < 1024 || c.MaxFrameBytes > 1<<30 {
		bad("max-frame-bytes: %d is outside 1024..1073741824", c.MaxFrameBytes)
	}
	if c.MaxConnections < 1 {
		bad("max-connections: must be at least 1")
	}
	if c.MaxInflightPerConn < 1 {
		bad("max-inflight-per-conn: must be at least 1")
	}
	if c.MaxWaiters < 1 {
		bad("max-waiters: must be at least 1")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout: must be positive")
	}
	return errors.Join(errs...)
}
