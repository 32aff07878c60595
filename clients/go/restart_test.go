package flo_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// TestQueueConsume_SurvivesServerKill9AndRestart runs Queue.Consume with 4
// handlers while the server is SIGKILLed and restarted on the same address:
// Consume keeps going on its own, every message is handled, the queue ends
// empty (nothing lost or stuck leased), and the outage is reported through
// OnError without a hot retry loop.
func TestQueueConsume_SurvivesServerKill9AndRestart(t *testing.T) {
	t.Parallel()
	s := startPinned(t)
	ctx := context.Background()
	c := flotest.Dial(t, s.addr, flo.Options{Timeout: 2 * time.Second})
	const n = 120
	want := map[string]bool{}
	for i := range n {
		p := fmt.Sprint("m", i)
		want[p] = true
		if _, err := c.Queue.Enqueue(ctx, "jobs", []byte(p), nil); err != nil {
			t.Fatal(err)
		}
	}
	var handled tally[string]
	var errs errLog
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := runBackground(func() error {
		return c.Queue.Consume(cctx, "jobs", func(ctx context.Context, m *flo.QueueMessage) error {
			time.Sleep(20 * time.Millisecond)
			handled.add(string(m.Payload))
			return nil
		}, &flo.QueueConsumeOptions{Concurrency: 4, Visibility: 2 * time.Second, Poll: time.Second, OnError: errs.add})
	})
	waitUntil(t, settleWait, "a third of the messages handled", func() bool { return handled.distinct() >= n/3 })
	s.restart(func() {
		waitUntil(t, settleWait, "a failed dequeue reported", func() bool { return errs.count("dequeue", flo.ErrConnection) > 0 })
	})
	outage := errs.count("dequeue", nil)
	waitUntil(t, settleWait, "every message handled", func() bool { return handled.distinct() == n })
	stillRunning(t, done, "Consume")
	waitQueueEmpty(t, c, "jobs")
	cancel()
	waitReturn(t, done, "Consume")
	for p := range want {
		if handled.get(p) == 0 {
			t.Errorf("message %s never handled", p)
		}
	}
	checkOutage(t, outage, "dequeues", &errs)
}

// TestStreamConsume_SurvivesServerKill9AndRestart runs Stream.Consume in a
// group with 4 handlers while the server is SIGKILLed and restarted on the
// same address: every record is handled and acked, with no gap, and Consume
// keeps going on its own.
func TestStreamConsume_SurvivesServerKill9AndRestart(t *testing.T) {
	t.Parallel()
	s := startPinned(t)
	ctx := context.Background()
	c := flotest.Dial(t, s.addr, flo.Options{Timeout: 2 * time.Second})
	const n = 120
	for i := range n {
		if _, err := c.Stream.Append(ctx, "s", []byte(fmt.Sprint("r", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	var handled tally[uint64]
	var errs errLog
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := runBackground(func() error {
		return c.Stream.Consume(cctx, "s", "g", "a", func(ctx context.Context, r flo.StreamRecord) error {
			time.Sleep(20 * time.Millisecond)
			handled.add(r.Offset)
			return nil
		}, &flo.StreamConsumeOptions{Concurrency: 4, AckTimeout: 2 * time.Second, Poll: time.Second, OnError: errs.add})
	})
	waitUntil(t, settleWait, "a third of the records handled", func() bool { return handled.distinct() >= n/3 })
	s.restart(func() {
		waitUntil(t, settleWait, "a failed read reported", func() bool { return errs.count("", flo.ErrConnection) > 0 })
	})
	outage := int(errs.n.Load())
	waitUntil(t, settleWait, "every record handled", func() bool { return handled.distinct() == n })
	stillRunning(t, done, "Consume")
	// Every record is acked once a fresh member of the group finds nothing
	// to read, pending or new (waiting out the ack timeout of records
	// whose ack was lost in the outage).
	waitGroupDrained(t, c, "s", "g")
	cancel()
	waitReturn(t, done, "Consume")
	for off := uint64(1); off <= n; off++ {
		if handled.get(off) == 0 {
			t.Errorf("record %d never handled", off)
		}
	}
	if dl, err := c.Stream.GroupDLQList(ctx, "s", "g", nil); err != nil || len(dl) != 0 {
		t.Errorf("dead letters %v %v", dl, err)
	}
	checkOutage(t, outage, "calls", &errs)
}

// TestTaskWorker_SurvivesServerKill9AndRestart runs a TaskWorker while the
// server is SIGKILLed and restarted on the same address, with runs invoked
// before and after: every run ends completed and the worker keeps going on
// its own.
func TestTaskWorker_SurvivesServerKill9AndRestart(t *testing.T) {
	t.Parallel()
	s := startPinned(t)
	ctx := context.Background()
	c := flotest.Dial(t, s.addr, flo.Options{Timeout: 2 * time.Second})
	var errs errLog
	w := flo.NewTaskWorker(c, "w1", &flo.TaskWorkerOptions{Concurrency: 4, Lease: 2 * time.Second, Block: time.Second, OnError: errs.add})
	var handled tally[string]
	w.Handle("job", func(ctx context.Context, tk *flo.Task) ([]byte, error) {
		time.Sleep(20 * time.Millisecond)
		handled.add(string(tk.Input))
		return append([]byte("done:"), tk.Input...), nil
	}, &flo.ActionRegisterOptions{Timeout: 2 * time.Second})
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := runBackground(func() error { return w.Run(cctx) })
	var runs []string
	invoke := func(from, to int) {
		for i := from; i < to; i++ {
			var id string
			var err error
			// Registration happens in Run: retry until the action exists.
			for try := 0; ; try++ {
				id, err = c.Action.Invoke(ctx, "job", []byte(fmt.Sprint("in", i)), nil)
				if err == nil || try > 500 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, id)
		}
	}
	const n = 60
	invoke(0, n)
	waitUntil(t, settleWait, "a third of the runs handled", func() bool { return handled.distinct() >= n/3 })
	s.restart(func() {
		waitUntil(t, settleWait, "a failed await reported", func() bool { return errs.count("await", flo.ErrConnection) > 0 })
	})
	outage := errs.count("await", nil)
	invoke(n, 2*n)
	waitUntil(t, settleWait, "every run handled", func() bool { return handled.distinct() == 2*n })
	stillRunning(t, done, "Run")
	for _, id := range runs {
		waitUntil(t, settleWait, "run "+id+" completed", func() bool {
			st, err := c.Action.Status(ctx, id, nil)
			return err == nil && st.State == flo.RunCompleted
		})
	}
	cancel()
	waitReturn(t, done, "Run")
	checkOutage(t, outage, "awaits", &errs)
}

// spanLease is the lease of the tests whose handler runs across a restart:
// far longer than a restart takes, so renewals that resume after it keep
// the item leased.
const spanLease = 5 * time.Second

// TestConsumeHelpers_RenewLeasesAfterRestart runs one handler of each
// helper across a SIGKILL and restart and keeps it running for 1.5 leases
// after: the helper's renewals resume once the server is back, so the item
// is not delivered again while its handler runs, and is then settled. (A
// failed renewal is retried at the next tick, so this holds while a restart
// takes under about half the lease.)
func TestConsumeHelpers_RenewLeasesAfterRestart(t *testing.T) {
	t.Parallel()
	s := startPinned(t)
	ctx := context.Background()
	c := flotest.Dial(t, s.addr, flo.Options{Timeout: 2 * time.Second})
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var errs errLog
	release := make(chan struct{})
	var started tally[string]
	begin := func(what string) {
		started.add(what)
		<-release
	}

	if _, err := c.Queue.Enqueue(ctx, "q", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream.Append(ctx, "s", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	qdone := runBackground(func() error {
		return c.Queue.Consume(cctx, "q", func(ctx context.Context, m *flo.QueueMessage) error {
			begin("queue")
			return nil
		}, &flo.QueueConsumeOptions{Concurrency: 2, Visibility: spanLease, Poll: time.Second, OnError: errs.add})
	})
	sdone := runBackground(func() error {
		return c.Stream.Consume(cctx, "s", "g", "a", func(ctx context.Context, r flo.StreamRecord) error {
			begin("stream")
			return nil
		}, &flo.StreamConsumeOptions{Concurrency: 2, AckTimeout: spanLease, Poll: time.Second, OnError: errs.add})
	})
	w := flo.NewTaskWorker(c, "w1", &flo.TaskWorkerOptions{Concurrency: 2, Lease: spanLease, Block: time.Second, OnError: errs.add})
	w.Handle("job", func(ctx context.Context, tk *flo.Task) ([]byte, error) {
		begin("task")
		return []byte("ok"), nil
	}, &flo.ActionRegisterOptions{Timeout: spanLease})
	wdone := runBackground(func() error { return w.Run(cctx) })
	var run string
	waitUntil(t, settleWait, "the action registered", func() bool {
		var err error
		run, err = c.Action.Invoke(ctx, "job", nil, nil)
		return err == nil
	})
	for _, what := range []string{"queue", "stream", "task"} {
		waitUntil(t, settleWait, what+" handler started", func() bool { return started.get(what) == 1 })
	}
	s.restart(nil)
	restarted := time.Now()
	// A lease and a half after the restart, with renewals resumed, nothing was
	// delivered again.
	waitUntil(t, settleWait, "a lease and a half to pass", func() bool { return time.Since(restarted) > 3*spanLease/2 })
	for _, what := range []string{"queue", "stream", "task"} {
		if n := started.get(what); n != 1 {
			t.Errorf("%s item delivered %d times while its handler ran across a short outage", what, n)
		}
	}
	close(release)
	waitSettled(t, c, run)
	cancel()
	waitReturn(t, qdone, "Queue.Consume")
	waitReturn(t, sdone, "Stream.Consume")
	waitReturn(t, wdone, "TaskWorker.Run")
	t.Logf("errors:\n%s", errs.String())
}

// TestConsumeHelpers_CancelWhileServerDown cancels each helper while the
// server is down, with a handler running: each returns nil without waiting
// for the server, reporting the settles it could not send; once the server
// is back, helpers started again handle what was left, and every item ends
// settled.
func TestConsumeHelpers_CancelWhileServerDown(t *testing.T) {
	t.Parallel()
	s := startPinned(t)
	ctx := context.Background()
	c := flotest.Dial(t, s.addr, flo.Options{Timeout: 2 * time.Second})
	const lease = time.Second
	if _, err := c.Queue.Enqueue(ctx, "q", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream.Append(ctx, "s", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	var errs errLog
	var started tally[string]
	release := make(chan struct{})
	begin := func(what string) {
		started.add(what)
		<-release
	}
	start := func(cctx context.Context) (q, st, wk <-chan error) {
		q = runBackground(func() error {
			return c.Queue.Consume(cctx, "q", func(ctx context.Context, m *flo.QueueMessage) error {
				begin("queue")
				return nil
			}, &flo.QueueConsumeOptions{Visibility: lease, Poll: time.Second, OnError: errs.add})
		})
		st = runBackground(func() error {
			return c.Stream.Consume(cctx, "s", "g", "a", func(ctx context.Context, r flo.StreamRecord) error {
				begin("stream")
				return nil
			}, &flo.StreamConsumeOptions{AckTimeout: lease, Poll: time.Second, OnError: errs.add})
		})
		w := flo.NewTaskWorker(c, "w1", &flo.TaskWorkerOptions{Lease: lease, Block: time.Second, OnError: errs.add})
		w.Handle("job", func(ctx context.Context, tk *flo.Task) ([]byte, error) {
			begin("task")
			return []byte("ok"), nil
		}, &flo.ActionRegisterOptions{Timeout: lease})
		wk = runBackground(func() error { return w.Run(cctx) })
		return q, st, wk
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q, st, wk := start(cctx)
	var run string
	waitUntil(t, settleWait, "the action registered", func() bool {
		var err error
		run, err = c.Action.Invoke(ctx, "job", nil, nil)
		return err == nil
	})
	for _, what := range []string{"queue", "stream", "task"} {
		waitUntil(t, settleWait, what+" handler started", func() bool { return started.get(what) == 1 })
	}
	s.restart(func() {
		cancel()
		close(release)
		waitReturn(t, q, "Queue.Consume")
		waitReturn(t, st, "Stream.Consume")
		waitReturn(t, wk, "TaskWorker.Run")
	})
	if errs.count("", flo.ErrConnection) == 0 {
		t.Errorf("no connection errors reported for the settles sent while the server was down")
	}
	// The items whose settles were lost come back once their leases end.
	cctx2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	q, st, wk = start(cctx2)
	waitSettled(t, c, run)
	cancel2()
	waitReturn(t, q, "Queue.Consume")
	waitReturn(t, st, "Stream.Consume")
	waitReturn(t, wk, "TaskWorker.Run")
}

// waitSettled waits until the helpers of the two tests above have settled
// their items: queue "q" is empty, the run is completed and group "g" of
// stream "s" has nothing left to deliver.
func waitSettled(t *testing.T, c *flo.Client, run string) {
	t.Helper()
	waitQueueEmpty(t, c, "q")
	waitUntil(t, settleWait, "the run completed", func() bool {
		st, err := c.Action.Status(context.Background(), run, nil)
		return err == nil && st.State == flo.RunCompleted
	})
	waitGroupDrained(t, c, "s", "g")
}

// waitQueueEmpty waits until the queue holds nothing, in any state.
func waitQueueEmpty(t *testing.T, c *flo.Client, queue string) {
	t.Helper()
	waitUntil(t, settleWait, "queue "+queue+" empty", func() bool {
		st, err := c.Queue.Stats(context.Background(), queue, nil)
		return err == nil && st == (flo.QueueStats{})
	})
}

// waitGroupDrained waits until a probe member of the group finds nothing to
// read, pending or new; a record it does get goes back to the group at once.
func waitGroupDrained(t *testing.T, c *flo.Client, stream, group string) {
	t.Helper()
	ctx := context.Background()
	waitUntil(t, settleWait, "group "+group+" drained", func() bool {
		rs, err := c.Stream.GroupRead(ctx, stream, group, "probe", &flo.StreamGroupReadOptions{Count: 1, Block: 100 * time.Millisecond})
		if err == nil && len(rs) > 0 {
			_ = c.Stream.GroupNack(ctx, stream, group, []uint64{rs[0].Offset}, nil)
		}
		return err == nil && len(rs) == 0
	})
}
