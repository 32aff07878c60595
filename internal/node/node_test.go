package node

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/fsm"
	"github.com/floruntime/flo/internal/journal"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// Test opcodes for a tiny FIFO machine: push appends an item, pop takes the
// oldest or comes back Empty, so blocking pops exercise parking and waking.
const (
	opPush wire.Op = 0xE0
	opPop  wire.Op = 0xE1
	// opPopNow is a pop whose handler gives no wait keys: it never waits.
	opPopNow wire.Op = 0xE2
	// opPeek reads the oldest item without taking it, or comes back Empty.
	opPeek wire.Op = 0xE3
)

const waitKey = "fifo"

type fifo struct {
	mu    sync.Mutex
	items []uint64
	next  uint64
	due   int64 // NextDue for pulse tests
	pulse chan int64
	pops  int // pop attempts applied

	// Group numbers (Committed calls before the command was applied) of
	// the latest push and the latest pop that took an item.
	groups, pushGroup, takeGroup int

	// While holdReads is set, a peek reports on readHeld and then waits
	// for holdReads to close (tests use it to hold the retry goroutine).
	holdReads chan struct{}
	readHeld  chan struct{}
}

func (f *fifo) peek(*command.Command) command.Result {
	f.mu.Lock()
	hold, held := f.holdReads, f.readHeld
	f.mu.Unlock()
	if hold != nil {
		held <- struct{}{}
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.items) == 0 {
		return command.Result{Empty: true}
	}
	return command.Reply(binary.LittleEndian.AppendUint64(nil, f.items[0]))
}

func (f *fifo) Committed() {
	f.mu.Lock()
	f.groups++
	f.mu.Unlock()
}

func (f *fifo) Handlers() map[wire.Op]command.Handler {
	keys := func(*command.Command) []string { return []string{waitKey} }
	return map[wire.Op]command.Handler{
		opPush:   {Kind: command.Write},
		opPop:    {Kind: command.Write, WaitKeys: keys},
		opPopNow: {Kind: command.Write, WaitKeys: func(*command.Command) []string { return nil }},
		opPeek:   {Kind: command.Read, Read: f.peek, WaitKeys: keys},
	}
}

func (f *fifo) Apply(cmd *command.Command, _ storage.Batch) command.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case cmd.Op == command.OpPulse:
		if f.due != 0 && cmd.Time >= f.due {
			f.due = 0
			f.items = append(f.items, 999)
			if f.pulse != nil {
				f.pulse <- cmd.Time
			}
			return command.Result{Wake: []string{waitKey}}
		}
		return command.Result{}
	case wire.Op(cmd.Op) == opPush:
		for range max(1, len(cmd.Value)) { // a push of n bytes pushes n items
			f.next++
			f.items = append(f.items, f.next)
		}
		f.pushGroup = f.groups
		return command.Result{Wake: []string{waitKey}}
	case wire.Op(cmd.Op) == opPop, wire.Op(cmd.Op) == opPopNow:
		f.pops++
		if len(f.items) == 0 {
			return command.Result{Empty: true}
		}
		v := f.items[0]
		f.items = f.items[1:]
		f.takeGroup = f.groups
		return command.Reply(binary.LittleEndian.AppendUint64(nil, v))
	}
	return command.Result{}
}

func (f *fifo) Load(storage.Reader) error { return nil }

func (f *fifo) NextDue() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.due
}

func newNode(t *testing.T, m *fifo, o Options) *Node {
	t.Helper()
	db, err := storage.Open("n", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsm.New(m)
	if err != nil {
		t.Fatal(err)
	}
	j := journal.NewLocal(db, f, journal.LocalOptions{Durability: journal.Sync}, func(err error) { panic(err) })
	n := New(f, j, o)
	t.Cleanup(func() { n.Close(); j.Close(); db.Close() })
	return n
}

// do runs one call and waits for its result.
func do(ctx context.Context, n *Node, op wire.Op, b Block) command.Result {
	ch := make(chan command.Result, 1)
	n.Do(ctx, &command.Command{Op: command.Op(op)}, b, func(r command.Result) { ch <- r })
	return <-ch
}

func popped(r command.Result) uint64 {
	if len(r.Body) != 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(r.Body)
}

func TestNode_EveryPushReachesExactlyOneBlockedPop(t *testing.T) {
	t.Parallel()
	n := newNode(t, &fifo{}, Options{})
	const pops, pushers = 200, 4
	results := make(chan uint64, pops)
	for i := 0; i < pops; i++ {
		go func() { results <- popped(do(context.Background(), n, opPop, Block{Enabled: true})) }()
	}
	var wg sync.WaitGroup
	for p := 0; p < pushers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < pops/pushers; i++ {
				do(context.Background(), n, opPush, Block{})
			}
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i := 0; i < pops; i++ {
		select {
		case v := <-results:
			if v == 0 || seen[v] {
				t.Fatalf("item %d delivered twice or empty", v)
			}
			seen[v] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d blocked pops were served: a wake-up was lost", i, pops)
		}
	}
}

func TestNode_WaitersAreServedInArrivalOrder(t *testing.T) {
	t.Parallel()
	n := newNode(t, &fifo{}, Options{})
	order := make(chan int, 5)
	for i := 0; i < 5; i++ {
		go func() {
			do(context.Background(), n, opPop, Block{Enabled: true})
			order <- i
		}()
		// Let waiter i park before waiter i+1 arrives.
		waitParked(t, n, i+1)
	}
	for i := 0; i < 5; i++ {
		do(context.Background(), n, opPush, Block{})
		if got := <-order; got != i {
			t.Fatalf("push %d served waiter %d", i, got)
		}
	}
}

func waitParked(t *testing.T, n *Node, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Count calls that are registered and not mid-attempt: parked.
		n.mu.Lock()
		idle := map[*call]bool{}
		for _, cs := range n.waiters {
			for _, c := range cs {
				if !c.running {
					idle[c] = true
				}
			}
		}
		got := len(idle)
		n.mu.Unlock()
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls parked, want %d", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNode_DeadlineAnswersEmpty(t *testing.T) {
	t.Parallel()
	n := newNode(t, &fifo{}, Options{})
	start := time.Now()
	r := do(context.Background(), n, opPop, Block{Enabled: true, For: 50 * time.Millisecond})
	if !r.Empty || r.Err != nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("timeout result %+v after %v", r, time.Since(start))
	}
	// Without Block the call never waits.
	if r := do(context.Background(), n, opPop, Block{}); !r.Empty {
		t.Fatalf("non-blocking pop: %+v", r)
	}
}

func TestNode_CancelledCallTakesNothing(t *testing.T) {
	t.Parallel()
	n := newNode(t, &fifo{}, Options{MaxWaiters: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan command.Result, 1)
	n.Do(ctx, &command.Command{Op: command.Op(opPop)}, Block{Enabled: true}, func(r command.Result) { done <- r })
	waitParked(t, n, 1)
	if r := do(context.Background(), n, opPop, Block{Enabled: true}); r.Err == nil {
		t.Fatal("a second waiter past MaxWaiters was accepted")
	}
	cancel()
	if r := <-done; !r.Empty {
		t.Fatalf("cancelled call got %+v", r)
	}
	do(context.Background(), n, opPush, Block{})
	if v := popped(do(context.Background(), n, opPop, Block{})); v != 1 {
		t.Fatalf("item taken by a cancelled call: next pop = %d", v)
	}
}

func TestNode_PulseRunsWhenDueAndWakes(t *testing.T) {
	t.Parallel()
	m := &fifo{pulse: make(chan int64, 1)}
	n := newNode(t, m, Options{PulseInterval: 5 * time.Millisecond})
	res := make(chan command.Result, 1)
	go func() { res <- do(context.Background(), n, opPop, Block{Enabled: true, For: 10 * time.Second}) }()
	waitParked(t, n, 1)
	due := time.Now().Add(30 * time.Millisecond).UnixNano()
	m.mu.Lock()
	m.due = due
	m.mu.Unlock()
	if at := <-m.pulse; at < due {
		t.Fatalf("pulse applied at %d, before due %d", at, due)
	}
	if v := popped(<-res); v != 999 {
		t.Fatalf("pulse did not wake the waiter: %d", v)
	}
}

func TestNode_TimeNeverGoesBackwards(t *testing.T) {
	t.Parallel()
	clock := time.Unix(100, 0)
	var mu sync.Mutex
	n := newNode(t, &fifo{}, Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	a := n.now()
	mu.Lock()
	clock = clock.Add(-time.Hour)
	mu.Unlock()
	if b := n.now(); b < a {
		t.Fatalf("time went back: %d < %d", b, a)
	}
}

func TestNode_OnePushRetriesOneParkedWriterNotAll(t *testing.T) {
	t.Parallel()
	m := &fifo{}
	n := newNode(t, m, Options{})
	const waiters = 50
	got := make(chan uint64, waiters)
	for i := 0; i < waiters; i++ {
		go func() {
			got <- popped(do(context.Background(), n, opPop, Block{Enabled: true, For: 300 * time.Millisecond}))
		}()
	}
	waitParked(t, n, waiters)
	m.mu.Lock()
	before := m.pops
	m.mu.Unlock()
	do(context.Background(), n, opPush, Block{})
	if v := <-got; v != 1 {
		t.Fatalf("first result %d", v)
	}
	m.mu.Lock()
	retries := m.pops - before
	m.mu.Unlock()
	// The taker, plus at most the one it passed the signal on to.
	if retries > 2 {
		t.Fatalf("one push caused %d pop attempts; parked writers must not all retry", retries)
	}
	for i := 1; i < waiters; i++ {
		if v := <-got; v != 0 {
			t.Fatalf("a second item appeared: %d", v)
		}
	}
}

// A parked pop woken by a push is applied in the push's group, so both are
// answered after the same commit (one fsync).
func TestNode_WokenWriterJoinsTheWakersGroup(t *testing.T) {
	t.Parallel()
	m := &fifo{}
	n := newNode(t, m, Options{})
	got := make(chan uint64, 1)
	go func() { got <- popped(do(context.Background(), n, opPop, Block{Enabled: true})) }()
	waitParked(t, n, 1)
	do(context.Background(), n, opPush, Block{})
	if v := <-got; v != 1 {
		t.Fatalf("pop got %d", v)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.takeGroup != m.pushGroup {
		t.Fatalf("the woken pop was applied in group %d, its push in group %d", m.takeGroup, m.pushGroup)
	}
}

// TestNode_ExpiringPopsNeverLoseAnItem: pops with a 1 ms deadline race
// pushes. Every item is either answered to a pop or still queued: a pop
// that expires must not also take an item whose answer is dropped.
func TestNode_ExpiringPopsNeverLoseAnItem(t *testing.T) {
	t.Parallel()
	m := &fifo{}
	n := newNode(t, m, Options{})
	stop := make(chan struct{})
	var got sync.Map // item -> true
	var poppers sync.WaitGroup
	for range 64 {
		poppers.Add(1)
		go func() {
			defer poppers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if v := popped(do(context.Background(), n, opPop, Block{Enabled: true, For: time.Millisecond})); v != 0 {
					if _, dup := got.LoadOrStore(v, true); dup {
						t.Errorf("item %d answered twice", v)
					}
				}
			}
		}()
	}
	var pushers sync.WaitGroup
	for range 4 {
		pushers.Add(1)
		go func() {
			defer pushers.Done()
			for range 500 {
				do(context.Background(), n, opPush, Block{})
			}
		}()
	}
	pushers.Wait()
	close(stop)
	poppers.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	answered := 0
	got.Range(func(any, any) bool { answered++; return true })
	if answered+len(m.items) != int(m.next) {
		t.Fatalf("%d pushed, %d answered, %d still queued: %d lost", m.next, answered, len(m.items), int(m.next)-answered-len(m.items))
	}
}

// TestNode_CloseAnswersEveryCall: calls woken but not yet retried when the
// node closes are answered too, not left waiting forever.
func TestNode_CloseAnswersEveryCall(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		db, err := storage.Open("n", storage.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		m := &fifo{}
		f, err := fsm.New(m)
		if err != nil {
			t.Fatal(err)
		}
		j := journal.NewLocal(db, f, journal.LocalOptions{Durability: journal.Sync}, func(err error) { panic(err) })
		n := New(f, j, Options{})
		const pops = 40
		answered := make(chan struct{}, pops)
		for range pops {
			n.Do(context.Background(), &command.Command{Op: command.Op(opPop)}, Block{Enabled: true}, func(command.Result) { answered <- struct{}{} })
		}
		for range pops / 2 {
			do(context.Background(), n, opPush, Block{})
		}
		n.Close() // with pops woken by the pushes still queued for their retry
		for i := range pops {
			select {
			case <-answered:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: %d of %d pops never answered after Close", round, pops-i, pops)
			}
		}
		j.Close()
		db.Close()
	}
}

// TestNode_CancelledPopTakesNothing: a parked pop whose context (its
// connection) has ended gets no item even if the push comes before its
// cancellation is processed; the next parked pop gets it.
func TestNode_CancelledPopTakesNothing(t *testing.T) {
	t.Parallel()
	n := newNode(t, &fifo{}, Options{})
	for round := range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		gone := make(chan command.Result, 1)
		n.Do(ctx, &command.Command{Op: command.Op(opPop)}, Block{Enabled: true}, func(r command.Result) { gone <- r })
		next := make(chan command.Result, 1)
		n.Do(context.Background(), &command.Command{Op: command.Op(opPop)}, Block{Enabled: true}, func(r command.Result) { next <- r })
		cancel()
		do(context.Background(), n, opPush, Block{})
		if v := popped(<-gone); v != 0 {
			t.Fatalf("round %d: the cancelled pop took item %d", round, v)
		}
		if v := popped(<-next); v == 0 {
			t.Fatalf("round %d: the live pop got nothing", round)
		}
	}
}

// TestNode_NoWaitKeysMeansNoWait: a blocking call whose handler returns no
// wait keys for it is answered by its first attempt, and holds no waiter.
func TestNode_NoWaitKeysMeansNoWait(t *testing.T) {
	t.Parallel()
	n := newNode(t, &fifo{}, Options{MaxWaiters: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 { // more than MaxWaiters: none is held
		ch := make(chan command.Result, 1)
		n.Do(ctx, &command.Command{Op: command.Op(opPopNow)}, Block{Enabled: true}, func(r command.Result) { ch <- r })
		select {
		case r := <-ch:
			if r.Err != nil || !r.Empty {
				t.Fatalf("pop with no wait keys = %+v", r)
			}
		case <-ctx.Done():
			t.Fatal("a call with no wait keys parked")
		}
	}
}

// TestNode_CancelledPopQueuedForRetryTakesNothing: a pop woken by a signal
// whose connection ends while it waits for its retry (the retry goroutine
// is busy) is not attempted: it would take an item for nobody (SEMANTICS
// §1.2: a parked call whose connection drops takes nothing).
func TestNode_CancelledPopQueuedForRetryTakesNothing(t *testing.T) {
	t.Parallel()
	m := &fifo{}
	n := newNode(t, m, Options{})
	bg := context.Background()
	peeked := make(chan command.Result, 1)
	n.Do(bg, &command.Command{Op: command.Op(opPeek)}, Block{Enabled: true}, func(r command.Result) { peeked <- r })
	first := make(chan command.Result, 1)
	n.Do(bg, &command.Command{Op: command.Op(opPop)}, Block{Enabled: true}, func(r command.Result) { first <- r })
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	gone := make(chan command.Result, 1)
	n.Do(ctx, &command.Command{Op: command.Op(opPop)}, Block{Enabled: true}, func(r command.Result) { gone <- r })
	waitParked(t, n, 3)

	release := make(chan struct{})
	m.mu.Lock()
	m.holdReads, m.readHeld = release, make(chan struct{}, 1)
	m.mu.Unlock()
	// Two items: the first pop takes one in the push's group and passes the
	// signal on to the second pop, which is queued for its retry behind the
	// peek's retry, held in its read.
	pushed := make(chan command.Result, 1)
	n.Do(bg, &command.Command{Op: command.Op(opPush), Value: []byte{0, 0}}, Block{}, func(r command.Result) { pushed <- r })
	<-pushed
	<-m.readHeld
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Running, with the retry goroutine held: queued for its retry.
		n.mu.Lock()
		queued := false
		for _, c := range n.waiters[waitKey] {
			queued = queued || (c.ctx == ctx && c.running)
		}
		n.mu.Unlock()
		if queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second pop was never woken")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	close(release)
	if v := popped(<-first); v != 1 {
		t.Fatalf("first pop got %d", v)
	}
	if r := <-peeked; popped(r) == 0 {
		t.Fatalf("woken peek got %+v", r)
	}
	if v := popped(<-gone); v != 0 {
		t.Fatalf("the pop whose connection ended took item %d", v)
	}
	if v := popped(do(bg, n, opPop, Block{})); v != 2 {
		t.Fatalf("next pop got %d, want the item the cancelled pop must not take", v)
	}
}

// TestNode_PulseFollowsTheNodeClock: after the system clock steps back,
// commands keep the node's time (it never goes backwards), so work due by
// that time is due for the pulse too; it must not wait for the wall clock
// to catch up (SEMANTICS §1.2: time-based wake-ups within ~100 ms).
func TestNode_PulseFollowsTheNodeClock(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	clock := time.Now()
	m := &fifo{pulse: make(chan int64, 1)}
	n := newNode(t, m, Options{PulseInterval: 5 * time.Millisecond, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}})
	stamped := n.now()
	mu.Lock()
	clock = clock.Add(-time.Hour)
	mu.Unlock()
	// Due at the node's time: a write stamped now would already see it.
	m.mu.Lock()
	m.due = stamped
	m.mu.Unlock()
	select {
	case at := <-m.pulse:
		if at < stamped {
			t.Fatalf("pulse at %d, before the node's time %d", at, stamped)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no pulse for work due at the node's time after the clock stepped back")
	}
}
