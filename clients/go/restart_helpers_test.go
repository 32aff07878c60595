package flo_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floruntime/flo/flotest"
)

// freeAddr returns a loopback address with a port nobody listens on now, so
// a server can be started on it, killed and started again on it.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// pinnedServer is a flo process that is always started on the same address.
type pinnedServer struct {
	t    *testing.T
	addr string
	p    *flotest.Process
}

func startPinned(t *testing.T) *pinnedServer {
	t.Helper()
	s := &pinnedServer{t: t, addr: freeAddr(t)}
	s.p = flotest.StartProcess(t, "", "--listen", s.addr)
	if s.p.Addr != s.addr {
		t.Fatalf("server listens on %s, want %s", s.p.Addr, s.addr)
	}
	return s
}

// restart SIGKILLs the server, calls during (while it is down) and starts
// it again on the same address and data directory.
func (s *pinnedServer) restart(during func()) {
	s.t.Helper()
	s.p.Kill()
	if during != nil {
		during()
	}
	s.p = flotest.StartProcess(s.t, s.p.DataDir, "--listen", s.addr)
	if s.p.Addr != s.addr {
		s.t.Fatalf("restarted server listens on %s, want %s", s.p.Addr, s.addr)
	}
}

// settleWait bounds the waits of the restart tests: generous, since a
// restart under -race on a busy machine takes a while.
const settleWait = time.Minute

// errLog collects what a helper reports through OnError.
type errLog struct {
	mu   sync.Mutex
	errs []error
	n    atomic.Int64
}

func (l *errLog) add(err error) {
	if err == nil {
		panic("OnError called with nil")
	}
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
	l.n.Add(1)
}

// count returns how many reported errors contain substr and wrap target
// (nil: any).
func (l *errLog) count(substr string, target error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, err := range l.errs {
		if strings.Contains(err.Error(), substr) && (target == nil || errors.Is(err, target)) {
			n++
		}
	}
	return n
}

func (l *errLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for i, err := range l.errs {
		if i == 20 {
			fmt.Fprintf(&b, "... and %d more\n", len(l.errs)-i)
			break
		}
		fmt.Fprintln(&b, err)
	}
	return b.String()
}

// tally counts, from handler goroutines, how often each item was handled.
type tally[K comparable] struct {
	mu sync.Mutex
	n  map[K]int
}

func (c *tally[K]) add(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[K]int{}
	}
	c.n[k]++
}

// get returns how often k was handled.
func (c *tally[K]) get(k K) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// distinct returns how many items were handled at least once.
func (c *tally[K]) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

// checkOutage fails if a helper reported more than maxOutageErrors failed
// polls around one restart, and logs what it reported.
func checkOutage(t *testing.T, outage int, what string, errs *errLog) {
	t.Helper()
	if outage > maxOutageErrors {
		t.Errorf("%d failed %s reported around one restart: no backoff?\n%s", outage, what, errs.String())
	}
	t.Logf("%d errors reported, %d failed %s at restart", errs.n.Load(), outage, what)
}

// maxOutageErrors bounds the failed polls a helper may report while the
// server is down for the few hundred milliseconds a restart takes: with a
// backoff that starts at 50 ms and doubles there are a handful; a loop
// retrying without one would report thousands.
const maxOutageErrors = 100

// runBackground runs f in a goroutine and returns a channel with its
// result.
func runBackground(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func stillRunning(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned early: %v", what, err)
	default:
	}
}

func waitReturn(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not return after cancel", what)
	}
}
