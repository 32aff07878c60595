package flo

import (
	"bufio"
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floruntime/flo/wire"
)

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestConn_PipelinedCallsShareAWrite: calls issued together on one
// connection go out in a write or two, not one each: the caller that writes
// while others are waiting yields once first, so that the frames of the
// calls runnable then join its write. One P makes that order the
// scheduler's run queue.
func TestConn_PipelinedCallsShareAWrite(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // answers every request with an empty OK
		sc, err := ln.Accept()
		if err != nil {
			return
		}
		defer sc.Close()
		br := bufio.NewReader(sc)
		for {
			f, _, err := wire.ReadFrame(br, nil, 1<<20)
			if err != nil {
				return
			}
			if _, err := sc.Write(wire.AppendFrame(nil, f.RequestID, byte(wire.StatusOK), nil)); err != nil {
				return
			}
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{Conn: nc}
	cn := newConn(cc)
	defer cn.close(errors.New("test over"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const calls = 16
	var wg sync.WaitGroup
	for range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cn.roundTrip(ctx, request{op: wire.OpPing}, false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := cc.writes.Load(); n > calls/4 {
		t.Fatalf("%d concurrent calls took %d writes; want them to share a few", calls, n)
	}
}
