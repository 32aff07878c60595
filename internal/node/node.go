// Package node is the glue of one flo node: it stamps each request with the
// time, sends writes through the journal and serves reads from the machines,
// parks blocking calls until a committed change signals them, and proposes
// the pulse that applies time-driven changes. See DESIGN.md in this
// directory for the blocking-call protocol.
package node

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/internal/fsm"
	"github.com/floruntime/flo/internal/journal"
	"github.com/floruntime/flo/wire"
)

// Options configures a Node.
type Options struct {
	// MaxWaiters bounds the calls parked at once; past it a blocking call
	// is answered OVERLOADED.
	MaxWaiters int
	// PulseInterval is how often the node checks for due time-driven work.
	PulseInterval time.Duration
	// Now is the clock; nil means time.Now. Tests may pin it.
	Now func() time.Time
}

// Node executes requests against one FSM and journal.
type Node struct {
	fsm  *fsm.FSM
	j    journal.Journal
	opts Options

	lastNow atomic.Int64 // stamped times never go backwards

	mu      sync.Mutex
	waiters map[string][]*call // key -> calls registered on it, in arrival order
	parked  int                // calls registered as waiters

	// retryQ holds calls a signal woke, for the retry goroutine (guarded
	// by mu; each call is in it at most once, since it is running).
	// retryWake tells that goroutine the queue is not empty. Once closing,
	// nothing is queued: a woken call is finished with its last result.
	retryQ    []*call
	retryWake chan struct{}
	closing   bool
	stop      chan struct{}
	stopped   sync.WaitGroup
	pulseBusy bool
}

// New starts a node. Close stops it; the journal is closed by its owner.
func New(f *fsm.FSM, j journal.Journal, o Options) *Node {
	if o.MaxWaiters <= 0 {
		o.MaxWaiters = config.DefaultMaxWaiters
	}
	if o.PulseInterval <= 0 {
		o.PulseInterval = 20 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := &Node{
		fsm:       f,
		j:         j,
		opts:      o,
		waiters:   make(map[string][]*call),
		retryWake: make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	if l, ok := j.(interface {
		WakeWriters(func(keys []string) []journal.Proposal)
	}); ok {
		l.WakeWriters(n.wakeWriters)
	}
	n.stopped.Add(2)
	go n.pulseLoop()
	go n.retryLoop()
	return n
}

// Close stops the node's background work. Parked calls, and calls woken
// but not yet retried, are finished with their last empty result; a call
// whose attempt is in the journal is answered by that attempt.
func (n *Node) Close() {
	n.mu.Lock()
	n.closing = true
	n.mu.Unlock()
	close(n.stop)
	n.stopped.Wait()
	n.mu.Lock()
	queued := n.retryQ
	n.retryQ = nil
	var all []*call
	for _, cs := range n.waiters {
		all = append(all, cs...)
	}
	n.mu.Unlock()
	for _, c := range queued {
		n.finish(c, c.last) // never attempted again: nothing taken
	}
	for _, c := range all {
		n.expire(c)
	}
}

// now returns the current time in Unix nanoseconds, never going backwards.
func (n *Node) now() int64 {
	t := n.opts.Now().UnixNano()
	for {
		last := n.lastNow.Load()
		if t <= last {
			return last
		}
		if n.lastNow.CompareAndSwap(last, t) {
			return t
		}
	}
}

// Block says how long a call may wait for data.
type Block struct {
	Enabled bool          // BLOCK_MS was given
	For     time.Duration // 0 = without limit
}

// call is one request in progress. Fields below mu are guarded by Node.mu.
type call struct {
	ctx     context.Context
	cmd     *command.Command
	handler command.Handler
	done    func(command.Result)

	keys      []string
	attempted bool // an attempt has been made (owned by whoever runs the call)
	running   bool // an attempt is executing
	signalled bool // a signal arrived while running: retry instead of parking
	woken     bool // a signal reached this call at least once
	expired   bool // deadline passed or context ended while running
	finished  bool
	last      command.Result // the latest empty result, sent on timeout
	timer     *time.Timer
	stopCtx   func() bool
}

// Do executes cmd and calls done exactly once with its result. done may run
// on any goroutine and must not block. A blocking call (b.Enabled) whose
// first attempt is empty parks until a committed change signals one of its
// wait keys, its deadline passes, or ctx ends.
func (n *Node) Do(ctx context.Context, cmd *command.Command, b Block, done func(command.Result)) {
	h, ok := n.fsm.Handler(wire.Op(cmd.Op))
	if !ok {
		done(command.Fail(wire.Errorf(wire.StatusBadRequest, "unknown opcode 0x%02x", uint8(cmd.Op))))
		return
	}
	c := &call{ctx: ctx, cmd: cmd, handler: h, done: done}
	if b.Enabled && h.WaitKeys != nil {
		// A command the handler gives no keys for does not wait.
		if keys := h.WaitKeys(cmd); len(keys) > 0 && !n.register(c, keys, b.For) {
			done(command.Fail(wire.Errorf(wire.StatusOverloaded, "too many blocked calls (limit %d)", n.opts.MaxWaiters)))
			return
		}
	}
	n.attempt(c)
}

// register parks c under keys before its first attempt.
func (n *Node) register(c *call, keys []string, wait time.Duration) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.parked >= n.opts.MaxWaiters {
		return false
	}
	n.parked++
	c.keys = keys
	c.running = true
	for _, k := range keys {
		n.waiters[k] = append(n.waiters[k], c)
	}
	if wait > 0 {
		c.timer = time.AfterFunc(wait, func() { n.expire(c) })
	}
	c.stopCtx = context.AfterFunc(c.ctx, func() { n.expire(c) })
	return true
}

// attempt executes c once.
func (n *Node) attempt(c *call) {
	n.stamp(c)
	if c.handler.Kind == command.Read {
		n.finishAttempt(c, c.handler.Read(c.cmd))
		return
	}
	err := n.j.Submit(c.cmd, n.attemptDone(c))
	if err != nil {
		n.finishAttempt(c, command.Fail(wire.Errorf(wire.StatusInternal, "server is shutting down")))
	}
}

// stamp prepares c's command for an attempt: the time of this attempt, and
// for a retry the handler's Retried adjustment. The caller owns c (running).
func (n *Node) stamp(c *call) {
	c.cmd.Time = n.now()
	if c.attempted && c.handler.Retried != nil {
		c.handler.Retried(c.cmd)
	}
	c.attempted = true
}

// attemptDone is the done callback of an attempt of c that went through the
// journal.
func (n *Node) attemptDone(c *call) func(command.Result) {
	return func(r command.Result) {
		for _, k := range r.Wake {
			n.signal(k)
		}
		n.finishAttempt(c, r)
	}
}

// wakeWriters is the journal's WakeWriters hook: for each key, the first
// parked write (as a signal would pick it) is attempted at once, in the
// group of the command that signalled, instead of after that command is
// durable — one fsync for both. The signal that follows the commit still
// goes out, so reads and later writes are reached as before; a write that
// was woken here and is still running then only notes it (signalled).
func (n *Node) wakeWriters(keys []string) []journal.Proposal {
	var out []journal.Proposal
	n.mu.Lock()
	for _, k := range keys {
		for _, c := range n.waiters[k] {
			if c.finished || c.handler.Kind != command.Write || c.ctx.Err() != nil {
				continue // a write whose connection has gone takes nothing
			}
			if !c.running && !c.expired {
				c.running = true
				c.woken = true
				n.stamp(c)
				out = append(out, journal.Proposal{Cmd: c.cmd, Done: n.attemptDone(c)})
			}
			break // a signal reaches only the first write
		}
	}
	n.mu.Unlock()
	return out
}

// finishAttempt delivers r, or parks c again when r is empty and c may wait.
func (n *Node) finishAttempt(c *call, r command.Result) {
	if c.keys == nil {
		c.done(r)
		return
	}
	if !r.Empty {
		n.mu.Lock()
		passOn := c.woken && c.handler.Kind == command.Write
		n.mu.Unlock()
		n.finish(c, r)
		if passOn {
			// c consumed what a signal announced; there may be more, so the
			// next parked writer gets a turn (see signal).
			for _, k := range c.keys {
				n.signal(k)
			}
		}
		return
	}
	n.mu.Lock()
	if c.finished {
		n.mu.Unlock()
		return
	}
	c.last = r
	if c.expired {
		// A signal this call will no longer act on goes to the next writer.
		passOn := c.signalled && c.handler.Kind == command.Write
		n.mu.Unlock()
		n.finish(c, r)
		if passOn {
			for _, k := range c.keys {
				n.signal(k)
			}
		}
		return
	}
	if c.signalled {
		c.signalled = false
		n.mu.Unlock()
		n.retry(c)
		return
	}
	c.running = false
	n.mu.Unlock()
}

// finish removes c from the waiters and delivers r, once.
func (n *Node) finish(c *call, r command.Result) {
	if c.keys != nil {
		n.mu.Lock()
		if c.finished {
			n.mu.Unlock()
			return
		}
		c.finished = true
		n.unregister(c)
		n.mu.Unlock()
		c.stopWaiting()
	}
	c.done(r)
}

// stopWaiting releases a finished call's deadline timer and context hook.
func (c *call) stopWaiting() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.stopCtx()
}

// unregister removes c from every key list. Callers hold n.mu.
func (n *Node) unregister(c *call) {
	n.parked--
	for _, k := range c.keys {
		cs := n.waiters[k]
		for i, x := range cs {
			if x == c {
				cs = append(cs[:i:i], cs[i+1:]...)
				break
			}
		}
		if len(cs) == 0 {
			delete(n.waiters, k)
		} else {
			n.waiters[k] = cs
		}
	}
}

// expire ends c's wait: a parked write is answered with its last empty
// result at once, a parked read with a fresh read (a read parked since its
// first attempt would otherwise answer with the state of back then, e.g. a
// run's status from before it was claimed); a running call is answered
// when its attempt returns empty.
func (n *Node) expire(c *call) {
	n.mu.Lock()
	if c.finished {
		n.mu.Unlock()
		return
	}
	if c.running {
		c.expired = true
		n.mu.Unlock()
		return
	}
	if c.handler.Kind == command.Read {
		c.running = true // a signal meanwhile only sets signalled
		n.mu.Unlock()
		n.stamp(c)
		n.finish(c, c.handler.Read(c.cmd))
		return
	}
	// A parked write ends here, under the lock that saw it parked: once
	// the lock is released, a signal (or wakeWriters) could start an
	// attempt that takes an item whose answer would be thrown away.
	c.finished = true
	n.unregister(c)
	last := c.last
	n.mu.Unlock()
	c.stopWaiting()
	c.done(last)
}

// signal wakes the calls registered under key. Every parked read retries
// (reads consume nothing). Among writes (dequeue, claim) only the first in
// arrival order gets the signal: waking them all would turn one enqueue into
// a log write per parked consumer. A woken write that takes something passes
// the signal on to the next one (finishAttempt), so a burst of items still
// reaches as many waiters as it can serve.
func (n *Node) signal(key string) {
	n.mu.Lock()
	cs := n.waiters[key]
	if len(cs) == 0 {
		n.mu.Unlock()
		return
	}
	var wake []*call
	writerTold := false
	for _, c := range cs {
		write := c.handler.Kind == command.Write
		if c.finished || (write && c.ctx.Err() != nil) {
			continue // a write whose connection has gone takes nothing
		}
		if write && writerTold {
			continue
		}
		writerTold = writerTold || write
		c.woken = true
		if c.running {
			c.signalled = true
		} else {
			c.running = true
			wake = append(wake, c)
		}
	}
	n.mu.Unlock()
	for _, c := range wake {
		n.retry(c)
	}
}

// retry re-attempts c (running) from the retry goroutine, keeping arrival
// order and never blocking the journal goroutine that delivered the
// signal. Once the node is closing, c is finished with its last result.
func (n *Node) retry(c *call) {
	n.mu.Lock()
	if n.closing {
		last := c.last
		n.mu.Unlock()
		n.finish(c, last)
		return
	}
	n.retryQ = append(n.retryQ, c)
	n.mu.Unlock()
	select {
	case n.retryWake <- struct{}{}:
	default:
	}
}

func (n *Node) retryLoop() {
	defer n.stopped.Done()
	var batch []*call
	for {
		select {
		case <-n.stop:
			return
		case <-n.retryWake:
		}
		n.mu.Lock()
		batch = append(batch[:0], n.retryQ...)
		clear(n.retryQ)
		n.retryQ = n.retryQ[:0]
		n.mu.Unlock()
		// Every call taken is attempted, even if the node starts closing
		// meanwhile (an attempt after the journal closed is answered),
		// except a write whose connection ended while it was queued: it
		// would take an item for nobody. It ends with its last result and
		// passes the signal that woke it on to the next write.
		for _, c := range batch {
			if c.handler.Kind == command.Write && c.ctx.Err() != nil {
				n.finish(c, c.last)
				for _, k := range c.keys {
					n.signal(k)
				}
				continue
			}
			n.attempt(c)
		}
		clear(batch)
	}
}

// pulseLoop proposes OpPulse whenever a machine has time-driven work due.
// Only one pulse is in flight at a time.
func (n *Node) pulseLoop() {
	defer n.stopped.Done()
	t := time.NewTicker(n.opts.PulseInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		// The node's time, not the wall clock: after the clock steps back,
		// commands are still stamped with the later time and see what is
		// due by it, so the pulse must too.
		due := n.fsm.NextDue()
		if due == 0 || due > n.now() {
			continue
		}
		n.mu.Lock()
		busy := n.pulseBusy
		n.pulseBusy = true
		n.mu.Unlock()
		if busy {
			continue
		}
		cmd := &command.Command{Op: command.OpPulse, Time: n.now()}
		err := n.j.Submit(cmd, func(r command.Result) {
			for _, k := range r.Wake {
				n.signal(k)
			}
			n.mu.Lock()
			n.pulseBusy = false
			n.mu.Unlock()
		})
		if err != nil {
			return
		}
	}
}

// Handler returns how op is executed, for callers that order requests.
func (n *Node) Handler(op wire.Op) (command.Handler, bool) { return n.fsm.Handler(op) }
