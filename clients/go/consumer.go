package flo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/floruntime/flo/wire"
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
	// a handler runs, the lease is renewed about every third of it
	// (normally at most 5/12 apart), so only a consumer that stops (or
	// loses its connection) lets a message be redelivered, about
	// Visibility after its last renewal.
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
	// Acks of handlers that succeed ride on the next dequeue when one is
	// about to happen (rider); a dequeue that fails sends its acks on their
	// own (acking twice is harmless).
	acks := &rider[uint64]{maxItems: wire.MaxSeqListLen, maxBytes: math.MaxInt}
	settle := context.WithoutCancel(hctx) // acks must outlive the handlers
	ns := &QueueOptions{Namespace: cfg.Namespace}
	// Handlers' messages are touched every third of the visibility timeout.
	leases := startLeaseKeeper(cfg.Visibility/3, func(ctx context.Context, seqs []uint64) (lost, failed []uint64) {
		if err := q.Touch(ctx, queue, seqs, ns); err != nil {
			report(fmt.Errorf("queue %q: touch of %d messages: %w", queue, len(seqs), err))
			return nil, seqs
		}
		return nil, nil // a touch of a message no longer leased is ignored
	})
	defer leases.close()
	sendAcks := func(seqs []uint64) {
		if len(seqs) == 0 {
			return
		}
		if err := q.Ack(settle, queue, seqs, ns); err != nil {
			report(fmt.Errorf("queue %q: ack of %d messages: %w", queue, len(seqs), err))
		}
	}
	pullLoop(ctx, slots, cfg.Concurrency, 5*time.Second,
		func(n int) ([]QueueMessage, error) {
			held, waits := acks.take(true)
			ms, err := q.Dequeue(ctx, queue, n, &QueueDequeueOptions{Namespace: cfg.Namespace, Block: cfg.Poll, Visibility: cfg.Visibility, Ack: held})
			acks.fetched(waits, err)
			if err != nil {
				sendAcks(held)
			}
			return ms, err
		},
		func(m QueueMessage) { q.consumeOne(ctx, hctx, queue, &m, handler, &cfg, acks, leases, report) },
		func(err error) bool {
			if errors.Is(err, ErrClosed) {
				closed = err
				return true
			}
			report(fmt.Errorf("queue %q: dequeue: %w", queue, err))
			return false
		}, &running)
	// Nothing dequeues any more: send the held acks now, and after the
	// drain whatever a handler held while the loop was ending.
	sendAcks(acks.drain())
	drained := make(chan struct{})
	go func() { running.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(cfg.DrainTimeout):
		cancelHandlers()
		<-drained
	}
	sendAcks(acks.drain())
	return closed
}

// consumeOne runs the handler on m with its lease kept alive, then settles
// m; loop is the context of Consume's pull loop.
func (q *Queue) consumeOne(loop, hctx context.Context, queue string, m *QueueMessage, handler QueueHandler, cfg *QueueConsumeOptions, acks *rider[uint64], leases *leaseKeeper[uint64], report func(error)) {
	ns := &QueueOptions{Namespace: cfg.Namespace}
	leases.add(m.Seq)
	err := callQueueHandler(hctx, handler, m)
	leases.remove(m.Seq)
	// Settle even when draining: the calls must outlive the handler context.
	settle := context.WithoutCancel(hctx)
	switch {
	case err == nil:
		if !acks.hold(loop, m.Seq, 8) {
			report(wrapSettle(queue, m.Seq, "ack", q.Ack(settle, queue, []uint64{m.Seq}, ns)))
		}
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

// callQueueHandler runs h, turning a panic into an error.
func callQueueHandler(ctx context.Context, h QueueHandler, m *QueueMessage) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return h(ctx, m)
}
