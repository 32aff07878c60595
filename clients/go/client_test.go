package flo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// Close fails a blocking call in flight, as it does a pipelined one: the
// call's pooled connection is closed too, so a Forever wait returns.
func TestClient_CloseEndsBlockingCallsInFlight(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	c, err := flo.Dial(context.Background(), srv.Addr, flo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Queue.Dequeue(context.Background(), "empty", 1, &flo.QueueDequeueOptions{Block: flo.Forever})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // parked on the server
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, flo.ErrConnection) && !errors.Is(err, flo.ErrClosed) {
			t.Fatalf("dequeue after Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a blocking dequeue kept waiting after Close")
	}
}

// TestClient_NegativeOrHugeBlockWaitsForever: a negative Block other than
// Forever waits without limit, as Forever does (and as the CLI's --block
// -1s does) — it went out as 0 (forever) on the wire while the client gave
// up after Options.Timeout; a Block too long to add Timeout to waits too —
// the sum wrapped negative and the call failed at once.
func TestClient_NegativeOrHugeBlockWaitsForever(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	ctx := context.Background()
	for _, block := range []time.Duration{-time.Second, time.Duration(math.MaxInt64)} {
		c := srv.Client(t, flo.Options{Timeout: 200 * time.Millisecond})
		key := fmt.Sprint("later", block)
		type result struct {
			v   []byte
			err error
		}
		got := make(chan result, 1)
		go func() {
			v, err := c.KV.Get(ctx, key, &flo.GetOptions{Block: block})
			got <- result{v, err}
		}()
		time.Sleep(time.Second) // well past the client timeout
		if _, err := srv.Client(t, flo.Options{}).KV.Put(ctx, key, []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		if r := <-got; r.err != nil || string(r.v) != "v" {
			t.Fatalf("get with Block %v = %q, %v; want the value put later", block, r.v, r.err)
		}
	}
}

// stallProxy is a TCP proxy in front of addr that stops reading what the
// client sends while stalled, as a stopped or partitioned server does.
type stallProxy struct {
	addr    string
	mu      sync.Mutex
	stalled bool
	resumed *sync.Cond
}

func startStallProxy(t *testing.T, addr string) *stallProxy {
	t.Helper()
	p := &stallProxy{}
	p.resumed = sync.NewCond(&p.mu)
	t.Cleanup(p.resume)
	p.addr = startProxy(t, addr, func(from io.Reader, to io.Writer) error {
		buf := make([]byte, 32<<10)
		for {
			p.mu.Lock()
			for p.stalled {
				p.resumed.Wait()
			}
			p.mu.Unlock()
			n, err := from.Read(buf)
			if n > 0 {
				if _, werr := to.Write(buf[:n]); werr != nil {
					return werr
				}
			}
			if err != nil {
				return err
			}
		}
	})
	return p
}

// startProxy listens on a free port and connects each client it accepts
// to addr: the server's bytes go back as they come, the client's go
// through forward, and the server side closes when forward returns. It
// returns the proxy's address.
func startProxy(t *testing.T, addr string, forward func(from io.Reader, to io.Writer) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			sc, err := net.Dial("tcp", addr)
			if err != nil {
				cc.Close()
				return
			}
			t.Cleanup(func() { cc.Close(); sc.Close() })
			go func() { _, _ = io.Copy(cc, sc) }()
			go func() {
				_ = forward(cc, sc)
				sc.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

func (p *stallProxy) resume() {
	p.mu.Lock()
	p.stalled = false
	p.resumed.Broadcast()
	p.mu.Unlock()
}

// A call whose write the socket holds back (the server stopped reading)
// fails at its deadline instead of waiting for the socket; its frames still
// go out when the server reads again, and the connection stays in step.
func TestClient_StalledWriteFailsAtItsDeadline(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	p := startStallProxy(t, srv.Addr)
	c := flotest.Dial(t, p.addr, flo.Options{Timeout: 500 * time.Millisecond})
	ctx := context.Background()
	// Calls other than the stalled put get generous deadlines of their own:
	// a 16 MiB value takes a while on a slow machine.
	slow, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := c.KV.Put(slow, "small", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	p.stall()
	done := make(chan error, 1)
	go func() {
		// 16 MiB cannot all fit in the socket buffers: the write stalls.
		_, err := c.KV.Put(ctx, "big", bytes.Repeat([]byte("x"), 16<<20), nil)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("put to a stalled server: %v, want a deadline error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a put to a stalled server outlived its deadline by far")
	}
	p.resume()
	waitUntil(t, time.Minute, "the big put to land", func() bool {
		v, err := c.KV.Get(slow, "big", nil)
		return err == nil && len(v) == 16<<20
	})
	if v, err := c.KV.Get(slow, "small", nil); err != nil || string(v) != "1" {
		t.Fatalf("get after the stall = %q, %v", v, err)
	}
}
