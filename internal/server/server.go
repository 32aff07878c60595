// Package server is the TCP front end: the accept loop, one reader and one
// writer goroutine per connection, frame decoding and validation, and the
// ordering of replies. It turns frames into commands for the node and never
// touches storage.
//
// Ordering: requests on a connection may be in flight together (pipelining),
// but replies leave in request order, as v1 clients require. Writes are
// handed to the node in arrival order, so the journal applies them in that
// order; a read that follows a write on the same connection waits for that
// write, so a connection always reads its own writes.
package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/internal/node"
	"github.com/floruntime/flo/wire"
)

// Options configures a Server.
type Options struct {
	MaxFrameBytes        int
	MaxConnections       int
	MaxInflightPerConn   int
	MaxReplyBytesPerConn int
	ShutdownTimeout      time.Duration
	Logger               *slog.Logger
}

// OptionsFrom takes the server's settings from cfg.
func OptionsFrom(cfg config.Config, log *slog.Logger) Options {
	return Options{
		MaxFrameBytes:        cfg.MaxFrameBytes,
		MaxConnections:       cfg.MaxConnections,
		MaxInflightPerConn:   cfg.MaxInflightPerConn,
		MaxReplyBytesPerConn: cfg.MaxReplyBytesPerConn,
		ShutdownTimeout:      cfg.ShutdownTimeout,
		Logger:               log,
	}
}

// Server accepts client connections and serves them through a node.
type Server struct {
	node *node.Node
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	closing  bool
	connsWG  sync.WaitGroup
	acceptWG sync.WaitGroup
}

// New returns a server for n.
func New(n *node.Node, o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = wire.DefaultMaxPayloadBytes
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = config.DefaultMaxConnections
	}
	if o.MaxInflightPerConn <= 0 {
		o.MaxInflightPerConn = config.DefaultMaxInflightPerConn
	}
	if o.MaxReplyBytesPerConn <= 0 {
		o.MaxReplyBytesPerConn = config.DefaultMaxReplyBytesPerConn
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	return &Server{node: n, opts: o, log: o.Logger, conns: make(map[*conn]struct{})}
}

// Listen binds addr and starts serving in the background. It returns the
// bound address (useful with port 0).
func (s *Server) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.acceptWG.Add(1)
	go s.acceptLoop(ln)
	return ln.Addr(), nil
}

// WriteReadyFile writes addr to path atomically, so a reader never sees a
// partial address.
func WriteReadyFile(path string, addr net.Addr) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(addr.String()+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.acceptWG.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (e.g. out of file descriptors): back off.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.mu.Lock()
		if s.closing || len(s.conns) >= s.opts.MaxConnections {
			full := !s.closing
			s.mu.Unlock()
			if full {
				s.log.Warn("connection refused: limit reached", "max_connections", s.opts.MaxConnections)
				refuse(nc, "too many connections")
			} else {
				nc.Close()
			}
			continue
		}
		c := newConn(s, nc)
		s.conns[c] = struct{}{}
		s.connsWG.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// refuse answers OVERLOADED on a connection we will not serve, then closes it.
func refuse(nc net.Conn, msg string) {
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = nc.Write(wire.AppendFrame(nil, 0, byte(wire.StatusOverloaded), []byte(msg)))
	nc.Close()
}

// Shutdown stops accepting, stops reading new requests, lets in-flight ones
// finish (parked blocking calls are answered empty) and closes every
// connection, waiting at most the shutdown timeout.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.closing = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.stopReading()
		// Parked calls end now, not when the reader notices the deadline:
		// a reader waiting for room in a full in-flight queue behind a
		// parked call would otherwise never get there.
		c.cancel()
	}
	s.mu.Unlock()
	s.acceptWG.Wait()
	done := make(chan struct{})
	go func() { s.connsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.opts.ShutdownTimeout):
		s.log.Warn("shutdown timeout: closing connections with requests in flight")
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connsWG.Done()
}

// slot is one reply position on a connection.
type slot struct {
	c          *conn
	requestID  uint64
	done       chan struct{}
	status     wire.Status
	body       []byte
	closeAfter bool
}

func (c *conn) newSlot(id uint64) *slot { return &slot{c: c, requestID: id, done: make(chan struct{})} }

func (sl *slot) complete(r command.Result) {
	sl.status, sl.body = wire.StatusOf(r.Err), r.Body
	if r.Err != nil {
		sl.body = []byte(wire.TruncateMessage(r.Err.Error()))
	}
	sl.c.holdReply(len(sl.body))
	close(sl.done)
}

func (sl *slot) isDone() bool {
	select {
	case <-sl.done:
		return true
	default:
		return false
	}
}

type conn struct {
	s      *Server
	nc     net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	// slots are the requests in flight, in arrival order: at most
	// MaxInflightPerConn, counting the one the writer waits on. The reader
	// stops reading while it cannot add one.
	slots chan *slot
	log   *slog.Logger
	// lastWrite is the newest write not known to be done; owned by the reader.
	lastWrite *slot

	// unsent is the size of the bodies of answered requests not yet handed
	// to the socket; the reader waits while it is at MaxReplyBytesPerConn.
	unsentMu   sync.Mutex
	unsentCond sync.Cond
	unsent     int
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		s:      s,
		nc:     nc,
		ctx:    ctx,
		cancel: cancel,
		// The writer holds the slot it waits on; the channel the rest.
		slots: make(chan *slot, s.opts.MaxInflightPerConn-1),
		log:   s.log.With("remote", nc.RemoteAddr().String()),
	}
	c.unsentCond.L = &c.unsentMu
	return c
}

// holdReply counts n bytes of a reply waiting to be written.
func (c *conn) holdReply(n int) {
	c.unsentMu.Lock()
	c.unsent += n
	c.unsentMu.Unlock()
}

// releaseReply uncounts n bytes of a reply the writer is done with.
func (c *conn) releaseReply(n int) {
	c.unsentMu.Lock()
	c.unsent -= n
	c.unsentMu.Unlock()
	c.unsentCond.Broadcast()
}

// waitForReplyRoom returns once the replies waiting to be written are under
// MaxReplyBytesPerConn: a client that does not read what it asked for stops
// being read, instead of making the server hold every answer.
func (c *conn) waitForReplyRoom() {
	c.unsentMu.Lock()
	for c.unsent >= c.s.opts.MaxReplyBytesPerConn {
		c.unsentCond.Wait()
	}
	c.unsentMu.Unlock()
}

// stopReading makes the reader return at its next read, as for a shutdown.
func (c *conn) stopReading() { _ = c.nc.SetReadDeadline(time.Now()) }

func (c *conn) serve() {
	defer c.s.removeConn(c)
	c.log.Debug("connection opened")
	writerDone := make(chan struct{})
	go c.writeLoop(writerDone)
	c.readLoop()
	// No more requests: parked calls of this connection end now.
	c.cancel()
	close(c.slots)
	<-writerDone
	c.nc.Close()
	c.log.Debug("connection closed")
}

func (c *conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		c.waitForReplyRoom()
		// Each frame gets its own buffer: commands keep slices of it until
		// the journal has applied them.
		f, _, err := wire.ReadFrame(br, nil, uint32(c.s.opts.MaxFrameBytes))
		if err == nil && f.Flags != 0 {
			// A v1 request has bytes 22–23 = 00 00 (PROTOCOL.md, telling v1
			// from v2). Upstream's flag bits (compressed, streaming, no_ack)
			// change what a frame means; serving it as if they were clear
			// would answer something else than was asked.
			err = fmt.Errorf("%w: 0x%02x", wire.ErrBadFlags, f.Flags)
		}
		if err != nil {
			if isFrameError(err) {
				c.log.Info("malformed frame; closing connection", "err", err)
				sl := c.newSlot(0)
				sl.closeAfter = true
				sl.complete(command.Fail(wire.Errorf(wire.StatusBadRequest, "Invalid request: %v", err)))
				c.slots <- sl
			}
			return
		}
		c.dispatch(f)
	}
}

func isFrameError(err error) bool {
	return errors.Is(err, wire.ErrBadMagic) || errors.Is(err, wire.ErrBadVersion) ||
		errors.Is(err, wire.ErrBadReserved) || errors.Is(err, wire.ErrChecksum) ||
		errors.Is(err, wire.ErrTooLarge) || errors.Is(err, wire.ErrBadFlags)
}

func (c *conn) dispatch(f wire.Frame) {
	sl := c.newSlot(f.RequestID)
	c.slots <- sl
	op := wire.Op(f.Code)
	if op == wire.OpPing {
		sl.complete(command.Reply([]byte("PONG")))
		return
	}
	req, err := wire.DecodeRequest(f.Payload)
	if err != nil {
		sl.complete(command.Fail(wire.Errorf(wire.StatusBadRequest, "malformed request envelope: %v", err)))
		return
	}
	ns, err := namespace(req.Namespace)
	if err != nil {
		sl.complete(command.Fail(err))
		return
	}
	cmd := &command.Command{Op: command.Op(op), Namespace: ns, Key: req.Key, Value: req.Value, Options: req.Options}
	var block node.Block
	if ms, ok := req.Options.Uint(wire.TagBlockMs); ok {
		block = node.Block{Enabled: true, For: blockFor(ms)}
	}
	if op == wire.OpActionInvoke {
		if ms, ok := req.Options.Uint(wire.TagInvokeWaitMs); ok {
			c.lastWrite = sl
			c.invokeAndWait(sl, cmd, blockFor(ms))
			return
		}
	}
	h, known := c.s.node.Handler(op)
	if known && h.Kind == command.Write {
		c.lastWrite = sl
		c.s.node.Do(c.ctx, cmd, block, sl.complete)
		return
	}
	if prev := c.lastWrite; prev != nil && !prev.isDone() {
		// Read your own writes: wait for this connection's last write.
		go func() {
			<-prev.done
			c.s.node.Do(c.ctx, cmd, block, sl.complete)
		}()
		return
	}
	c.lastWrite = nil
	c.s.node.Do(c.ctx, cmd, block, sl.complete)
}

// blockFor is a wait of ms milliseconds (0 = without limit); a u64 past
// what a Duration holds (292 years) must not wrap.
func blockFor(ms uint64) time.Duration {
	return time.Duration(min(ms, uint64(math.MaxInt64/time.Millisecond))) * time.Millisecond
}

// invokeAndWait serves ACTION_INVOKE with INVOKE_WAIT_MS: the invoke, then,
// once it is durable, a status read of its run that waits up to wait for
// the run to end (as ACTION_STATUS with BLOCK_MS does), whose reply answers
// the request. A refused invoke is answered as usual. The run exists from
// the invoke on, so whatever the wait meets — the waiter limit, the
// connection closing — the answer is still a status: one read that does
// not wait when the server holds no more waiting calls.
func (c *conn) invokeAndWait(sl *slot, cmd *command.Command, wait time.Duration) {
	c.s.node.Do(c.ctx, cmd, node.Block{}, func(r command.Result) {
		if r.Err != nil {
			sl.complete(r)
			return
		}
		status := func(b node.Block, done func(command.Result)) {
			c.s.node.Do(c.ctx, &command.Command{Op: command.Op(wire.OpActionStatus), Namespace: cmd.Namespace, Key: r.Body}, b, done)
		}
		// Off the journal's goroutine: a read runs on its caller's.
		go status(node.Block{Enabled: true, For: wait}, func(st command.Result) {
			var werr *wire.Error
			if errors.As(st.Err, &werr) && werr.Status == wire.StatusOverloaded {
				status(node.Block{}, sl.complete)
				return
			}
			sl.complete(st)
		})
	})
}

// MaxNamespaceBytes bounds a namespace (SEMANTICS §8.2: 1–255 bytes; empty
// means "default").
const MaxNamespaceBytes = 255

// namespace validates a namespace name; empty means "default".
func namespace(ns string) (string, error) {
	switch {
	case ns == "":
		return "default", nil
	case len(ns) > MaxNamespaceBytes:
		return "", wire.Errorf(wire.StatusBadRequest, "namespace is %d bytes, over the %d-byte limit", len(ns), MaxNamespaceBytes)
	case !utf8.ValidString(ns):
		return "", wire.Errorf(wire.StatusBadRequest, "namespace is not valid UTF-8")
	}
	for i := 0; i < len(ns); i++ {
		if ns[i] == 0 {
			return "", wire.Errorf(wire.StatusBadRequest, "namespace must not contain NUL")
		}
	}
	return ns, nil
}

func (c *conn) writeLoop(done chan struct{}) {
	defer close(done)
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var out []byte
	broken := false
	for sl := range c.slots {
		select {
		case <-sl.done:
		default:
			// Nothing more is ready: send what is buffered before waiting.
			if !broken && bw.Flush() != nil {
				broken = true
				c.nc.Close()
			}
			<-sl.done
		}
		if broken {
			c.releaseReply(len(sl.body))
			continue
		}
		// The body goes from where it lies: copying it into a buffer kept
		// for the connection would pin the largest reply it ever got.
		out = wire.AppendHeader(out[:0], sl.requestID, byte(sl.status), sl.body)
		_, err := bw.Write(out)
		if err == nil {
			_, err = bw.Write(sl.body)
		}
		c.releaseReply(len(sl.body))
		if err != nil {
			broken = true
			c.nc.Close()
			continue
		}
		if sl.closeAfter {
			_ = bw.Flush()
			broken = true
			c.nc.Close()
			continue
		}
		if len(c.slots) == 0 && bw.Flush() != nil {
			broken = true
			c.nc.Close()
		}
	}
	if !broken {
		_ = bw.Flush()
	}
}
