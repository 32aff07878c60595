package flo

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/floruntime/flo/wire"
)

// pullLoop is the engine of the consumer helpers (Queue.Consume,
// Stream.Consume, TaskWorker.Run). Until ctx ends it waits for a free
// handler slot, takes every other free one (up to maxBatch), fetches at most
// that many items in one call, gives back the slots it did not fill, and
// runs handle on each item in its own goroutine, counted by running, which
// frees the item's slot when done. So a consumer never holds (or leases)
// more items than it has free handlers. When only some slots are free, the
// loop yields once before fetching, so handlers that are finishing at that
// moment free their slots into the same fetch instead of the next one
// (docs/decisions/sdk-pull-yield.md). A failed fetch goes to onErr, which
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
		yielded := false
	grab:
		for n < maxBatch {
			select {
			case slots <- struct{}{}:
				n++
			default:
				if yielded || n == cap(slots) {
					break grab
				}
				// Handlers that ran in the batch just fetched are often
				// runnable and about to free their slots: let them.
				yielded = true
				runtime.Gosched()
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

// rider holds what finished handlers owe the server — queue acks, task
// results — for the pull loop's next fetch to carry, so one request (and
// one durable write) settles them and fetches more. An item is held only
// while a fetch is about to happen: no fetch that may wait for work is in
// flight (a long poll would hold it for seconds), the last fetch did not
// fail (its retry waits out a backoff), and the loop has not ended. Then
// the finished handler's slot is what the loop waits for, so it fetches at
// once. Otherwise the caller sends the item on its own, as it does with
// what drain returns once the loop has ended.
type rider[T any] struct {
	maxItems, maxBytes int // what one fetch may carry

	mu        sync.Mutex
	held      []T
	heldBytes int
	waiting   int  // fetches in flight that may wait for work
	failed    bool // the last fetch failed
}

// hold keeps x, of size bytes, for the next fetch of the loop that runs
// until loop ends, and reports whether it did.
func (r *rider[T]) hold(loop context.Context, x T, size int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiting > 0 || r.failed || loop.Err() != nil || len(r.held) >= r.maxItems || r.heldBytes+size > r.maxBytes {
		return false
	}
	r.held = append(r.held, x)
	r.heldBytes += size
	return true
}

// take hands what is held to a fetch that starts now and reports whether
// that fetch may wait for work: one carrying nothing may; one carrying
// items may if carryingWaits. fetched must follow, with that answer.
func (r *rider[T]) take(carryingWaits bool) (held []T, waits bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	held, r.held, r.heldBytes = r.held, nil, 0
	waits = len(held) == 0 || carryingWaits
	if waits {
		r.waiting++
	}
	return held, waits
}

// fetched records the end of a fetch begun by take.
func (r *rider[T]) fetched(waits bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if waits {
		r.waiting--
	}
	r.failed = err != nil
}

// drain returns what is held, for the caller to send on its own.
func (r *rider[T]) drain() []T {
	held, _ := r.take(false)
	r.fetched(false, nil)
	return held
}

// leaseKeeper renews the leases of the items a consumer helper's handlers
// are running — queue messages, group records, tasks — with one goroutine
// and one ticker per helper rather than per item, so an item whose handler
// finishes before its first renewal costs a map insert and delete. The
// keeper ticks every every/4 and counts an item's age from the tick before
// it was added, so items added between the same two ticks are renewed in
// the same round, between 3/4 and 5/4 of every after they were leased and
// then every every (helpers use a third of the lease) — while rounds are
// quick: rounds run one at a time, and a slow one (each times out after
// every) delays the next. renew gets all due items at once and returns
// those whose lease is gone, which are no longer renewed until leased
// again, and those it failed to renew (the server could not be reached),
// which are tried again at the next tick rather than a whole every later:
// after an outage, such as a server restart, a lease is renewed as soon as
// the server is back, not up to every after, when it may have expired.
type leaseKeeper[K comparable] struct {
	every time.Duration
	renew func(ctx context.Context, due []K) (lost, failed []K)

	mu       sync.Mutex
	cond     sync.Cond // signalled when a renewal round ends
	items    map[K]*leaseEntry
	lastTick time.Time
	stop     chan struct{}
	done     chan struct{}
}

type leaseEntry struct {
	since    time.Time // the tick before it was leased, or its last renewal round
	holders  int       // handlers running this item (a redelivery may overlap)
	lease    uint64    // counts adds: a lost report applies only to the lease it was about
	renewing bool      // in the renewal round in flight
	lost     bool
}

// startLeaseKeeper starts a keeper; close stops it.
func startLeaseKeeper[K comparable](every time.Duration, renew func(ctx context.Context, due []K) (lost, failed []K)) *leaseKeeper[K] {
	k := &leaseKeeper[K]{every: max(every, 4*time.Millisecond), renew: renew, items: map[K]*leaseEntry{},
		lastTick: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	k.cond.L = &k.mu
	go k.loop()
	return k
}

// add starts renewing x, whose lease was just taken.
func (k *leaseKeeper[K]) add(x K) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.items[x]
	if e == nil {
		e = &leaseEntry{}
		k.items[x] = e
	}
	e.since = k.lastTick
	e.holders++
	e.lease++
	e.lost = false // a new lease
}

// remove stops renewing x. It returns once no renewal of x is in flight,
// so the settling call that follows (ack, complete, nack) reaches the
// server after the last touch.
func (k *leaseKeeper[K]) remove(x K) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.items[x]
	if e == nil {
		return // not added
	}
	for e.renewing {
		k.cond.Wait()
	}
	if e.holders--; e.holders == 0 {
		delete(k.items, x)
	}
}

// close stops the keeper and waits for a renewal in flight.
func (k *leaseKeeper[K]) close() {
	close(k.stop)
	<-k.done
}

func (k *leaseKeeper[K]) loop() {
	defer close(k.done)
	tick := time.NewTicker(k.every / 4)
	defer tick.Stop()
	var due []K
	leases := map[K]uint64{} // the lease of each due item when its round began
	for {
		select {
		case <-k.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		due = due[:0]
		k.mu.Lock()
		k.lastTick = now
		for x, e := range k.items {
			if !e.lost && now.Sub(e.since) >= k.every {
				e.renewing = true
				due = append(due, x)
				leases[x] = e.lease
			}
		}
		k.mu.Unlock()
		if len(due) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), k.every)
		var lost, failed []K
		// At most the servers' list limit per call.
		for part := range slices.Chunk(due, wire.MaxSeqListLen) {
			l, f := k.renew(ctx, part)
			lost, failed = append(lost, l...), append(failed, f...)
		}
		cancel()
		k.mu.Lock()
		for _, x := range due {
			e := k.items[x]
			e.renewing = false
			e.since = now
		}
		for _, x := range failed {
			// Still due: tried again at the next tick.
			if e := k.items[x]; e != nil && e.lease == leases[x] {
				e.since = now.Add(-k.every)
			}
		}
		for _, x := range lost {
			// Leased again during the round: the report is about the old lease.
			if e := k.items[x]; e != nil && e.lease == leases[x] {
				e.lost = true
			}
		}
		clear(leases)
		k.cond.Broadcast()
		k.mu.Unlock()
	}
}
