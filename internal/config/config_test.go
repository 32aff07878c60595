package config

import (
	"strings"
	"testing"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() does not validate: %v", err)
	}
}

// TestValidateEdges checks each limit at its edge: the last accepted value
// passes and the first refused one is reported under its flag's name.
func TestValidateEdges(t *testing.T) {
	for _, c := range []struct {
		flag      string
		ok, notOK func(*Config)
	}{
		{"cache-size", func(c *Config) { c.CacheBytes = 1 << 20 }, func(c *Config) { c.CacheBytes = 1<<20 - 1 }},
		{"max-frame-bytes", func(c *Config) { c.MaxFrameBytes = 1024 }, func(c *Config) { c.MaxFrameBytes = 1023 }},
		{"max-inflight-per-conn", func(c *Config) { c.MaxInflightPerConn = 1 }, func(c *Config) { c.MaxInflightPerConn = 0 }},
		{"max-inflight-per-conn", func(c *Config) { c.MaxInflightPerConn = 1 << 16 }, func(c *Config) { c.MaxInflightPerConn = 1<<16 + 1 }},
		{"max-frame-bytes", func(c *Config) { c.MaxFrameBytes = 1 << 30 }, func(c *Config) { c.MaxFrameBytes = 1<<30 + 1 }},
		{"max-connections", func(c *Config) { c.MaxConnections = 1 }, func(c *Config) { c.MaxConnections = 0 }},
		{"max-reply-bytes-per-conn", func(c *Config) { c.MaxReplyBytesPerConn = 1 }, func(c *Config) { c.MaxReplyBytesPerConn = 0 }},
		{"max-waiters", func(c *Config) { c.MaxWaiters = 1 }, func(c *Config) { c.MaxWaiters = 0 }},
		{"shutdown-timeout", func(c *Config) { c.ShutdownTimeout = 1 }, func(c *Config) { c.ShutdownTimeout = 0 }},
		{"flush-interval", func(c *Config) { c.FlushInterval = 1 }, func(c *Config) { c.FlushInterval = 0 }},
		{"queue-max-deliveries", func(c *Config) { c.QueueMaxDeliveries = 1 }, func(c *Config) { c.QueueMaxDeliveries = 0 }},
		{"queue-dlq-max", func(c *Config) { c.QueueDLQMax = 1 }, func(c *Config) { c.QueueDLQMax = 0 }},
		{"queue-dedup-hold", func(c *Config) { c.QueueDedupHold = 1 }, func(c *Config) { c.QueueDedupHold = 0 }},
		{"stream-max-streams", func(c *Config) { c.StreamMaxStreams = 1 }, func(c *Config) { c.StreamMaxStreams = 0 }},
		{"stream-max-groups", func(c *Config) { c.StreamMaxGroups = 1 }, func(c *Config) { c.StreamMaxGroups = 0 }},
		{"stream-max-pending", func(c *Config) { c.StreamMaxPending = 1 }, func(c *Config) { c.StreamMaxPending = 0 }},
		{"stream-max-dead-letters", func(c *Config) { c.StreamMaxDeadLetters = 1 }, func(c *Config) { c.StreamMaxDeadLetters = 0 }},
		{"action-max-actions", func(c *Config) { c.ActionMaxActions = 1 }, func(c *Config) { c.ActionMaxActions = 0 }},
		{"action-max-workers", func(c *Config) { c.ActionMaxWorkers = 1 }, func(c *Config) { c.ActionMaxWorkers = 0 }},
		{"action-max-live-runs", func(c *Config) { c.ActionMaxLiveRuns = 1 }, func(c *Config) { c.ActionMaxLiveRuns = 0 }},
	} {
		good := Default()
		c.ok(&good)
		if err := good.Validate(); err != nil {
			t.Errorf("%s: edge value refused: %v", c.flag, err)
		}
		bad := Default()
		c.notOK(&bad)
		err := bad.Validate()
		if err == nil || !strings.Contains(err.Error(), c.flag+":") {
			t.Errorf("%s: past the edge, Validate() = %v, want an error naming %s", c.flag, err, c.flag)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Durability = "sometimes"
	c.CacheBytes = 0
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "durability:") || !strings.Contains(err.Error(), "cache-size:") {
		t.Fatalf("Validate() = %v, want both durability and cache-size reported", err)
	}
}
