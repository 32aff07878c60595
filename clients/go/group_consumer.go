package flo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// StreamHandler processes one record delivered to a consumer group member.
// Returning nil acknowledges the record. Returning an error, or panicking,
// hands it back (GroupNack) so the next read by any member gets it again,
// until the group's delivery limit moves it to the dead-letter list. If the
// process dies mid-handler, the record is redelivered to another member once
// the group's ack timeout passes.
//
// ctx is cancelled when Consume's context is; a handler that ignores it is
// allowed to finish, and its result is still reported.
type StreamHandler func(ctx context.Context, r StreamRecord) error

// StreamConsumeOptions configures Stream.Consume. The zero value runs one
// handler at a time with the group's existing settings.
type StreamConsumeOptions struct {
	Namespace string
	// Concurrency is the number of handlers running at once (default 1).
	// Consume reads only as many records as it has free handlers.
	Concurrency int
	// AckTimeout and MaxDeliver, if set, become the group's settings (see
	// StreamGroupJoinOptions). While a handler runs its record's deadline is
	// renewed about every third of AckTimeout (30 s when unset; normally
	// at most 5/12 apart), so slow handlers are not redelivered behind
	// their back.
	AckTimeout time.Duration
	MaxDeliver int
	// Poll is how long one blocking read waits before reading again
	// (default 5s). It bounds how long Consume takes to notice cancellation
	// on servers that cannot cancel a parked read.
	Poll time.Duration
	// OnError, if set, receives handler failures (wrapped with the record's
	// offset) and call failures; Consume itself keeps going.
	OnError func(error)
}

// Consume runs handler on the records that group delivers to consumer until
// ctx is cancelled: it joins the group, reads with long polling, runs up to
// Concurrency handlers at once, acks each record whose handler succeeded and
// nacks the others. On cancellation it stops reading, waits for running
// handlers, settles their records, leaves the group (so whatever it still
// held goes to the other members at once) and returns nil. It returns an
// error for a nil handler, if the initial join fails, and — after the same
// drain — ErrClosed when the client is closed under it.
func (s *Stream) Consume(ctx context.Context, stream, group, consumer string, handler StreamHandler, o *StreamConsumeOptions) error {
	if handler == nil {
		return fmt.Errorf("%w: nil stream handler", ErrBadRequest)
	}
	if o == nil {
		o = &StreamConsumeOptions{}
	}
	conc := max(o.Concurrency, 1)
	poll := o.Poll
	if poll <= 0 {
		poll = 5 * time.Second
	}
	ackTimeout := o.AckTimeout
	if ackTimeout <= 0 {
		ackTimeout = 30 * time.Second
	}
	report := func(err error) {
		if o.OnError != nil && err != nil {
			o.OnError(err)
		}
	}
	gopts := &StreamGroupOptions{Namespace: o.Namespace}
	if err := s.GroupJoin(ctx, stream, group, consumer, &StreamGroupJoinOptions{Namespace: o.Namespace, AckTimeout: o.AckTimeout, MaxDeliver: o.MaxDeliver}); err != nil {
		return err
	}
	// settle outlives ctx: records of handlers that finish during shutdown
	// must still be acked or nacked.
	settle := context.WithoutCancel(ctx)
	// Running handlers' records are touched every third of the ack timeout.
	leases := startLeaseKeeper(ackTimeout/3, func(tctx context.Context, offsets []uint64) (lost, failed []uint64) {
		if err := s.GroupTouch(tctx, stream, group, offsets, gopts); err != nil {
			report(fmt.Errorf("stream %s: touch of %d records: %w", stream, len(offsets), err))
			return nil, offsets
		}
		return nil, nil // a touch of a record no longer pending is ignored
	})
	defer leases.close()
	run := func(r StreamRecord) {
		leases.add(r.Offset)
		err := callStreamHandler(ctx, handler, r)
		leases.remove(r.Offset)
		if err == nil {
			report(s.GroupAck(settle, stream, group, []uint64{r.Offset}, gopts))
			return
		}
		report(fmt.Errorf("stream %s offset %d: %w", stream, r.Offset, err))
		report(s.GroupNack(settle, stream, group, []uint64{r.Offset}, gopts))
	}
	var wg sync.WaitGroup
	var closed error
	pullLoop(ctx, make(chan struct{}, conc), conc, 2*time.Second,
		func(n int) ([]StreamRecord, error) {
			return s.GroupRead(ctx, stream, group, consumer, &StreamGroupReadOptions{Namespace: o.Namespace, Count: n, Block: poll})
		},
		run, func(err error) bool {
			if errors.Is(err, ErrClosed) {
				closed = err
				return true
			}
			report(err)
			return false
		}, &wg)
	wg.Wait()
	if closed != nil {
		return closed
	}
	leaveCtx, cancel := context.WithTimeout(settle, 5*time.Second)
	defer cancel()
	report(s.GroupLeave(leaveCtx, stream, group, consumer, gopts))
	return nil
}

// errStreamHandlerPanic wraps a panic raised by a StreamHandler.
var errStreamHandlerPanic = errors.New("handler panicked")

func callStreamHandler(ctx context.Context, h StreamHandler, r StreamRecord) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errStreamHandlerPanic, p)
		}
	}()
	return h(ctx, r)
}
