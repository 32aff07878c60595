package flo_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// valueFor is the value written at key: long enough to span pages, and
// derived from the key so a half-applied write cannot pass for a whole one.
func valueFor(key string) []byte {
	return bytes.Repeat([]byte(key+"|"), 64)
}

// TestKV_AcknowledgedWritesSurviveKill9 writes from several connections in
// sync mode, SIGKILLs the server mid-stream, restarts it on the same data
// directory and checks every acknowledged write, that nothing is
// half-applied, and that a TTL set before the crash expires at its original
// time.
func TestKV_AcknowledgedWritesSurviveKill9(t *testing.T) {
	t.Parallel()
	p := flotest.StartProcess(t, "", "--durability", "sync")
	ctx := context.Background()
	setup := flotest.Dial(t, p.Addr, flo.Options{})
	const ttl = 3 * time.Second
	ttlSetAt := time.Now()
	if _, err := setup.KV.Put(ctx, "ttl-key", []byte("t"), &flo.PutOptions{TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.KV.Put(ctx, "versioned", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}

	const writers = 8
	var (
		mu      sync.Mutex
		acked   []string
		attempt atomic.Int64
		wg      sync.WaitGroup
	)
	for w := 0; w < writers; w++ {
		c := flotest.Dial(t, p.Addr, flo.Options{Timeout: 2 * time.Second})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key := fmt.Sprintf("w%d-%06d", w, i)
				attempt.Add(1)
				if _, err := c.KV.Put(ctx, key, valueFor(key), nil); err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked = append(acked, key)
				mu.Unlock()
			}
		}()
	}
	waitUntil(t, 20*time.Second, "writes in flight", func() bool { return attempt.Load() > 2000 })
	p.Kill()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}

	p2 := flotest.StartProcess(t, p.DataDir)
	c := flotest.Dial(t, p2.Addr, flo.Options{})
	for _, key := range acked {
		v, err := c.KV.Get(ctx, key, nil)
		if err != nil || !bytes.Equal(v, valueFor(key)) {
			t.Fatalf("acknowledged %s lost after kill -9: %q, %v", key, v, err)
		}
	}
	// Nothing half-applied: every key present (acknowledged or not) is whole.
	o := &flo.ScanOptions{Limit: 1000}
	total := 0
	for {
		res, err := c.KV.Scan(ctx, "w", o)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Entries {
			total++
			if !bytes.Equal(e.Value, valueFor(e.Key)) {
				t.Fatalf("half-applied write at %s", e.Key)
			}
		}
		if !res.HasMore {
			break
		}
		o.Cursor = res.Cursor
	}
	if total < len(acked) {
		t.Fatalf("scan found %d keys, %d were acknowledged", total, len(acked))
	}
	t.Logf("%d writes acknowledged, %d present after restart", len(acked), total)
	// Versions continue where they were.
	if v, err := c.KV.Put(ctx, "versioned", []byte("2"), nil); err != nil || v != 2 {
		t.Fatalf("version after restart = %d, %v", v, err)
	}
	// The TTL keeps its absolute expiry across the restart.
	expiry := ttlSetAt.Add(ttl)
	if time.Until(expiry) > 500*time.Millisecond {
		if v, _ := c.KV.Get(ctx, "ttl-key", nil); string(v) != "t" {
			t.Fatal("TTL key vanished before its expiry")
		}
	}
	waitUntil(t, 10*time.Second, "ttl expiry", func() bool {
		v, err := c.KV.Get(ctx, "ttl-key", nil)
		return err == nil && v == nil
	})
	if gone := time.Now(); gone.Before(expiry.Add(-50 * time.Millisecond)) {
		t.Fatalf("TTL key expired at %v, before its original expiry %v", gone, expiry)
	}
}

// TestKV_GracefulStopExitsZeroAndKeepsData stops the binary with SIGINT.
func TestKV_GracefulStopExitsZeroAndKeepsData(t *testing.T) {
	t.Parallel()
	p := flotest.StartProcess(t, "", "--durability", "interval", "--flush-interval", "10s")
	ctx := context.Background()
	c := flotest.Dial(t, p.Addr, flo.Options{})
	if _, err := c.KV.Put(ctx, "k", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	// Interval mode with a long interval: the clean stop still synced.
	p2 := flotest.StartProcess(t, p.DataDir)
	if v, err := flotest.Dial(t, p2.Addr, flo.Options{}).KV.Get(ctx, "k", nil); err != nil || string(v) != "v" {
		t.Fatalf("after graceful stop: %q, %v", v, err)
	}
}
