package flo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// QueueHandler processes one dequeued message. Returning nil acks it.
// Returning an error, or panicking, nacks it with the error as its reason:
// it is delivered again (after QueueConsumeOptions.RetryDelay) until its 5th
// delivery fails, and then it moves to the DLQ. An error wrapped with
// Permanent sends it to the DLQ at once. Delivery is at-least-once, so a
// handler must be idempotent; m.Deliveries > 1 marks a redelivery.
//
// ctx is not cancelled when Consume's context ends: running handlers are
// drained. It is cancelled once the drain timeout passes.
type QueueHandler func(ctx context.Context, m *QueueMessage) error

// QueueConsumeOptions configures Queue.Consume. The zero value runs one
// handler at a time with 30 s leases.
type QueueConsumeOptions struct {
	Namespace string
	// Concurrency is the number of handlers running at once (default 1).
	// Consume leases only as many messages as it has free handlers.
	Concurrency int
	// Visibility is the lease taken on each message (default 30 s). While
	// a handler runs, the lease is renewed every Visibility/3, so only a
	// consumer that stops (or loses its connection) lets a message be
	// redelivered, about Visibility after its last renewal.
	Visibility time.Duration
	// Poll is how long one dequeue waits for messages before asking again
	// (default 5 s).
	Poll time.Duration
	// RetryDelay delays the redelivery of a message whose handler failed
	// (default 0: at once, at its original position).
	RetryDelay time.Duration
	// DrainTimeout bounds how long Consume waits, once its context ends,
	// for running handlers before cancelling their contexts (default 30 s).
	// Their outcomes are still reported.
	DrainTimeout time.Duration
	// OnError, if set, receives what Consume cannot return: handler
	// failures and failed dequeues, touches, acks and nacks. It must not
	// block.
	OnError func(error)
}

// Consume runs handler on the queue's messages until ctx ends: it long-polls
// for as many messages as it has free handlers, runs up to Concurrency
// handlers at once, keeps each message leased while its handler runs, acks
// the message when the handler succeeds and nacks it when it fails, each
// exactly once. An ack usually travels with the next dequeue, which follows
// at once (one round trip for both); it goes on its own when no dequeue is
// about to happen. When ctx ends it stops dequeuing, waits for running
// handlers (see DrainTimeout; a handler that ignores its context is still
// waited for), settles their messages and returns nil. A long poll cut short
// by the cancellation may have leased messages nobody will see; like any
// unacked delivery they come back after Visibility. Consume returns an
// error for a nil handler, and ErrClosed (after draining) if the client is
// closed under it.
func (q *Queue) Consume(ctx context.Context, queue string, handler QueueHandler, o *QueueConsumeOptions) error {
	if handler == nil {
		return fmt.Errorf("%w: nil queue handler", ErrBadRequest)
	}
	cfg := QueueConsumeOptions{}
	if o != nil {
		cfg = *o
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	if cfg.Visibility <= 0 {
		cfg.Visibility = 30 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 5 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	report := func(err error) {
		if err != nil && cfg.OnError != nil {
			cfg.OnError(err)
		}
	}
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	slots := make(chan struct{}, cfg.Concurrency)
	var running sync.WaitGroup
	var closed error
	acks := &ackRider{loop: ctx, q: q, queue: queue, ns: &QueueOptions{Namespace: cfg.Namespace}, report: report}
	pullLoop(ctx, slots, cfg.Concurrency, 5*time.Second,
		func(n int) ([]QueueMessage, error) {
			return acks.dequeue(ctx, n, &QueueDequeueOptions{Namespace: cfg.Namespace, Block: cfg.Poll, Visibility: cfg.Visibility})
		},
		func(m QueueMessage) { q.consumeOne(hctx, queue, &m, handler, &cfg, acks, report) },
		func(err error) bool {
			if errors.Is(err, ErrClosed) {
				closed = err
				return true
			}
			report(fmt.Errorf("queue %q: dequeue: %w", queue, err))
			return false
		}, &running)
	drained := make(chan struct{})
	go func() { running.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(cfg.DrainTimeout):
		cancelHandlers()
		<-drained
	}
	acks.flush(context.WithoutCancel(hctx))
	return closed
}

// ackRider lets the acks of Consume ride on its next dequeue (the
// QueueDequeueOptions.Ack extension), so a consumer pays one round trip
// and one durable write per message instead of two. An ack is held only
// while the pull loop is about to dequeue — it waits for the slot the
// finished handler frees — never while a dequeue is in flight (a long poll
// would hold it for up to Poll) or after a failed one (the retry waits out
// a backoff); then, and once Consume is stopping, acks are sent on their own.
type ackRider struct {
	loop   context.Context // Consume's: once it ends, nothing more is dequeued
	q      *Queue
	queue  string
	ns     *QueueOptions
	report func(error)

	mu       sync.Mutex
	held     []uint64
	inFlight bool // a dequeue is running
	failed   bool // the last dequeue failed
	stopped  bool // flushed: Consume is returning
}

// maxHeldAcks is the server's limit on seqs per call (queue.MaxSeqsPerCall).
const maxHeldAcks = 10_000

// ack acknowledges seq now or holds it for the next dequeue.
func (a *ackRider) ack(ctx context.Context, seq uint64) {
	a.mu.Lock()
	if !a.inFlight && !a.failed && !a.stopped && a.loop.Err() == nil && len(a.held) < maxHeldAcks {
		a.held = append(a.held, seq)
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	a.report(wrapSettle(a.queue, seq, "ack", a.q.Ack(ctx, a.queue, []uint64{seq}, a.ns)))
}

// dequeue dequeues with the held acks. If the call fails they are sent on
// their own (acking twice is harmless), and acks are not held again until
// a dequeue succeeds.
func (a *ackRider) dequeue(ctx context.Context, n int, o *QueueDequeueOptions) ([]QueueMessage, error) {
	a.mu.Lock()
	o.Ack, a.held = a.held, nil
	a.inFlight = true
	a.mu.Unlock()
	ms, err := a.q.Dequeue(ctx, a.queue, n, o)
	a.mu.Lock()
	a.inFlight = false
	a.failed = err != nil
	a.mu.Unlock()
	if err != nil && len(o.Ack) > 0 {
		a.send(context.WithoutCancel(ctx), o.Ack)
	}
	return ms, err
}

// flush ends holding and sends what is held; Consume calls it once its
// handlers have finished.
func (a *ackRider) flush(ctx context.Context) {
	a.mu.Lock()
	held := a.held
	a.held = nil
	a.stopped = true
	a.mu.Unlock()
	a.send(ctx, held)
}

func (a *ackRider) send(ctx context.Context, seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	if err := a.q.Ack(ctx, a.queue, seqs, a.ns); err != nil {
		a.report(fmt.Errorf("queue %q: ack of %d messages: %w", a.queue, len(seqs), err))
	}
}

// consumeOne runs the handler on m with its lease kept alive, then settles m.
func (q *Queue) consumeOne(hctx context.Context, queue string, m *QueueMessage, handler QueueHandler, cfg *QueueConsumeOptions, acks *ackRider, report func(error)) {
	ns := &QueueOptions{Namespace: cfg.Namespace}
	stop := q.keepLeased(queue, m.Seq, cfg.Visibility/3, ns, report)
	err := callQueueHandler(hctx, handler, m)
	stop()
	// Settle even when draining: the calls must outlive the handler context.
	settle := context.WithoutCancel(hctx)
	switch {
	case err == nil:
		acks.ack(settle, m.Seq)
		return
	case IsPermanent(err):
		report(fmt.Errorf("queue %q: message %d: handler: %w", queue, m.Seq, err))
		report(wrapSettle(queue, m.Seq, "nack", q.Nack(settle, queue, []uint64{m.Seq}, &QueueNackOptions{Namespace: cfg.Namespace, ToDLQ: true, Reason: err.Error()})))
	default:
		report(fmt.Errorf("queue %q: message %d: handler: %w", queue, m.Seq, err))
		report(wrapSettle(queue, m.Seq, "nack", q.Nack(settle, queue, []uint64{m.Seq}, &QueueNackOptions{Namespace: cfg.Namespace, Delay: cfg.RetryDelay, Reason: err.Error()})))
	}
}

func wrapSettle(queue string, seq uint64, what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("queue %q: message %d: %s: %w", queue, seq, what, err)
}

// keepLeased touches seq every interval until stop is called; stop returns
// once no touch is in flight.
func (q *Queue) keepLeased(queue string, seq uint64, every time.Duration, ns *QueueOptions, report func(error)) (stop func()) {
	every = max(every, 10*time.Millisecond)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), every)
				err := q.Touch(ctx, queue, []uint64{seq}, ns)
				cancel()
				report(wrapSettle(queue, seq, "touch", err))
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// callQueueHandler runs h, turning a panic into an error.
func callQueueHandler(ctx context.Context, h QueueHandler, m *QueueMessage) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return h(ctx, m)
}
