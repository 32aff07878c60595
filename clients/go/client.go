// Package flo is the Go client for the flo server.
//
// A Client is safe for use by many goroutines. Ordinary calls share one
// connection and are pipelined: each is written as soon as it is made and
// the replies, which the server sends in request order, are matched back to
// their callers. Blocking calls (those with a Block option) take a
// connection of their own from a small pool, so a long poll never holds up
// other calls, and they are not cut short by Options.Timeout while the
// server is legitimately waiting. A broken connection is re-dialled on the
// next call.
//
// Errors from the server are *wire.Error values; match them with errors.Is
// against ErrNotFound, ErrConflict, ErrBadRequest and the other sentinels.
package flo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/floruntime/flo/wire"
)

// Errors returned by calls, matched with errors.Is. Server errors carry the
// server's message; each status maps to exactly one sentinel.
var (
	ErrNotFound     = wire.ErrNotFound
	ErrBadRequest   = wire.ErrBadRequest
	ErrConflict     = wire.ErrConflict
	ErrUnauthorized = wire.ErrUnauthorized
	ErrOverloaded   = wire.ErrOverloaded
	ErrInternal     = wire.ErrInternal
	// ErrConnection reports that the connection failed before a reply came.
	ErrConnection = errors.New("connection failed")
	// ErrChecksum reports a reply whose CRC32 did not match.
	ErrChecksum = wire.ErrChecksum
	// ErrClosed is returned by calls on a closed Client.
	ErrClosed = errors.New("client closed")
)

// Forever, as a Block option, waits without a time limit; so does any
// other negative Block.
const Forever time.Duration = -1

// DefaultAddr is the address Dial uses when given an empty one.
const DefaultAddr = "localhost:9000"

// Options configures a Client. The zero value is the default.
type Options struct {
	// Namespace is the default namespace of every call ("default").
	Namespace string
	// Timeout bounds a call whose context has no deadline (default 5s).
	// A blocking call gets its Block duration on top.
	Timeout time.Duration
	// DialTimeout bounds connecting (default 5s).
	DialTimeout time.Duration
	// MaxPending bounds pipelined calls in flight on the shared connection
	// (default 1024); further calls wait for room.
	MaxPending int
}

// Client is a connection to a flo server.
type Client struct {
	addr string
	opts Options

	// KV, Queue, Stream, Action and Worker group the calls per primitive.
	KV     *KV
	Queue  *Queue
	Stream *Stream
	Action *Action
	Worker *Worker

	mu     sync.Mutex
	shared *conn              // pipelined connection for ordinary calls
	idle   []*conn            // pooled connections for blocking calls
	busy   map[*conn]struct{} // pooled connections running a blocking call
	closed bool
	slots  chan struct{}
}

// Dial connects to addr ("host:port"; empty means localhost:9000).
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 1024
	}
	c := &Client{addr: addr, opts: opts, slots: make(chan struct{}, opts.MaxPending)}
	c.KV = &KV{c: c}
	c.initPrimitives()
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.shared = cn
	return c, nil
}

// Close closes every connection. Calls in flight fail with ErrConnection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.shared != nil {
		c.shared.close(ErrClosed)
	}
	for _, cn := range c.idle {
		cn.close(ErrClosed)
	}
	c.idle = nil
	for cn := range c.busy {
		cn.close(ErrClosed)
	}
	c.busy = nil
	return nil
}

// Namespace returns the client's default namespace.
func (c *Client) Namespace() string { return c.opts.Namespace }

func (c *Client) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: c.opts.DialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrConnection, c.addr, err)
	}
	return newConn(nc), nil
}

// request is one call to make.
type request struct {
	op        wire.Op
	namespace string
	key       []byte
	value     []byte
	options   wire.Options
	// block is the server-side wait: 0 none, Forever, or a duration.
	block time.Duration
	// blockTag is the option block is sent as (BLOCK_MS when zero).
	blockTag wire.Tag
}

// maxField is the largest namespace, key or options blob a request can
// carry: the envelope gives each a u16 length.
const maxField = 1<<16 - 1

// call sends r and returns the OK payload or the server's error.
func (c *Client) call(ctx context.Context, r request) ([]byte, error) {
	if r.namespace == "" {
		r.namespace = c.opts.Namespace
	}
	// A longer field would wrap its u16 length and the server would read
	// a different request.
	switch {
	case len(r.key) > maxField:
		return nil, fmt.Errorf("%w: key is %d bytes, over the %d a request can carry", ErrBadRequest, len(r.key), maxField)
	case len(r.namespace) > maxField:
		return nil, fmt.Errorf("%w: namespace is %d bytes, over the %d a request can carry", ErrBadRequest, len(r.namespace), maxField)
	case len(r.options) > maxField:
		return nil, fmt.Errorf("%w: options are %d bytes, over the %d a request can carry", ErrBadRequest, len(r.options), maxField)
	}
	if r.block < 0 {
		r.block = Forever // any other negative would go out as 0: forever
	}
	if _, ok := ctx.Deadline(); !ok {
		switch {
		case r.block == Forever, r.block > math.MaxInt64-c.opts.Timeout:
			// No client deadline: the server may wait as long as it likes
			// (a Block too long to add Timeout to is as good as forever).
		default:
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout+max(r.block, 0))
			defer cancel()
		}
	}
	if r.block != 0 {
		return c.callBlocking(ctx, r)
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.slots }()
	cn, err := c.sharedConn(ctx)
	if err != nil {
		return nil, err
	}
	return cn.roundTrip(ctx, r, false)
}

// callBlocking runs r on a pooled connection of its own.
func (c *Client) callBlocking(ctx context.Context, r request) ([]byte, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	var cn *conn
	for len(c.idle) > 0 && cn == nil {
		cn = c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if cn.broken() {
			cn = nil
		}
	}
	c.mu.Unlock()
	if cn == nil {
		var err error
		if cn, err = c.dial(ctx); err != nil {
			return nil, err
		}
	}
	// Close ends the call by closing its connection, which it must know of.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cn.close(ErrClosed)
		return nil, ErrClosed
	}
	if c.busy == nil {
		c.busy = map[*conn]struct{}{}
	}
	c.busy[cn] = struct{}{}
	c.mu.Unlock()
	body, err := cn.roundTrip(ctx, r, true)
	c.mu.Lock()
	delete(c.busy, cn)
	if !c.closed && !cn.broken() && len(c.idle) < 16 {
		c.idle = append(c.idle, cn)
	} else {
		cn.close(ErrClosed)
	}
	c.mu.Unlock()
	return body, err
}

// sharedConn returns the pipelined connection, re-dialling a broken one.
func (c *Client) sharedConn(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.shared != nil && !c.shared.broken() {
		return c.shared, nil
	}
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.shared = cn
	return cn, nil
}

// conn is one TCP connection with a reader goroutine matching replies, in
// order, to the calls waiting for them.
type conn struct {
	nc net.Conn

	// wmu guards the outgoing buffer and the order of pending calls. Frames
	// are appended to out in request order; whichever caller finds no flush
	// in progress writes out (and anything appended meanwhile) with one
	// syscall per round, so concurrent calls share writes (a pipelined
	// caller yields once first, so that more of them do: flushLocked).
	wmu      sync.Mutex
	out      []byte
	spare    []byte
	flushing bool
	nextID   uint64
	scratch  []byte

	pmu     sync.Mutex
	pending []*pendingCall
	err     error // set once the connection is broken
}

type pendingCall struct {
	id   uint64
	done chan struct{}
	body []byte
	err  error
}

func newConn(nc net.Conn) *conn {
	cn := &conn{nc: nc}
	go cn.readLoop()
	return cn
}

func (cn *conn) broken() bool {
	cn.pmu.Lock()
	defer cn.pmu.Unlock()
	return cn.err != nil
}

// close fails every pending call with err and closes the socket.
func (cn *conn) close(err error) {
	cn.pmu.Lock()
	if cn.err == nil {
		cn.err = err
	}
	pending := cn.pending
	cn.pending = nil
	cn.pmu.Unlock()
	cn.nc.Close()
	for _, p := range pending {
		p.err = fmt.Errorf("%w: %w", ErrConnection, err)
		close(p.done)
	}
}

func (cn *conn) roundTrip(ctx context.Context, r request, exclusive bool) ([]byte, error) {
	p := &pendingCall{done: make(chan struct{})}
	opts := r.options
	if r.block != 0 {
		ms := uint32(0) // Forever
		if r.block > 0 {
			// At least 1 ms: 0 on the wire means forever.
			ms = uint32(min(max(r.block.Milliseconds(), 1), 1<<32-1))
		}
		tag := r.blockTag
		if tag == 0 {
			tag = wire.TagBlockMs
		}
		opts = wire.AppendU32(append(wire.Options(nil), opts...), tag, ms)
	}
	cn.wmu.Lock()
	cn.nextID++
	p.id = cn.nextID
	cn.pmu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.pmu.Unlock()
		cn.wmu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrConnection, err)
	}
	cn.pending = append(cn.pending, p)
	others := len(cn.pending) > 1
	cn.pmu.Unlock()
	cn.scratch = wire.AppendRequest(cn.scratch[:0], &wire.Request{Namespace: r.namespace, Key: r.key, Value: r.value, Options: opts})
	cn.out = wire.AppendFrame(cn.out, p.id, byte(r.op), cn.scratch)
	if cap(cn.scratch) > maxKeptBuffer {
		cn.scratch = nil
	}
	deadline, _ := ctx.Deadline()
	if err := cn.flushLocked(deadline, others); err != nil {
		cn.close(err)
	}
	select {
	case <-p.done:
		return p.body, p.err
	case <-ctx.Done():
		if exclusive {
			// The server still holds this call; the connection cannot be
			// reused for another.
			cn.close(ctx.Err())
		}
		return nil, ctx.Err()
	}
}

// maxKeptBuffer is the largest write buffer a connection keeps for reuse;
// a larger one (a big value) is dropped after use.
const maxKeptBuffer = 1 << 20

// flushLocked writes the outgoing buffer unless another caller is already
// doing so (that caller will pick up what we appended). It is entered with
// wmu held and returns with wmu released. When other calls are waiting on
// the connection (others), it is in pipelined use and more callers are
// likely about to append: it yields once before writing, so that those
// runnable now share this write (as the Python SDK writes once per event
// loop turn) rather than each paying a system call on both sides. A lone
// call writes at once. A write still held back by the socket at deadline
// (the server stopped reading) is finished by a goroutine of its own, so
// the caller can give up at its deadline while its frames, and those
// appended after them, still go out in order.
func (cn *conn) flushLocked(deadline time.Time, others bool) error {
	if cn.flushing {
		cn.wmu.Unlock()
		return nil
	}
	cn.flushing = true
	if others {
		cn.wmu.Unlock()
		runtime.Gosched()
		cn.wmu.Lock()
	}
	buf := cn.out
	cn.out = cn.spare[:0]
	cn.wmu.Unlock()
	return cn.flush(buf, 0, deadline)
}

// flush writes buf[off:], then whatever was appended to out meanwhile,
// until out is empty; it is the only writer (flushing is set).
func (cn *conn) flush(buf []byte, off int, deadline time.Time) error {
	_ = cn.nc.SetWriteDeadline(deadline)
	for {
		n, err := cn.nc.Write(buf[off:])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			go func() {
				if err := cn.flush(buf, off+n, time.Time{}); err != nil {
					cn.close(err)
				}
			}()
			return nil
		}
		cn.wmu.Lock()
		if cap(buf) <= maxKeptBuffer {
			cn.spare = buf[:0]
		} else {
			cn.spare = nil
		}
		if err != nil || len(cn.out) == 0 {
			if err != nil {
				cn.out = cn.out[:0]
			}
			cn.flushing = false
			cn.wmu.Unlock()
			return err
		}
		buf, off = cn.out, 0
		cn.out = cn.spare[:0]
		cn.wmu.Unlock()
	}
}

func (cn *conn) readLoop() {
	br := bufio.NewReaderSize(cn.nc, 64<<10)
	for {
		f, _, err := wire.ReadFrame(br, nil, 1<<31-1)
		if err != nil {
			cn.close(err)
			return
		}
		cn.pmu.Lock()
		if len(cn.pending) == 0 {
			cn.pmu.Unlock()
			cn.close(fmt.Errorf("unexpected reply with request id %d", f.RequestID))
			return
		}
		p := cn.pending[0]
		cn.pending = cn.pending[1:]
		cn.pmu.Unlock()
		if f.RequestID != p.id {
			p.err = fmt.Errorf("%w: reply for request %d arrived for request %d", ErrConnection, f.RequestID, p.id)
			close(p.done)
			cn.close(p.err)
			return
		}
		status := wire.Status(f.Code)
		if status == wire.StatusOK {
			p.body = f.Payload
		} else {
			p.err = &wire.Error{Status: status, Message: messageOf(status, f.Payload)}
		}
		close(p.done)
	}
}

func messageOf(s wire.Status, payload []byte) string {
	if len(payload) > 0 {
		return string(payload)
	}
	return s.String()
}
