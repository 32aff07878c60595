package flo_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/wire"
)

func queueSetup(t *testing.T) (*flotest.Server, *flo.Client, context.Context) {
	t.Helper()
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	return srv, srv.Client(t, flo.Options{}), context.Background()
}

func enqueueAll(t *testing.T, c *flo.Client, queue string, payloads ...string) []uint64 {
	t.Helper()
	seqs := make([]uint64, len(payloads))
	for i, p := range payloads {
		s, err := c.Queue.Enqueue(context.Background(), queue, []byte(p), nil)
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = s
	}
	return seqs
}

func mustDequeue(t *testing.T, c *flo.Client, queue string, count int, o *flo.QueueDequeueOptions) []flo.QueueMessage {
	t.Helper()
	ms, err := c.Queue.Dequeue(context.Background(), queue, count, o)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func queuePayloads(ms []flo.QueueMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	return out
}

func queueSeqs(ms []flo.QueueMessage) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func mustStats(t *testing.T, c *flo.Client, queue string) flo.QueueStats {
	t.Helper()
	s, err := c.Queue.Stats(context.Background(), queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestQueue_PriorityOrder(t *testing.T) {
	_, c, ctx := queueSetup(t)
	for _, m := range []struct {
		payload string
		prio    uint8
	}{{"first low", 0}, {"mid", 5}, {"second low", 0}, {"high", 10}} {
		if _, err := c.Queue.Enqueue(ctx, "jobs", []byte(m.payload), &flo.QueueEnqueueOptions{Priority: m.prio}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for range 4 {
		got = append(got, queuePayloads(mustDequeue(t, c, "jobs", 1, nil))...)
	}
	if want := []string{"high", "mid", "first low", "second low"}; !slices.Equal(got, want) {
		t.Fatalf("dequeue order %q, want %q", got, want)
	}
	if ms := mustDequeue(t, c, "jobs", 10, nil); len(ms) != 0 {
		t.Fatalf("drained queue returned %q", queuePayloads(ms))
	}
}

func TestQueue_Delay(t *testing.T) {
	_, c, ctx := queueSetup(t)
	start := time.Now()
	if _, err := c.Queue.Enqueue(ctx, "jobs", []byte("later"), &flo.QueueEnqueueOptions{Delay: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if ms := mustDequeue(t, c, "jobs", 1, nil); len(ms) != 0 {
		t.Fatal("delayed message delivered at once")
	}
	if s := mustStats(t, c, "jobs"); s.Delayed != 1 || s.Ready != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A blocking dequeue is woken when the delay ends.
	ms := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Block: 5 * time.Second})
	if len(ms) != 1 || string(ms[0].Payload) != "later" {
		t.Fatalf("got %q", queuePayloads(ms))
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("delivered after %v, before the 300ms delay", waited)
	}
}

func TestQueue_Dedup(t *testing.T) {
	_, c, ctx := queueSetup(t)
	o := &flo.QueueEnqueueOptions{DedupKey: "order-17"}
	first, err := c.Queue.Enqueue(ctx, "jobs", []byte("a"), o)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Queue.Enqueue(ctx, "jobs", []byte("b"), o)
	if err != nil || second != first {
		t.Fatalf("duplicate: seq %d (%v), want the original %d", second, err, first)
	}
	if other, _ := c.Queue.Enqueue(ctx, "jobs", []byte("c"), &flo.QueueEnqueueOptions{DedupKey: "order-18"}); other == first {
		t.Fatal("a different key was deduplicated")
	}
	ms := mustDequeue(t, c, "jobs", 10, nil)
	if got := queuePayloads(ms); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("queue holds %q", got)
	}
	// Still held after its message is acked (for the 5-minute window).
	if err := c.Queue.Ack(ctx, "jobs", queueSeqs(ms), nil); err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Queue.Enqueue(ctx, "jobs", []byte("d"), o); again != first {
		t.Fatalf("key released after ack within the hold: %d", again)
	}
	if s := mustStats(t, c, "jobs"); s != (flo.QueueStats{}) {
		t.Fatalf("duplicates created messages: %+v", s)
	}
}

func TestQueue_RedeliveryAfterVisibilityTimeout(t *testing.T) {
	_, c, ctx := queueSetup(t)
	enqueueAll(t, c, "jobs", "work")
	// A lease long enough that the dequeue below comes before it ends even
	// on a loaded machine.
	first := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Visibility: time.Second})
	if len(first) != 1 || first[0].Deliveries != 1 {
		t.Fatalf("first delivery %+v", first)
	}
	if ms := mustDequeue(t, c, "jobs", 1, nil); len(ms) != 0 {
		t.Fatal("leased message visible to another dequeue")
	}
	// Not acked: it comes back once the lease expires, woken by the pulse.
	again := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Block: 5 * time.Second})
	if len(again) != 1 || again[0].Seq != first[0].Seq || again[0].Deliveries != 2 {
		t.Fatalf("redelivery %+v", again)
	}
	if again[0].Reason != "visibility timeout expired" {
		t.Fatalf("reason %q", again[0].Reason)
	}
	if err := c.Queue.Ack(ctx, "jobs", []uint64{again[0].Seq}, nil); err != nil {
		t.Fatal(err)
	}
	if s := mustStats(t, c, "jobs"); s != (flo.QueueStats{}) {
		t.Fatalf("after ack %+v", s)
	}
}

func TestQueue_TouchKeepsMessageHidden(t *testing.T) {
	_, c, ctx := queueSetup(t)
	enqueueAll(t, c, "jobs", "slow")
	const vis = 500 * time.Millisecond
	// held is a time before which the lease is known to be live: the
	// server set its deadline to at least held+vis.
	held := time.Now()
	ms := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Visibility: vis})
	seq := ms[0].Seq
	leased := time.Now()
	// Touch every 100 ms for three visibility timeouts: never redelivered.
	for time.Since(leased) < 3*vis {
		touched := time.Now()
		if err := c.Queue.Touch(ctx, "jobs", []uint64{seq}, nil); err != nil {
			t.Fatal(err)
		}
		got := mustDequeue(t, c, "jobs", 1, nil)
		if len(got) != 0 {
			// The previous touch (or the lease) guaranteed the message
			// hidden until held+vis. Only a host so loaded that this touch
			// arrived after that deadline can legitimately see it return.
			if since := time.Since(held); since < vis {
				t.Fatalf("touched message redelivered %v after a touch with a %v lease", since, vis)
			}
			t.Skipf("inconclusive: %v between touches, over the %v lease", time.Since(held), vis)
		}
		held = touched
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Queue.Touch(ctx, "jobs", []uint64{seq}, nil); err != nil {
		t.Fatal(err)
	}
	if s := mustStats(t, c, "jobs"); s.InFlight != 1 {
		if time.Since(held) < vis {
			t.Fatalf("stats %+v right after a touch", s)
		}
		t.Skipf("inconclusive: %v since the last touch, over the %v lease", time.Since(held), vis)
	}
	// Once touching stops, the lease runs out and the message returns.
	back := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Block: 5 * time.Second})
	if len(back) != 1 || back[0].Seq != seq || back[0].Deliveries != 2 {
		t.Fatalf("after touching stopped: %+v", back)
	}
}

func TestQueue_Nack(t *testing.T) {
	_, c, ctx := queueSetup(t)
	enqueueAll(t, c, "jobs", "a", "b")
	a := mustDequeue(t, c, "jobs", 1, nil)[0]
	enqueueAll(t, c, "jobs", "c")
	if err := c.Queue.Nack(ctx, "jobs", []uint64{a.Seq, 999}, &flo.QueueNackOptions{Reason: "flaky"}); err != nil {
		t.Fatal(err)
	}
	// Back at its original position, ahead of later messages.
	ms := mustDequeue(t, c, "jobs", 10, nil)
	if got := queuePayloads(ms); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("order after nack %q", got)
	}
	if ms[0].Deliveries != 2 || ms[0].Reason != "flaky" {
		t.Fatalf("nacked message %+v", ms[0])
	}
	// With a delay the message waits before it is ready again.
	if err := c.Queue.Nack(ctx, "jobs", []uint64{ms[1].Seq}, &flo.QueueNackOptions{Delay: time.Second}); err != nil {
		t.Fatal(err)
	}
	if s := mustStats(t, c, "jobs"); s.Delayed != 1 || s.InFlight != 2 || s.Ready != 0 {
		t.Fatalf("stats %+v", s)
	}
	back := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Block: 5 * time.Second})
	if len(back) != 1 || back[0].Seq != ms[1].Seq {
		t.Fatalf("after nack delay %+v", back)
	}
}

func TestQueue_NackToDLQThenListRequeueDequeue(t *testing.T) {
	_, c, ctx := queueSetup(t)
	seqs := enqueueAll(t, c, "jobs", "poison", "fine")
	m := mustDequeue(t, c, "jobs", 1, nil)[0]
	if m.Seq != seqs[0] {
		t.Fatalf("dequeued %d", m.Seq)
	}
	if err := c.Queue.Nack(ctx, "jobs", []uint64{m.Seq}, &flo.QueueNackOptions{ToDLQ: true, Reason: "cannot parse"}); err != nil {
		t.Fatal(err)
	}
	dl, err := c.Queue.DLQList(ctx, "jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 || dl[0].Seq != m.Seq || string(dl[0].Payload) != "poison" || dl[0].Deliveries != 1 || dl[0].Reason != "cannot parse" || dl[0].DeadAt.IsZero() {
		t.Fatalf("dlq %+v", dl)
	}
	enqueueAll(t, c, "jobs", "newer")
	if err := c.Queue.DLQRequeue(ctx, "jobs", []uint64{m.Seq, 12345}, nil); err != nil {
		t.Fatal(err)
	}
	if dl, _ := c.Queue.DLQList(ctx, "jobs", nil); len(dl) != 0 {
		t.Fatalf("dlq after requeue %+v", dl)
	}
	// Same seq, delivery count reset, at the back of its priority.
	ms := mustDequeue(t, c, "jobs", 10, nil)
	if got := queuePayloads(ms); !slices.Equal(got, []string{"fine", "newer", "poison"}) {
		t.Fatalf("order after requeue %q", got)
	}
	if ms[2].Seq != m.Seq || ms[2].Deliveries != 1 {
		t.Fatalf("requeued message %+v", ms[2])
	}
}

func TestQueue_DeliveryLimitMovesToDLQ(t *testing.T) {
	_, c, ctx := queueSetup(t)
	seq := enqueueAll(t, c, "jobs", "poison")[0]
	// Four failed deliveries by nack, the fifth by an expired lease: every
	// delivery counts, and the fifth failure dead-letters the message.
	for i := 1; i <= 4; i++ {
		m := mustDequeue(t, c, "jobs", 1, nil)
		if len(m) != 1 || m[0].Deliveries != i {
			t.Fatalf("delivery %d: %+v", i, m)
		}
		if err := c.Queue.Nack(ctx, "jobs", []uint64{seq}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if m := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Visibility: 100 * time.Millisecond}); len(m) != 1 || m[0].Deliveries != 5 {
		t.Fatalf("fifth delivery %+v", m)
	}
	var dl []flo.QueueMessage
	waitUntil(t, 5*time.Second, "the message to reach the DLQ", func() bool {
		var err error
		dl, err = c.Queue.DLQList(ctx, "jobs", nil)
		return err == nil && len(dl) == 1
	})
	if dl[0].Seq != seq || dl[0].Deliveries != 5 || dl[0].Reason != "visibility timeout expired" {
		t.Fatalf("dlq %+v", dl[0])
	}
	if m := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Block: 300 * time.Millisecond}); len(m) != 0 {
		t.Fatalf("dead letter delivered: %+v", m)
	}
	if s := mustStats(t, c, "jobs"); s != (flo.QueueStats{DLQ: 1}) {
		t.Fatalf("stats %+v", s)
	}
	n, err := c.Queue.DLQPurge(ctx, "jobs", nil)
	if err != nil || n != 1 {
		t.Fatalf("purge %d %v", n, err)
	}
}

func TestQueue_PeekTakesNoLease(t *testing.T) {
	_, c, ctx := queueSetup(t)
	enqueueAll(t, c, "jobs", "a", "b", "c")
	if _, err := c.Queue.Enqueue(ctx, "jobs", []byte("urgent"), &flo.QueueEnqueueOptions{Priority: 7}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ms, err := c.Queue.Peek(ctx, "jobs", 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := queuePayloads(ms); !slices.Equal(got, []string{"urgent", "a", "b"}) {
			t.Fatalf("peek %q", got)
		}
		if ms[0].Deliveries != 0 {
			t.Fatalf("peek counted a delivery: %+v", ms[0])
		}
	}
	if s := mustStats(t, c, "jobs"); s.InFlight != 0 || s.Ready != 4 {
		t.Fatalf("stats after peek %+v", s)
	}
	ms := mustDequeue(t, c, "jobs", 10, nil)
	if len(ms) != 4 || ms[0].Deliveries != 1 {
		t.Fatalf("dequeue after peek %+v", ms)
	}
	if pk, _ := c.Queue.Peek(ctx, "jobs", 10, nil); len(pk) != 0 {
		t.Fatalf("peek shows leased messages %q", queuePayloads(pk))
	}
}

func TestQueue_LongPollWokenByEnqueueOnAnotherConnection(t *testing.T) {
	srv, c, ctx := queueSetup(t)
	producer := srv.Client(t, flo.Options{})
	got := make(chan []flo.QueueMessage, 1)
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		ms, err := c.Queue.Dequeue(ctx, "jobs", 5, &flo.QueueDequeueOptions{Block: flo.Forever})
		errc <- err
		got <- ms
	}()
	// Give the dequeue time to park; the assertion holds either way.
	time.Sleep(100 * time.Millisecond)
	if _, err := producer.Queue.Enqueue(ctx, "jobs", []byte("wake up"), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
		ms := <-got
		if len(ms) != 1 || string(ms[0].Payload) != "wake up" {
			t.Fatalf("woken with %+v", ms)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("long poll not woken %v after the enqueue", time.Since(start))
	}
}

func TestQueue_LongPollTimeoutReturnsEmpty(t *testing.T) {
	_, c, _ := queueSetup(t)
	start := time.Now()
	ms, err := c.Queue.Dequeue(context.Background(), "empty", 1, &flo.QueueDequeueOptions{Block: 250 * time.Millisecond})
	if err != nil || len(ms) != 0 {
		t.Fatalf("timeout: %+v %v", ms, err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("returned after %v, before the block ended", waited)
	}
}

func TestQueue_LongPollDroppedWaiterTakesNothing(t *testing.T) {
	srv, c, ctx := queueSetup(t)
	dropped := srv.Client(t, flo.Options{})
	second := srv.Client(t, flo.Options{})
	dctx, cancel := context.WithCancel(ctx)
	droppedDone := make(chan error, 1)
	go func() {
		// Were it to take the message anyway, the short lease would hand it
		// to the live waiter as a second delivery.
		_, err := dropped.Queue.Dequeue(dctx, "jobs", 1, &flo.QueueDequeueOptions{Block: flo.Forever, Visibility: 200 * time.Millisecond})
		droppedDone <- err
	}()
	time.Sleep(50 * time.Millisecond)
	got := make(chan []flo.QueueMessage, 1)
	go func() {
		ms, _ := second.Queue.Dequeue(ctx, "jobs", 1, &flo.QueueDequeueOptions{Block: 10 * time.Second})
		got <- ms
	}()
	time.Sleep(50 * time.Millisecond)
	cancel() // the first waiter's connection closes
	if err := <-droppedDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled dequeue: %v", err)
	}
	time.Sleep(time.Second) // let the server see the disconnect, even on a loaded machine
	seq := enqueueAll(t, c, "jobs", "only one")[0]
	select {
	case ms := <-got:
		if len(ms) != 1 || ms[0].Seq != seq || ms[0].Deliveries != 1 {
			t.Fatalf("live waiter got %+v", ms)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("live waiter not served: the dropped waiter took the message")
	}
}

func TestQueue_FourConsumersDrainThousandExactlyOnce(t *testing.T) {
	srv, c, ctx := queueSetup(t)
	const n = 1000
	for i := range n {
		if _, err := c.Queue.Enqueue(ctx, "jobs", []byte(fmt.Sprint(i)), &flo.QueueEnqueueOptions{Priority: uint8(i % 3)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	deliveries := map[uint64]int{}
	var handled atomic.Int64
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 4 {
		cl := srv.Client(t, flo.Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cl.Queue.Consume(cctx, "jobs", func(ctx context.Context, m *flo.QueueMessage) error {
				mu.Lock()
				deliveries[m.Seq]++
				mu.Unlock()
				handled.Add(1)
				return nil
			}, &flo.QueueConsumeOptions{Concurrency: 4, Poll: 200 * time.Millisecond, OnError: func(err error) {
				t.Errorf("consumer %d: %v", w, err)
			}})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	waitUntil(t, 30*time.Second, "1000 messages handled", func() bool { return handled.Load() >= n })
	waitUntil(t, 10*time.Second, "every ack to land", func() bool { return mustStats(t, c, "jobs") == flo.QueueStats{} })
	stop()
	wg.Wait()
	if len(deliveries) != n {
		t.Fatalf("%d distinct messages delivered, want %d", len(deliveries), n)
	}
	for seq, k := range deliveries {
		if k != 1 {
			t.Fatalf("message %d delivered %d times", seq, k)
		}
	}
}

func TestQueue_ConsumerRetriesFailuresAndDrainsOnCancel(t *testing.T) {
	_, c, ctx := queueSetup(t)
	seqs := enqueueAll(t, c, "jobs", "flaky", "poison", "slow")
	var mu sync.Mutex
	attempts := map[string]int{}
	slowStarted := make(chan struct{})
	release := make(chan struct{})
	var errs []error
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Queue.Consume(cctx, "jobs", func(ctx context.Context, m *flo.QueueMessage) error {
			mu.Lock()
			attempts[string(m.Payload)]++
			k := attempts[string(m.Payload)]
			mu.Unlock()
			switch string(m.Payload) {
			case "flaky":
				if k == 1 {
					return errors.New("try again")
				}
			case "poison":
				return flo.Permanent(errors.New("cannot parse"))
			case "slow":
				close(slowStarted)
				<-release // outlives its lease: the consumer must keep touching
			}
			return nil
		}, &flo.QueueConsumeOptions{Concurrency: 3, Visibility: time.Second, Poll: 100 * time.Millisecond, OnError: func(err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}})
	}()
	<-slowStarted
	waitUntil(t, 5*time.Second, "flaky to succeed and poison to be dead-lettered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		dl, _ := c.Queue.DLQList(ctx, "jobs", nil)
		return attempts["flaky"] == 2 && len(dl) == 1
	})
	time.Sleep(2500 * time.Millisecond) // over two leases of the slow handler
	stop()                              // drain: Consume waits for the slow handler
	select {
	case <-done:
		t.Fatal("Consume returned before its running handler finished")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts["slow"] != 1 {
		t.Fatalf("slow message handled %d times: touches did not keep it leased", attempts["slow"])
	}
	dl, _ := c.Queue.DLQList(ctx, "jobs", nil)
	if len(dl) != 1 || dl[0].Seq != seqs[1] || dl[0].Reason != "cannot parse" {
		t.Fatalf("dlq %+v", dl)
	}
	if s := mustStats(t, c, "jobs"); s != (flo.QueueStats{DLQ: 1}) {
		t.Fatalf("after drain %+v (slow must be acked)", s)
	}
	var sawRetry bool
	for _, err := range errs {
		sawRetry = sawRetry || strings.Contains(err.Error(), "try again")
	}
	if !sawRetry {
		t.Fatalf("OnError never saw the handler failure: %v", errs)
	}
}

func TestQueue_LimitsAtTheEdge(t *testing.T) {
	_, c, ctx := queueSetup(t)
	for i := range 150 {
		if _, err := c.Queue.Enqueue(ctx, "jobs", []byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if ms := mustDequeue(t, c, "jobs", 0, nil); len(ms) != 1 {
		t.Fatalf("count 0 returned %d", len(ms))
	}
	if ms := mustDequeue(t, c, "jobs", 101, nil); len(ms) != 100 {
		t.Fatalf("count 101 returned %d", len(ms))
	}
	name := strings.Repeat("q", 256)
	if _, err := c.Queue.Enqueue(ctx, name, nil, nil); err != nil {
		t.Fatalf("256-byte name: %v", err)
	}
	if _, err := c.Queue.Enqueue(ctx, name+"q", nil, nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("257-byte name: %v", err)
	}
	if _, err := c.Queue.Enqueue(ctx, "", nil, nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("empty name: %v", err)
	}
	if _, err := c.Queue.Enqueue(ctx, "big", make([]byte, 16<<20), nil); err != nil {
		t.Fatalf("16 MiB payload: %v", err)
	}
	if _, err := c.Queue.Enqueue(ctx, "big", make([]byte, 16<<20+1), nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("16 MiB + 1 payload: %v", err)
	}
	if _, err := c.Queue.Enqueue(ctx, "jobs", nil, &flo.QueueEnqueueOptions{DedupKey: strings.Repeat("k", 256)}); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("256-byte dedup key: %v", err)
	}
	if _, err := c.Queue.Enqueue(ctx, "jobs", nil, &flo.QueueEnqueueOptions{Delay: 366 * 24 * time.Hour}); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("delay over a year: %v", err)
	}
	// The largest values allowed, and one past; a refusal changes nothing.
	const year = 365 * 24 * time.Hour
	edge := func(what string, o *flo.QueueEnqueueOptions) {
		t.Helper()
		if _, err := c.Queue.Enqueue(ctx, "edge", nil, o); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	prio := uint8(255)
	edge("dedup key of 255 bytes", &flo.QueueEnqueueOptions{DedupKey: strings.Repeat("k", 255)})
	edge("delay of 365 days", &flo.QueueEnqueueOptions{Delay: year})
	edge("priority 255", &flo.QueueEnqueueOptions{Priority: prio})
	before := mustStats(t, c, "edge")
	if _, err := c.Queue.Enqueue(ctx, "edge", nil, &flo.QueueEnqueueOptions{Delay: year + time.Millisecond}); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("delay of 365 days + 1 ms: %v", err)
	}
	if _, err := c.Queue.Enqueue(ctx, "edge", make([]byte, 16<<20+1), nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("16 MiB + 1 payload: %v", err)
	}
	if after := mustStats(t, c, "edge"); after != before || before != (flo.QueueStats{Ready: 2, Delayed: 1}) {
		t.Fatalf("stats %+v before the refusals, %+v after", before, after)
	}
	// Seq lists: 10,000 a call.
	seqs := make([]uint64, 10_001)
	if err := c.Queue.Touch(ctx, "edge", seqs[:10_000], nil); err != nil {
		t.Fatalf("10,000 seqs: %v", err)
	}
	if err := c.Queue.Ack(ctx, "edge", append(seqs[:10_000], 1), nil); !errors.Is(err, flo.ErrBadRequest) || !strings.Contains(err.Error(), "10000") {
		t.Fatalf("10,001 seqs: %v", err)
	}
	if after := mustStats(t, c, "edge"); after != before {
		t.Fatalf("stats after a refused ack: %+v, want %+v", after, before)
	}
}

// A nack reason longer than the 255 bytes an option holds is cut at a
// character boundary, not refused: a refused nack would leave the message
// leased until its visibility timeout (as the Python SDK does too).
func TestQueue_LongNackReasonIsCut(t *testing.T) {
	_, c, ctx := queueSetup(t)
	seq, err := c.Queue.Enqueue(ctx, "jobs", []byte("m"), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustDequeue(t, c, "jobs", 1, nil)
	// 400 bytes of two-byte characters: byte 255 is inside one.
	if err := c.Queue.Nack(ctx, "jobs", []uint64{seq}, &flo.QueueNackOptions{ToDLQ: true, Reason: strings.Repeat("é", 200)}); err != nil {
		t.Fatal(err)
	}
	dl, err := c.Queue.DLQList(ctx, "jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 || dl[0].Seq != seq || dl[0].Reason != strings.Repeat("é", 127) {
		t.Fatalf("DLQ %+v, want seq %d with the reason cut to 127 characters", dl, seq)
	}
}

func TestQueue_NamespacesIsolate(t *testing.T) {
	_, c, ctx := queueSetup(t)
	if _, err := c.Queue.Enqueue(ctx, "jobs", []byte("a"), &flo.QueueEnqueueOptions{Namespace: "tenant-a"}); err != nil {
		t.Fatal(err)
	}
	if ms := mustDequeue(t, c, "jobs", 1, nil); len(ms) != 0 {
		t.Fatal("default namespace sees tenant-a's message")
	}
	ms := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Namespace: "tenant-a"})
	if len(ms) != 1 || ms[0].Seq != 1 {
		t.Fatalf("tenant-a: %+v", ms)
	}
}

func TestQueue_RestartKeepsLeasesDelaysDLQAndDedup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := flotest.Start(t, flotest.Options{DataDir: dir})
	c := srv.Client(t, flo.Options{})
	ctx := context.Background()
	dedup := &flo.QueueEnqueueOptions{DedupKey: "once"}
	once, _ := c.Queue.Enqueue(ctx, "jobs", []byte("dedup"), dedup)
	if _, err := c.Queue.Enqueue(ctx, "jobs", []byte("delayed"), &flo.QueueEnqueueOptions{Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	dead := enqueueAll(t, c, "jobs", "dead")[0]
	leased := mustDequeue(t, c, "jobs", 2, &flo.QueueDequeueOptions{Visibility: time.Hour})
	if err := c.Queue.Nack(ctx, "jobs", []uint64{dead}, &flo.QueueNackOptions{ToDLQ: true, Reason: "bad"}); err != nil {
		t.Fatal(err)
	}
	before := mustStats(t, c, "jobs")
	srv.Stop()

	srv2 := flotest.Start(t, flotest.Options{DataDir: dir})
	c2 := srv2.Client(t, flo.Options{})
	if after := mustStats(t, c2, "jobs"); after != before || after != (flo.QueueStats{Delayed: 1, InFlight: 1, DLQ: 1}) {
		t.Fatalf("stats before %+v, after restart %+v", before, after)
	}
	if again, _ := c2.Queue.Enqueue(ctx, "jobs", []byte("x"), dedup); again != once {
		t.Fatalf("dedup key lost: %d", again)
	}
	dl, _ := c2.Queue.DLQList(ctx, "jobs", nil)
	if len(dl) != 1 || dl[0].Seq != dead || dl[0].Reason != "bad" {
		t.Fatalf("dlq %+v", dl)
	}
	next := enqueueAll(t, c2, "jobs", "after")[0]
	if next != 4 {
		t.Fatalf("seq after restart %d, want 4 (never reused)", next)
	}
	if err := c2.Queue.Ack(ctx, "jobs", queueSeqs(leased), nil); err != nil {
		t.Fatal(err)
	}
	if s := mustStats(t, c2, "jobs"); s != (flo.QueueStats{Ready: 1, Delayed: 1, DLQ: 1}) {
		t.Fatalf("after ack %+v", s)
	}
}

// TestQueue_Kill9RedeliversUnackedNeverAcked enqueues, leases and acks some
// messages, kills the server with SIGKILL, restarts it on the same data and
// checks: un-acked leased messages come back, but only once their lease
// expires; acked ones never come back; the rest are ready at once.
func TestQueue_Kill9RedeliversUnackedNeverAcked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := flotest.StartProcess(t, dir)
	c := flotest.Dial(t, p.Addr, flo.Options{})
	ctx := context.Background()
	var payloads []string
	for i := range 10 {
		payloads = append(payloads, fmt.Sprint("m", i))
	}
	enqueueAll(t, c, "jobs", payloads...)
	const vis = 3 * time.Second
	leasedAt := time.Now()
	leased := mustDequeue(t, c, "jobs", 5, &flo.QueueDequeueOptions{Visibility: vis})
	if len(leased) != 5 {
		t.Fatalf("leased %d", len(leased))
	}
	acked := queueSeqs(leased[:2])
	if err := c.Queue.Ack(ctx, "jobs", acked, nil); err != nil {
		t.Fatal(err)
	}
	p.Kill()

	p2 := flotest.StartProcess(t, dir)
	c2 := flotest.Dial(t, p2.Addr, flo.Options{})
	got := map[uint64]time.Time{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < 8 && time.Now().Before(deadline) {
		ms := mustDequeue(t, c2, "jobs", 100, &flo.QueueDequeueOptions{Block: time.Second, Visibility: time.Minute})
		for _, m := range ms {
			if _, dup := got[m.Seq]; dup {
				t.Fatalf("message %d delivered twice after restart", m.Seq)
			}
			got[m.Seq] = time.Now()
		}
	}
	if len(got) != 8 {
		t.Fatalf("after restart got %d messages, want 8 (10 minus 2 acked)", len(got))
	}
	for _, s := range acked {
		if _, ok := got[s]; ok {
			t.Fatalf("acked message %d came back", s)
		}
	}
	for _, m := range leased[2:] {
		at, ok := got[m.Seq]
		if !ok {
			t.Fatalf("un-acked message %d never came back", m.Seq)
		}
		if at.Before(leasedAt.Add(vis)) {
			t.Fatalf("un-acked message %d came back %v after leasing, before its %v lease expired", m.Seq, at.Sub(leasedAt), vis)
		}
	}
	if ms := mustDequeue(t, c2, "jobs", 100, &flo.QueueDequeueOptions{Block: 200 * time.Millisecond}); len(ms) != 0 {
		t.Fatalf("extra messages %+v", ms)
	}
}

func TestQueue_EmptyPayloadRoundTrips(t *testing.T) {
	_, c, _ := queueSetup(t)
	enqueueAll(t, c, "jobs", "")
	ms := mustDequeue(t, c, "jobs", 1, nil)
	if len(ms) != 1 || ms[0].Payload == nil || !bytes.Equal(ms[0].Payload, []byte{}) {
		t.Fatalf("%+v", ms)
	}
}

func TestQueue_ConsumeStopsWhenClientCloses(t *testing.T) {
	srv, _, ctx := queueSetup(t)
	cl, err := flo.Dial(ctx, srv.Addr, flo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- cl.Queue.Consume(ctx, "jobs", func(context.Context, *flo.QueueMessage) error { return nil }, &flo.QueueConsumeOptions{Poll: 50 * time.Millisecond})
	}()
	time.Sleep(100 * time.Millisecond)
	cl.Close()
	select {
	case err := <-done:
		if !errors.Is(err, flo.ErrClosed) {
			t.Fatalf("Consume returned %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Consume kept running on a closed client")
	}
	if err := cl.Queue.Consume(ctx, "jobs", nil, nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("nil handler: %v", err)
	}
}

func TestQueue_MaxDeliveriesComesFromServerConfig(t *testing.T) {
	c, ctx := configured(t, func(c *config.Config) { c.QueueMaxDeliveries = 2 })
	seq := enqueueAll(t, c, "jobs", "flaky")[0]
	for delivery := 1; delivery <= 2; delivery++ {
		ms := mustDequeue(t, c, "jobs", 1, nil)
		if len(ms) != 1 || ms[0].Seq != seq {
			t.Fatalf("delivery %d: %+v", delivery, ms)
		}
		if err := c.Queue.Nack(ctx, "jobs", []uint64{seq}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The second nack reached the configured limit of 2: DLQ, not ready.
	if ms := mustDequeue(t, c, "jobs", 1, nil); len(ms) != 0 {
		t.Fatalf("redelivered past the limit: %+v", ms)
	}
	dlq, err := c.Queue.DLQList(ctx, "jobs", nil)
	if err != nil || len(dlq) != 1 || dlq[0].Seq != seq {
		t.Fatalf("dlq = %+v, %v", dlq, err)
	}
}

func TestQueue_DequeueAcksFirstInOneCall(t *testing.T) {
	_, c, _ := queueSetup(t)
	enqueueAll(t, c, "jobs", "a", "b", "c")
	const vis = 300 * time.Millisecond
	first := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Visibility: vis})
	next := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Visibility: vis, Ack: queueSeqs(first)})
	if got := queuePayloads(next); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("dequeue after acking a: %q", got)
	}
	if s := mustStats(t, c, "jobs"); s != (flo.QueueStats{Ready: 1, InFlight: 1}) {
		t.Fatalf("after acking a and leasing b: %+v", s)
	}
	// a is gone for good: past its lease only b (unacked) comes back, then c.
	expectOnlyThese(t, c, "jobs", "after the leases expired", "b", "c")
}

// expectOnlyThese long-polls queue until it has delivered as many messages
// as want lists (15 s at most), checks they are want's payloads in any
// order, and that nothing else follows.
func expectOnlyThese(t *testing.T, c *flo.Client, queue, when string, want ...string) {
	t.Helper()
	var got []string
	deadline := time.Now().Add(15 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		got = append(got, queuePayloads(mustDequeue(t, c, queue, 10, &flo.QueueDequeueOptions{Block: time.Second, Visibility: time.Minute}))...)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: %q, want %q", when, got, want)
	}
	if ms := mustDequeue(t, c, queue, 10, &flo.QueueDequeueOptions{Block: 300 * time.Millisecond}); len(ms) != 0 {
		t.Fatalf("%s: acked messages came back: %q", when, queuePayloads(ms))
	}
}

func TestQueue_BlockingDequeueAppliesItsAcksBeforeWaiting(t *testing.T) {
	_, c, ctx := queueSetup(t)
	leased := mustDequeue(t, c, "jobs", 2, nil)
	if len(leased) != 0 {
		t.Fatal("new queue not empty")
	}
	enqueueAll(t, c, "jobs", "a", "b")
	leased = mustDequeue(t, c, "jobs", 2, nil)
	type result struct {
		ms  []flo.QueueMessage
		err error
	}
	got := make(chan result, 1)
	go func() {
		ms, err := c.Queue.Dequeue(ctx, "jobs", 1, &flo.QueueDequeueOptions{Block: 10 * time.Second, Ack: queueSeqs(leased)})
		got <- result{ms, err}
	}()
	// The call finds nothing and waits; its acks are already applied.
	waitUntil(t, 5*time.Second, "acks of the parked dequeue", func() bool {
		return mustStats(t, c, "jobs") == flo.QueueStats{}
	})
	select {
	case r := <-got:
		t.Fatalf("blocking dequeue returned early: %+v, %v", r.ms, r.err)
	default:
	}
	enqueueAll(t, c, "jobs", "c")
	r := <-got
	if r.err != nil || !slices.Equal(queuePayloads(r.ms), []string{"c"}) {
		t.Fatalf("woken dequeue: %q, %v", queuePayloads(r.ms), r.err)
	}
}

func TestQueue_DequeueAckListLimit(t *testing.T) {
	_, c, ctx := queueSetup(t)
	enqueueAll(t, c, "jobs", "a")
	seqs := make([]uint64, 10_000)
	for i := range seqs {
		seqs[i] = uint64(i + 1)
	}
	ms, err := c.Queue.Dequeue(ctx, "jobs", 1, &flo.QueueDequeueOptions{Ack: seqs})
	if err != nil || len(ms) != 0 {
		// seq 1 (a) is acked first, so nothing is left to dequeue.
		t.Fatalf("10,000 acks: %d messages, %v", len(ms), err)
	}
	enqueueAll(t, c, "jobs", "b")
	if _, err := c.Queue.Dequeue(ctx, "jobs", 1, &flo.QueueDequeueOptions{Ack: append(seqs, 10_001)}); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("10,001 acks: %v", err)
	}
	if s := mustStats(t, c, "jobs"); s != (flo.QueueStats{Ready: 1}) {
		t.Fatalf("a rejected call changed the queue: %+v", s)
	}
}

// opCounter is a TCP proxy in front of addr that counts the requests
// passing through it by opcode.
type opCounter struct {
	addr string
	mu   sync.Mutex
	ops  map[wire.Op]int
}

func countOps(t *testing.T, addr string) *opCounter {
	t.Helper()
	oc := &opCounter{ops: map[wire.Op]int{}}
	oc.addr = startProxy(t, addr, func(from io.Reader, to io.Writer) error {
		br := bufio.NewReader(from)
		for {
			f, _, err := wire.ReadFrame(br, nil, 64<<20)
			if err != nil {
				return err
			}
			oc.mu.Lock()
			oc.ops[wire.Op(f.Code)]++
			oc.mu.Unlock()
			if _, err := to.Write(wire.AppendFrame(nil, f.RequestID, f.Code, f.Payload)); err != nil {
				return err
			}
		}
	})
	return oc
}

func (oc *opCounter) count(op wire.Op) int {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	return oc.ops[op]
}

func TestQueue_ConsumeAcksRideOnDequeues(t *testing.T) {
	srv, c, ctx := queueSetup(t)
	const n = 50
	payloads := make([]string, n)
	for i := range payloads {
		payloads[i] = fmt.Sprint("m", i)
	}
	enqueueAll(t, c, "jobs", payloads...)
	oc := countOps(t, srv.Addr)
	consumer := flotest.Dial(t, oc.addr, flo.Options{})
	cctx, stop := context.WithCancel(ctx)
	var handled atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- consumer.Queue.Consume(cctx, "jobs", func(context.Context, *flo.QueueMessage) error {
			handled.Add(1)
			return nil
		}, &flo.QueueConsumeOptions{Poll: 100 * time.Millisecond, OnError: func(err error) { t.Error(err) }})
	}()
	waitUntil(t, 10*time.Second, "every message handled", func() bool { return handled.Load() == n })
	waitUntil(t, 10*time.Second, "every ack to land", func() bool { return mustStats(t, c, "jobs") == flo.QueueStats{} })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// One handler at a time: each message's ack goes out with the dequeue
	// of the next, so the separate acks are at most the last one (sent
	// when the queue ran dry and the dequeue after it was a long poll).
	if acks, dequeues := oc.count(wire.OpQueueAck), oc.count(wire.OpQueueDequeue); acks > 1 || dequeues < n {
		t.Fatalf("%d separate acks and %d dequeues for %d messages", acks, dequeues, n)
	}
}

// Acks sent with a dequeue are as durable as Ack: after kill -9 the messages
// they acked never come back, and the lease the same call took does.
func TestQueue_Kill9KeepsAcksSentWithDequeue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := flotest.StartProcess(t, dir)
	c := flotest.Dial(t, p.Addr, flo.Options{})
	enqueueAll(t, c, "jobs", "a", "b", "c", "d")
	const vis = 2 * time.Second
	first := mustDequeue(t, c, "jobs", 2, &flo.QueueDequeueOptions{Visibility: vis})
	leased := mustDequeue(t, c, "jobs", 1, &flo.QueueDequeueOptions{Visibility: vis, Ack: queueSeqs(first)})
	if got := queuePayloads(leased); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("dequeue with acks: %q", got)
	}
	p.Kill()

	p2 := flotest.StartProcess(t, dir)
	c2 := flotest.Dial(t, p2.Addr, flo.Options{})
	expectOnlyThese(t, c2, "jobs", "after restart (c's lease expired)", "c", "d")
}

// TestQueue_SubMillisecondBlockIsNotForever: BLOCK_MS counts whole
// milliseconds and 0 means forever, so a positive Block under 1 ms must go
// out as 1 ms, not 0.
func TestQueue_SubMillisecondBlockIsNotForever(t *testing.T) {
	_, c, ctx := queueSetup(t)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ms, err := c.Queue.Dequeue(wctx, "empty", 1, &flo.QueueDequeueOptions{Block: 100 * time.Microsecond})
	if err != nil || len(ms) != 0 {
		t.Fatalf("dequeue with a 100 µs block = %v, %v", ms, err)
	}
}

// TestQueue_ParkedDequeueDoesNotReapplyItsAcks: the acks a blocking dequeue
// carries are applied once, by its first attempt. Here the acked message is
// in the DLQ then (the ack is ignored); an operator requeues it while the
// dequeue is parked, and the woken dequeue must deliver it, not ack it again.
func TestQueue_ParkedDequeueDoesNotReapplyItsAcks(t *testing.T) {
	srv, c, ctx := queueSetup(t)
	seqs := enqueueAll(t, c, "jobs", "x")
	leased := mustDequeue(t, c, "jobs", 1, nil)
	if err := c.Queue.Nack(ctx, "jobs", queueSeqs(leased), &flo.QueueNackOptions{ToDLQ: true}); err != nil {
		t.Fatal(err)
	}
	consumer := srv.Client(t, flo.Options{})
	got := make(chan []flo.QueueMessage, 1)
	go func() {
		ms, err := consumer.Queue.Dequeue(ctx, "jobs", 1, &flo.QueueDequeueOptions{Block: 10 * time.Second, Ack: seqs})
		if err != nil {
			t.Error(err)
		}
		got <- ms
	}()
	time.Sleep(200 * time.Millisecond) // parked, its ack of the DLQ'd message ignored
	if err := c.Queue.DLQRequeue(ctx, "jobs", seqs, nil); err != nil {
		t.Fatal(err)
	}
	if ms := <-got; len(ms) != 1 || ms[0].Seq != seqs[0] {
		t.Fatalf("the parked dequeue got %+v, want the requeued message (stats %+v)", ms, mustStats(t, c, "jobs"))
	}
}
