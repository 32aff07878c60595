// Package config holds the server configuration: one struct, documented
// defaults, and validation that reports every problem at once. A flag, an
// environment variable and a field share one name: --data-dir, FLO_DATA_DIR.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/floruntime/flo/internal/action"
	"github.com/floruntime/flo/internal/queue"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/internal/stream"
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
	// MaxInflightPerConn bounds requests started but not yet answered on one
	// connection; at the limit the server stops reading that connection
	// (default 1024, at most MaxInflightPerConnLimit: each connection
	// reserves a queue of this length when it opens).
	MaxInflightPerConn int
	// MaxReplyBytesPerConn bounds the bytes of answered requests' replies a
	// connection holds while its client has not read them; at the limit the
	// server stops reading that connection (default 64 MiB). One reply may
	// exceed it on its own.
	MaxReplyBytesPerConn int
	// MaxWaiters bounds blocked calls server-wide (default 100000).
	MaxWaiters int
	// ShutdownTimeout bounds how long a graceful stop waits for in-flight
	// requests (default 10s).
	ShutdownTimeout time.Duration

	// Primitive limits. They change what Apply decides, so every node of a
	// cluster must use the same values.

	// QueueMaxDeliveries moves a message to the DLQ after this many
	// deliveries (default 5); QueueDLQMax caps each DLQ, evicting the
	// oldest (default 10000); QueueDedupHold is the least time a dedup key
	// is held (default 5m).
	QueueMaxDeliveries int
	QueueDLQMax        int
	QueueDedupHold     time.Duration
	// StreamMaxStreams bounds streams server-wide (default 1000000),
	// StreamMaxGroups consumer groups per stream (default 1000),
	// StreamMaxPending a group's pending entries (default 100000) and
	// StreamMaxDeadLetters a group's dead-letter list (default 10000).
	StreamMaxStreams     int
	StreamMaxGroups      int
	StreamMaxPending     int
	StreamMaxDeadLetters int
	// ActionMaxActions, ActionMaxWorkers and ActionMaxLiveRuns bound
	// registered actions, workers and unfinished runs server-wide
	// (defaults 100000, 100000, 2000000).
	ActionMaxActions  int
	ActionMaxWorkers  int
	ActionMaxLiveRuns int
}

// Defaults of the server limits; the server and the node fall back to them
// when a field is zero. (The primitives own their limits' defaults.)
const (
	DefaultMaxConnections       = 10_000
	DefaultMaxInflightPerConn   = 1024
	DefaultMaxReplyBytesPerConn = 64 << 20
	DefaultMaxWaiters           = 100_000
)

// MaxInflightPerConnLimit is the largest MaxInflightPerConn accepted.
const MaxInflightPerConnLimit = 1 << 16

// Default returns a valid configuration with every default filled in.
func Default() Config {
	ql, sl := queue.DefaultLimits(), stream.DefaultLimits()
	return Config{
		Listen:               ":9000",
		DataDir:              "flo-data",
		Durability:           "sync",
		FlushInterval:        time.Second,
		LogFormat:            "text",
		LogLevel:             "info",
		CacheBytes:           storage.DefaultCacheBytes,
		MaxFrameBytes:        wire.DefaultMaxPayloadBytes,
		MaxConnections:       DefaultMaxConnections,
		MaxInflightPerConn:   DefaultMaxInflightPerConn,
		MaxReplyBytesPerConn: DefaultMaxReplyBytesPerConn,
		MaxWaiters:           DefaultMaxWaiters,
		ShutdownTimeout:      10 * time.Second,

		// The primitives own their limits' defaults.
		QueueMaxDeliveries:   ql.MaxDeliveries,
		QueueDLQMax:          ql.DLQMax,
		QueueDedupHold:       ql.DedupHold,
		StreamMaxStreams:     sl.MaxStreams,
		StreamMaxGroups:      sl.MaxGroupsPerStream,
		StreamMaxPending:     sl.MaxPendingPerGroup,
		StreamMaxDeadLetters: sl.MaxDeadLetters,
		ActionMaxActions:     action.DefaultMaxActions,
		ActionMaxWorkers:     action.DefaultMaxWorkers,
		ActionMaxLiveRuns:    action.DefaultMaxLiveRuns,
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
	if c.MaxInflightPerConn < 1 || c.MaxInflightPerConn > MaxInflightPerConnLimit {
		bad("max-inflight-per-conn: %d is outside 1..%d", c.MaxInflightPerConn, MaxInflightPerConnLimit)
	}
	if c.MaxReplyBytesPerConn < 1 {
		bad("max-reply-bytes-per-conn: must be at least 1")
	}
	if c.MaxWaiters < 1 {
		bad("max-waiters: must be at least 1")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout: must be positive")
	}
	for _, l := range []struct {
		name string
		v    int
	}{
		{"queue-max-deliveries", c.QueueMaxDeliveries}, {"queue-dlq-max", c.QueueDLQMax},
		{"stream-max-streams", c.StreamMaxStreams}, {"stream-max-groups", c.StreamMaxGroups},
		{"stream-max-pending", c.StreamMaxPending}, {"stream-max-dead-letters", c.StreamMaxDeadLetters},
		{"action-max-actions", c.ActionMaxActions}, {"action-max-workers", c.ActionMaxWorkers},
		{"action-max-live-runs", c.ActionMaxLiveRuns},
	} {
		if l.v < 1 {
			bad("%s: must be at least 1", l.name)
		}
	}
	if c.QueueDedupHold <= 0 {
		bad("queue-dedup-hold: must be positive")
	}
	return errors.Join(errs...)
}
