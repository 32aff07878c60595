package flo

import (
	"context"
	"sync"
	"time"
)

// pullLoop is the engine of the consumer helpers (Queue.Consume,
// Stream.Consume, TaskWorker.Run). Until ctx ends it waits for a free
// handler slot, takes every other free one (up to maxBatch), fetches at most
// that many items in one call, gives back the slots it did not fill, and
// runs handle on each item in its own goroutine, counted by running, which
// frees the item's slot when done. So a consumer never holds (or leases)
// more items than it has free handlers. A failed fetch goes to onErr, which
// returns true to end the loop; otherwise the fetch is retried after a
// backoff of 50 ms doubling up to maxBackoff.
func pullLoop[T any](ctx context.Context, slots chan struct{}, maxBatch int, maxBackoff time.Duration,
	fetch func(n int) ([]T, error), handle func(T), onErr func(error) (stop bool), running *sync.WaitGroup) {
	var backoff time.Duration
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	grab:
		for n < maxBatch {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break grab
			}
		}
		items, err := fetch(n)
		for range n - len(items) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil || onErr(err) {
				return
			}
			backoff = min(max(2*backoff, 50*time.Millisecond), maxBackoff)
			if !sleepCtx(ctx, backoff) {
				return
			}
			continue
		}
		backoff = 0
		for _, it := range items {
			running.Add(1)
			go func() {
				defer running.Done()
				defer func() { <-slots }()
				handle(it)
			}()
		}
	}
}

// sleepCtx waits d, or less if ctx ends first; it reports whether it
// waited the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
