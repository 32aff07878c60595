package flo

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/floruntime/flo/wire"
)

// renewLog records the batches a leaseKeeper renews.
type renewLog struct {
	mu      sync.Mutex
	batches [][]int
	lose    map[int]bool
}

func (l *renewLog) renew(_ context.Context, due []int) (lost, failed []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := slices.Clone(due)
	slices.Sort(b)
	l.batches = append(l.batches, b)
	for _, x := range due {
		if l.lose[x] {
			lost = append(lost, x)
		}
	}
	return lost, nil
}

// waitFor polls cond until it holds, failing the test after 10 s: rounds
// come every few ms, but a loaded machine may stall the keeper for longer.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rounds counts the renewal calls so far.
func (l *renewLog) rounds() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.batches)
}

// renewed counts the renewals of x so far.
func (l *renewLog) renewed(x int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, b := range l.batches {
		if slices.Contains(b, x) {
			n++
		}
	}
	return n
}

func TestLeaseKeeper_RenewsLongRunningItemsTogether(t *testing.T) {
	var log renewLog
	k := startLeaseKeeper(20*time.Millisecond, log.renew)
	defer k.close()
	lastTick := func() time.Time {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.lastTick
	}
	for attempt := 0; ; attempt++ {
		before := lastTick()
		k.add(1)
		k.add(2)
		k.add(3)
		k.remove(3) // finished before its first renewal
		if lastTick().Equal(before) {
			break // all added between the same two ticks
		}
		// A tick fell between the adds (the test goroutine stalled for a
		// tick's 5 ms), so they were not leased together: start over.
		if attempt == 100 {
			t.Fatal("could not add the items between two ticks")
		}
		k.remove(1)
		k.remove(2)
		log.mu.Lock()
		log.batches = nil
		log.mu.Unlock()
	}
	waitFor(t, "two renewal rounds", func() bool { return log.rounds() >= 2 })
	log.mu.Lock()
	together := slices.Clone(log.batches) // rounds while both were held
	log.mu.Unlock()
	k.remove(1)
	k.remove(2)
	n := log.renewed(1)
	time.Sleep(60 * time.Millisecond)
	if log.renewed(1) != n {
		t.Fatal("renewed after remove")
	}
	if len(together) < 2 || log.renewed(3) != 0 {
		t.Fatalf("%d rounds while held; item 3 renewed %d times", len(together), log.renewed(3))
	}
	for _, b := range together {
		if !slices.Equal(b, []int{1, 2}) {
			t.Fatalf("batch %v: items due together must be renewed in one call", b)
		}
	}
}

func TestLeaseKeeper_ALeaseTakenDuringARoundIsNotLost(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	rounds := 0
	k := startLeaseKeeper(10*time.Millisecond, func(_ context.Context, due []int) (lost, failed []int) {
		mu.Lock()
		rounds++
		first := rounds == 1
		mu.Unlock()
		if first {
			close(entered)
			<-release
			return due, nil // the first lease is gone...
		}
		return nil, nil
	})
	defer k.close()
	k.add(1)
	<-entered
	k.add(1) // ...but the item was leased again (another handler) meanwhile
	close(release)
	// Not renewed again if the lost report wrongly applied to the new lease.
	waitFor(t, "a renewal of the lease taken during the round", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return rounds >= 2
	})
	k.remove(1)
	k.remove(1)
}

func TestLeaseKeeper_LostItemsAreNotRenewedUntilLeasedAgain(t *testing.T) {
	log := renewLog{lose: map[int]bool{7: true}}
	k := startLeaseKeeper(10*time.Millisecond, log.renew)
	defer k.close()
	k.add(7)
	k.add(8)
	waitFor(t, "three renewals of the kept item", func() bool { return log.renewed(8) >= 3 })
	if log.renewed(7) != 1 || log.renewed(8) < 3 {
		t.Fatalf("lost item renewed %d times, kept item %d times", log.renewed(7), log.renewed(8))
	}
	// Delivered again to a second handler: a new lease, renewed again.
	log.mu.Lock()
	log.lose[7] = false
	log.mu.Unlock()
	k.add(7)
	waitFor(t, "a renewal of the item leased again after its lease was lost", func() bool { return log.renewed(7) >= 2 })
	k.remove(7)
	k.remove(7)
	k.remove(8)
}

func TestLeaseKeeper_OverlappingHoldersKeepRenewing(t *testing.T) {
	var log renewLog
	k := startLeaseKeeper(10*time.Millisecond, log.renew)
	defer k.close()
	k.add(5)
	k.add(5) // redelivered to a second handler while the first still runs
	k.remove(5)
	waitFor(t, "a renewal of the remaining holder's item", func() bool { return log.renewed(5) > 0 })
	k.remove(5)
}

func TestLeaseKeeper_RemoveWaitsForRenewalInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	k := startLeaseKeeper(10*time.Millisecond, func(context.Context, []int) (lost, failed []int) {
		once.Do(func() { close(entered) })
		<-release
		return nil, nil
	})
	defer k.close()
	var releaseOnce sync.Once
	releaseRenew := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseRenew() // before close, which waits for the renewal
	k.add(1)
	<-entered
	removed := make(chan struct{})
	go func() { k.remove(1); close(removed) }()
	select {
	case <-removed:
		t.Fatal("remove returned while a touch of the item was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	releaseRenew()
	<-removed
}

// TestLeaseKeeper_RetriesAFailedRenewalAtTheNextTick fails the first
// renewal of an item, as when the server is down: the keeper tries again at
// its next tick (a quarter of every), not a whole every later, so a lease
// is renewed soon after the server is back rather than possibly after it
// expired.
func TestLeaseKeeper_RetriesAFailedRenewalAtTheNextTick(t *testing.T) {
	const every = 2 * time.Second // ticks every 500 ms
	var mu sync.Mutex
	var rounds []time.Time
	second := make(chan struct{})
	k := startLeaseKeeper(every, func(_ context.Context, due []int) (lost, failed []int) {
		mu.Lock()
		defer mu.Unlock()
		rounds = append(rounds, time.Now())
		switch len(rounds) {
		case 1:
			return nil, due // the server could not be reached
		case 2:
			close(second)
		}
		return nil, nil
	})
	defer k.close()
	k.add(1)
	defer k.remove(1)
	select {
	case <-second:
	case <-time.After(30 * time.Second):
		t.Fatal("no second renewal")
	}
	mu.Lock()
	gap := rounds[1].Sub(rounds[0])
	mu.Unlock()
	// At the next tick, 500 ms later; without the retry it is every later.
	if gap >= every {
		t.Fatalf("a failed renewal was tried again %v later, not at the next tick (every %v)", gap, every)
	}
}

func TestLeaseKeeper_SplitsARoundAtTheServersListLimit(t *testing.T) {
	var log renewLog
	// Ticks every 100 ms, so the adds below usually fall between two ticks
	// and every item is due in the same round.
	k := startLeaseKeeper(400*time.Millisecond, log.renew)
	defer k.close()
	const n = wire.MaxSeqListLen + 1
	for i := range n {
		k.add(i)
	}
	// A round renews its items in several calls: wait for the last of them
	// (checking two items could see a round half done).
	waitFor(t, "every item renewed", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		seen := map[int]bool{}
		for _, b := range log.batches {
			for _, x := range b {
				seen[x] = true
			}
		}
		return len(seen) == n
	})
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, b := range log.batches {
		if len(b) > wire.MaxSeqListLen {
			t.Fatalf("a renewal call carried %d items, over the %d the servers take", len(b), wire.MaxSeqListLen)
		}
	}
}

// TestPullLoop_APartialFetchTakesSlotsFreedMeanwhile: with handlers that
// return at once, the first one to finish wakes the loop while its
// siblings are still runnable; the loop yields once before a partial
// fetch, so they free their slots into it instead of leaving it to fetch
// one item at a time. One P makes the order the scheduler's run queue
// (Go checks its global queue first on one schedule in 61, so a few
// fetches may still go out alone: the test asks for most, not all).
func TestPullLoop_APartialFetchTakesSlotsFreedMeanwhile(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const slots, fetches = 4, 40
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var asked []int // appended by the loop's goroutine only
	fetch := func(n int) ([]int, error) {
		asked = append(asked, n)
		if len(asked) == fetches {
			cancel()
			return nil, nil
		}
		return make([]int, n), nil
	}
	var running sync.WaitGroup
	pullLoop(ctx, make(chan struct{}, slots), 100, time.Second, fetch, func(int) {}, func(error) bool { return true }, &running)
	running.Wait()
	batched := 0
	for _, n := range asked[1:] {
		if n > 1 {
			batched++
		}
	}
	if asked[0] != slots || batched < len(asked[1:])/2 {
		t.Fatalf("fetches asked for %v: want the first for all %d slots and most later ones for more than one", asked, slots)
	}
}
