package flo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// TestAllPrimitives_RepeatedKill9 loads every primitive at once from many
// connections, SIGKILLs the server, restarts it on the same directory and
// checks everything acknowledged so far — several times over, so recovery
// also starts from state that an earlier recovery rebuilt (sequence
// counters, versions, in-memory indexes and caches). After the last restart
// it drains what is left: every acknowledged enqueue, append and invoke is
// delivered or completed, and nothing acknowledged as acked or completed
// comes back. (An ack or complete in flight at a kill may or may not have
// been applied; such items are not required to come back.) FLO_CRASH_CYCLES sets the number of kills (default 3).
func TestAllPrimitives_RepeatedKill9(t *testing.T) {
	t.Parallel()
	cycles := 3
	if s := os.Getenv("FLO_CRASH_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("FLO_CRASH_CYCLES=%q", s)
		}
		cycles = n
	}
	ctx := context.Background()
	m := newCrashModel()
	dir := ""
	for cycle := 0; cycle <= cycles; cycle++ {
		p := flotest.StartProcess(t, dir, "--durability", "sync")
		dir = p.DataDir
		c := flotest.Dial(t, p.Addr, flo.Options{})
		if cycle == 0 {
			retries := 50
			if err := c.Action.Register(ctx, crashAction, &flo.ActionRegisterOptions{Timeout: time.Second, MaxRetries: &retries}); err != nil {
				t.Fatal(err)
			}
		}
		m.verify(t, ctx, c)
		if cycle == cycles {
			m.drain(t, ctx, c)
			t.Logf("%d kills: %s", cycles, m.summary())
			return
		}
		m.load(t, p, cycle)
	}
}

const (
	crashQueue  = "crash-q"
	crashStream = "crash-s"
	crashGroup  = "crash-g"
	crashAction = "crash-act"
)

// crashModel is what the server acknowledged, across every cycle.
type crashModel struct {
	mu sync.Mutex
	// kvLast is each KV writer's last acknowledged version and value of
	// its own key; kvUnique holds keys written once.
	kvLast   map[string]flo.Version
	kvUnique map[string][]byte
	// enqueued maps acknowledged enqueue seqs to payloads; qAcked holds
	// seqs whose ack was acknowledged.
	enqueued map[uint64][]byte
	qAcked   map[uint64]bool
	// appended maps acknowledged append offsets to payloads; gAcked holds
	// offsets the group's ack was acknowledged for.
	appended map[uint64][]byte
	gAcked   map[uint64]bool
	// runs maps acknowledged invokes' idempotency keys to run IDs and
	// inputs; completed holds runs whose complete was acknowledged.
	runs      map[string]string
	runInputs map[string][]byte
	completed map[string][]byte
	// unsure holds acks and completes sent in a call that failed when the
	// server died: they may or may not have been applied.
	unsure map[string]bool
}

func newCrashModel() *crashModel {
	return &crashModel{
		kvLast: map[string]flo.Version{}, kvUnique: map[string][]byte{},
		enqueued: map[uint64][]byte{}, qAcked: map[uint64]bool{},
		appended: map[uint64][]byte{}, gAcked: map[uint64]bool{},
		runs: map[string]string{}, runInputs: map[string][]byte{}, completed: map[string][]byte{},
		unsure: map[string]bool{},
	}
}

func (m *crashModel) summary() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprintf("%d KV writes, %d enqueues (%d acked), %d appends (%d acked in the group), %d invokes (%d completed)",
		len(m.kvUnique), len(m.enqueued), len(m.qAcked), len(m.appended), len(m.gAcked), len(m.runs), len(m.completed))
}

// load runs writers and consumers of every primitive until enough calls
// were made, then kills the server and waits for them to notice.
func (m *crashModel) load(t *testing.T, p *flotest.Process, cycle int) {
	t.Helper()
	ctx := context.Background()
	var (
		calls atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		errs  []string
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		errMu.Unlock()
	}
	run := func(f func(c *flo.Client) error) {
		c := flotest.Dial(t, p.Addr, flo.Options{Timeout: 2 * time.Second})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f(c) == nil {
				calls.Add(1)
			}
		}()
	}
	for w := 0; w < 2; w++ {
		key := fmt.Sprintf("kv-w%d", w)
		i := 0
		run(func(c *flo.Client) error {
			i++
			val := fmt.Appendf(nil, "c%d-%d", cycle, i)
			v, err := c.KV.Put(ctx, key, val, nil)
			if err != nil {
				return err
			}
			unique := fmt.Sprintf("kv-c%d-w%d-%d", cycle, w, i)
			if _, err := c.KV.Put(ctx, unique, val, nil); err != nil {
				return err
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if last := m.kvLast[key]; v <= last.Version {
				fail("put of %s returned version %d, not above the acknowledged %d", key, v, last.Version)
			}
			m.kvLast[key] = flo.Version{Version: v, Value: val}
			m.kvUnique[unique] = val
			return nil
		})
		run(func(c *flo.Client) error {
			payload := fmt.Appendf(nil, "q-c%d-w%d-%d", cycle, w, calls.Load())
			seq, err := c.Queue.Enqueue(ctx, crashQueue, payload, nil)
			if err == nil {
				m.recordNew(fail, m.enqueued, seq, payload, "enqueue returned seq")
			}
			return err
		})
		run(func(c *flo.Client) error {
			payload := fmt.Appendf(nil, "s-c%d-w%d-%d", cycle, w, calls.Load())
			res, err := c.Stream.Append(ctx, crashStream, payload, nil)
			if err == nil {
				m.recordNew(fail, m.appended, res.Offset, payload, "append returned offset")
			}
			return err
		})
		i2 := 0
		run(func(c *flo.Client) error {
			i2++
			idem := fmt.Sprintf("c%d-w%d-%d", cycle, w, i2)
			input := []byte("in-" + idem)
			id, err := c.Action.Invoke(ctx, crashAction, input, &flo.ActionInvokeOptions{IdempotencyKey: idem})
			if err != nil {
				return err
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			m.runs[idem] = id
			m.runInputs[id] = input
			return nil
		})
	}
	var pendingAcks []uint64
	run(func(c *flo.Client) error {
		msgs, err := c.Queue.Dequeue(ctx, crashQueue, 10, &flo.QueueDequeueOptions{Block: 50 * time.Millisecond, Visibility: time.Second, Ack: pendingAcks})
		m.mu.Lock()
		defer m.mu.Unlock()
		if err != nil {
			for _, s := range pendingAcks {
				m.unsure[fmt.Sprint("q", s)] = true
			}
			return err
		}
		for _, s := range pendingAcks {
			m.qAcked[s] = true
		}
		pendingAcks = pendingAcks[:0]
		for _, msg := range msgs {
			m.checkDelivery(fail, msg)
			pendingAcks = append(pendingAcks, msg.Seq)
		}
		return nil
	})
	run(func(c *flo.Client) error {
		recs, err := c.Stream.GroupRead(ctx, crashStream, crashGroup, "reader", &flo.StreamGroupReadOptions{Count: 20, Block: 50 * time.Millisecond, AckTimeout: time.Second, MaxDeliver: 255})
		if err != nil || len(recs) == 0 {
			return err
		}
		offsets := make([]uint64, len(recs))
		m.mu.Lock()
		for i, r := range recs {
			m.checkRecord(fail, r)
			offsets[i] = r.Offset
		}
		m.mu.Unlock()
		err = c.Stream.GroupAck(ctx, crashStream, crashGroup, offsets, nil)
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, o := range offsets {
			if err != nil {
				m.unsure[fmt.Sprint("s", o)] = true
			} else {
				m.gAcked[o] = true
			}
		}
		return err
	})
	run(func(c *flo.Client) error {
		task, err := c.Worker.Await(ctx, "crash-worker", []string{crashAction}, &flo.WorkerAwaitOptions{Block: 50 * time.Millisecond})
		if err != nil || task == nil {
			return err
		}
		m.mu.Lock()
		m.checkTask(fail, task)
		m.mu.Unlock()
		result := append([]byte("out-"), task.Input...)
		err = c.Worker.Complete(ctx, "crash-worker", task.ID, result, nil)
		m.mu.Lock()
		defer m.mu.Unlock()
		if err != nil {
			m.unsure[task.ID] = true
			return err
		}
		m.completed[task.ID] = result
		return nil
	})
	waitUntil(t, 60*time.Second, "calls before the kill", func() bool { return calls.Load() >= 3000 })
	p.Kill()
	wg.Wait()
	for _, e := range errs {
		t.Errorf("cycle %d: %s", cycle, e)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// recordNew notes an acknowledged seq or offset, which must be new.
func (m *crashModel) recordNew(fail func(string, ...any), acked map[uint64][]byte, id uint64, payload []byte, what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := acked[id]; dup {
		fail("%s %d twice", what, id)
	}
	acked[id] = payload
}

// checkDelivery fails a delivered message that was acked or whose payload
// is not the one acknowledged at enqueue. Called with m.mu held.
func (m *crashModel) checkDelivery(fail func(string, ...any), msg flo.QueueMessage) {
	if m.qAcked[msg.Seq] {
		fail("queue seq %d delivered after its ack was acknowledged", msg.Seq)
	}
	if want, ok := m.enqueued[msg.Seq]; ok && !bytes.Equal(msg.Payload, want) {
		fail("queue seq %d payload %q, enqueued %q", msg.Seq, msg.Payload, want)
	}
}

// checkRecord is checkDelivery for a group's record. Called with m.mu held.
func (m *crashModel) checkRecord(fail func(string, ...any), r flo.StreamRecord) {
	if m.gAcked[r.Offset] {
		fail("stream offset %d delivered to the group after its ack was acknowledged", r.Offset)
	}
	if want, ok := m.appended[r.Offset]; ok && !bytes.Equal(r.Payload, want) {
		fail("stream offset %d payload %q, appended %q", r.Offset, r.Payload, want)
	}
}

// checkTask fails a claimed task that had completed or whose input is not
// the one invoked. Called with m.mu held.
func (m *crashModel) checkTask(fail func(string, ...any), task *flo.Task) {
	if _, done := m.completed[task.ID]; done {
		fail("run %s claimed after its complete was acknowledged", task.ID)
	}
	if want, ok := m.runInputs[task.ID]; ok && !bytes.Equal(task.Input, want) {
		fail("run %s input %q, invoked with %q", task.ID, task.Input, want)
	}
}

// verify checks, after a restart, every acknowledged write that no later
// acknowledged operation removed.
func (m *crashModel) verify(t *testing.T, ctx context.Context, c *flo.Client) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, last := range m.kvLast {
		h, err := c.KV.History(ctx, key, &flo.HistoryOptions{Limit: 1})
		if err != nil || len(h) != 1 {
			t.Fatalf("history of %s: %v, %v", key, h, err)
		}
		if h[0].Version < last.Version || h[0].Version == last.Version && !bytes.Equal(h[0].Value, last.Value) {
			t.Fatalf("%s is version %d %q; version %d %q was acknowledged", key, h[0].Version, h[0].Value, last.Version, last.Value)
		}
	}
	for key, want := range m.kvUnique {
		if v, err := c.KV.Get(ctx, key, nil); err != nil || !bytes.Equal(v, want) {
			t.Fatalf("acknowledged %s lost: %q, %v", key, v, err)
		}
	}
	// The stream: every acknowledged offset holds its payload, offsets dense.
	next, seen := uint64(0), 0
	for first := true; ; first = false {
		recs, err := c.Stream.Read(ctx, crashStream, &flo.StreamReadOptions{Offset: next, Count: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for i, r := range recs {
			if !(first && i == 0) && r.Offset != next {
				t.Fatalf("stream offsets not dense: %d after %d", r.Offset, next-1)
			}
			if want, ok := m.appended[r.Offset]; ok {
				if !bytes.Equal(r.Payload, want) {
					t.Fatalf("stream offset %d payload %q, appended %q", r.Offset, r.Payload, want)
				}
				seen++
			}
			next = r.Offset + 1
		}
	}
	if seen != len(m.appended) {
		t.Fatalf("stream holds %d of the %d acknowledged appends", seen, len(m.appended))
	}
	// Queue: no acknowledged enqueue that was not acked is missing.
	st, err := c.Queue.Stats(ctx, crashQueue, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for seq := range m.enqueued {
		if !m.qAcked[seq] && !m.unsure[fmt.Sprint("q", seq)] {
			want++
		}
	}
	if live := st.Ready + st.Delayed + st.InFlight + st.DLQ; live < want {
		t.Fatalf("queue holds %d messages (%+v); %d acknowledged enqueues were not acked", live, st, want)
	}
	// Actions: every acknowledged invoke exists, every acknowledged complete
	// stuck, and idempotency keys still map to their runs.
	for idem, id := range m.runs {
		s, err := c.Action.Status(ctx, id, nil)
		if err != nil {
			t.Fatalf("run %s (%s) after restart: %v", id, idem, err)
		}
		if want, done := m.completed[id]; done && (s.State != flo.RunCompleted || !bytes.Equal(s.Result, want)) {
			t.Fatalf("run %s completed with %q is %v with %q", id, want, s.State, s.Result)
		}
	}
	checked := 0
	for idem, id := range m.runs {
		if checked++; checked > 50 {
			break
		}
		got, err := c.Action.Invoke(ctx, crashAction, m.runInputs[id], &flo.ActionInvokeOptions{IdempotencyKey: idem})
		if err != nil || got != id {
			t.Fatalf("invoke with idempotency key %s after restart: %s, %v; was %s", idem, got, err, id)
		}
	}
}

// drain consumes what is left after the last restart: every acknowledged
// enqueue, append and invoke not yet acked or completed arrives (leases and
// ack deadlines taken before the kill run out first), and nothing acked or
// completed does.
func (m *crashModel) drain(t *testing.T, ctx context.Context, c *flo.Client) {
	t.Helper()
	fail := func(format string, args ...any) { t.Errorf(format, args...) }
	m.mu.Lock()
	defer m.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)

	waitQ := map[uint64]bool{}
	for seq := range m.enqueued {
		if !m.qAcked[seq] && !m.unsure[fmt.Sprint("q", seq)] {
			waitQ[seq] = true
		}
	}
	dlq, err := c.Queue.DLQList(ctx, crashQueue, &flo.QueueDLQListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range dlq {
		m.checkDelivery(fail, msg)
		delete(waitQ, msg.Seq)
	}
	for len(waitQ) > 0 && time.Now().Before(deadline) {
		msgs, err := c.Queue.Dequeue(ctx, crashQueue, 100, &flo.QueueDequeueOptions{Block: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		seqs := make([]uint64, len(msgs))
		for i, msg := range msgs {
			m.checkDelivery(fail, msg)
			delete(waitQ, msg.Seq)
			seqs[i] = msg.Seq
		}
		if err := c.Queue.Ack(ctx, crashQueue, seqs, nil); err != nil {
			t.Fatal(err)
		}
		for _, s := range seqs {
			m.qAcked[s] = true
		}
	}
	if len(waitQ) > 0 {
		t.Errorf("%d acknowledged enqueues never delivered", len(waitQ))
	}

	waitS := map[uint64]bool{}
	for o := range m.appended {
		if !m.gAcked[o] && !m.unsure[fmt.Sprint("s", o)] {
			waitS[o] = true
		}
	}
	for len(waitS) > 0 && time.Now().Before(deadline) {
		recs, err := c.Stream.GroupRead(ctx, crashStream, crashGroup, "drain", &flo.StreamGroupReadOptions{Count: 1000, Block: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		offsets := make([]uint64, len(recs))
		for i, r := range recs {
			m.checkRecord(fail, r)
			delete(waitS, r.Offset)
			offsets[i] = r.Offset
		}
		if len(offsets) > 0 {
			if err := c.Stream.GroupAck(ctx, crashStream, crashGroup, offsets, nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, o := range offsets {
			m.gAcked[o] = true
		}
	}
	if len(waitS) > 0 {
		t.Errorf("%d acknowledged appends never delivered to the group", len(waitS))
	}

	waitR := map[string]bool{}
	for _, id := range m.runs {
		if _, done := m.completed[id]; !done && !m.unsure[id] {
			waitR[id] = true
		}
	}
	for len(waitR) > 0 && time.Now().Before(deadline) {
		tasks, err := c.Worker.AwaitBatch(ctx, "crash-drain", []string{crashAction}, 100, &flo.WorkerAwaitOptions{Block: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			m.checkTask(fail, task)
			result := append([]byte("out-"), task.Input...)
			if err := c.Worker.Complete(ctx, "crash-drain", task.ID, result, nil); err != nil && !errors.Is(err, flo.ErrConflict) {
				t.Fatal(err)
			}
			m.completed[task.ID] = result
			delete(waitR, task.ID)
		}
	}
	if len(waitR) > 0 {
		t.Errorf("%d acknowledged invokes never claimed", len(waitR))
	}
}
