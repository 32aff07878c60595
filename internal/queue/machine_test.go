package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/internal/storage/storagetest"
	"github.com/floruntime/flo/wire"
)

// harness drives a Machine by hand over a real storage engine, at a pinned
// clock, checking the invariants after every command.
type harness struct {
	t   testing.TB
	db  *storage.DB
	m   *Machine
	lim Limits
	now int64
	ns  string
}

func setup(t testing.TB, lim Limits) *harness {
	t.Helper()
	return setupOn(t, lim, storagetest.Open(t, t.TempDir(), storage.Options{}))
}

// setupChurning is setup on a memtable of a few KiB, so that a short test
// goes through many flushes and compactions.
func setupChurning(t testing.TB, lim Limits) *harness {
	t.Helper()
	return setupOn(t, lim, storagetest.Open(t, t.TempDir(), storage.Options{MemTableBytes: storagetest.ChurningMemTableBytes}))
}

func setupOn(t testing.TB, lim Limits, db *storage.DB) *harness {
	t.Helper()
	return &harness{t: t, db: db, m: NewWithLimits(db, lim), lim: lim, now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), ns: "default"}
}

func (h *harness) advance(d time.Duration) { h.now += int64(d) }

func (h *harness) run(op wire.Op, name string, value []byte, opts wire.Options) command.Result {
	h.t.Helper()
	cmd := &command.Command{Op: command.Op(op), Time: h.now, Namespace: h.ns, Key: []byte(name), Value: value, Options: opts}
	var r command.Result
	if hd := h.m.Handlers()[op]; hd.Kind == command.Read {
		r = hd.Read(cmd)
	} else {
		b := h.db.NewBatch()
		r = h.m.Apply(cmd, b)
		if err := h.db.Commit(b, false); err != nil {
			h.t.Fatal(err)
		}
		h.m.Committed()
	}
	if err := h.m.Check(); err != nil {
		h.t.Fatalf("after op 0x%02x: %v", uint8(op), err)
	}
	return r
}

func (h *harness) ok(op wire.Op, name string, value []byte, opts wire.Options) command.Result {
	h.t.Helper()
	r := h.run(op, name, value, opts)
	if r.Err != nil {
		h.t.Fatalf("op 0x%02x on %q: %v", uint8(op), name, r.Err)
	}
	return r
}

func (h *harness) pulse() []string {
	h.t.Helper()
	b := h.db.NewBatch()
	r := h.m.Apply(&command.Command{Op: command.OpPulse, Time: h.now}, b)
	if err := h.db.Commit(b, false); err != nil {
		h.t.Fatal(err)
	}
	h.m.Committed()
	if err := h.m.Check(); err != nil {
		h.t.Fatalf("after pulse: %v", err)
	}
	return r.Wake
}

type enq struct {
	prio  uint8
	delay time.Duration
	dedup string
}

func (h *harness) enqueue(name, payload string, e enq) uint64 {
	h.t.Helper()
	var o wire.Options
	if e.prio != 0 {
		o = wire.AppendU8(o, wire.TagPriority, e.prio)
	}
	if e.delay > 0 {
		o = wire.AppendU64(o, wire.TagDelayMs, uint64(e.delay.Milliseconds()))
	}
	if e.dedup != "" {
		o = wire.AppendOption(o, wire.TagDedupKey, []byte(e.dedup))
	}
	r := h.ok(wire.OpQueueEnqueue, name, []byte(payload), o)
	return binary.LittleEndian.Uint64(r.Body)
}

// enqueueMany enqueues n messages ("0", "1", …) in one storage batch, as
// one journal group would, and returns their seqs.
func (h *harness) enqueueMany(name string, n int) []uint64 {
	h.t.Helper()
	b := h.db.NewBatch()
	seqs := make([]uint64, n)
	for i := range seqs {
		r := h.m.Apply(&command.Command{Op: command.Op(wire.OpQueueEnqueue), Time: h.now, Namespace: h.ns, Key: []byte(name), Value: []byte(fmt.Sprint(i))}, b)
		if r.Err != nil {
			h.t.Fatal(r.Err)
		}
		seqs[i] = binary.LittleEndian.Uint64(r.Body)
	}
	if err := h.db.Commit(b, false); err != nil {
		h.t.Fatal(err)
	}
	h.m.Committed()
	return seqs
}

func (h *harness) dequeue(name string, count int, vis time.Duration) []wire.QueueMessage {
	h.t.Helper()
	o := wire.AppendU32(nil, wire.TagCount, uint32(count))
	if vis > 0 {
		o = wire.AppendU32(o, wire.TagVisibilityTimeoutMs, uint32(vis.Milliseconds()))
	}
	o = wire.AppendFlag(o, wire.TagMessageDetail)
	r := h.ok(wire.OpQueueDequeue, name, nil, o)
	ms, err := wire.DecodeQueueMessages(r.Body, true)
	if err != nil {
		h.t.Fatal(err)
	}
	if r.Empty != (len(ms) == 0) {
		h.t.Fatalf("Empty=%v with %d messages", r.Empty, len(ms))
	}
	return ms
}

func (h *harness) list(op wire.Op, name string, opts wire.Options) []wire.QueueMessage {
	h.t.Helper()
	r := h.ok(op, name, nil, wire.AppendFlag(opts, wire.TagMessageDetail))
	ms, err := wire.DecodeQueueMessages(r.Body, true)
	if err != nil {
		h.t.Fatal(err)
	}
	return ms
}

func (h *harness) peek(name string, count int) []wire.QueueMessage {
	return h.list(wire.OpQueuePeek, name, wire.AppendU32(nil, wire.TagCount, uint32(count)))
}

func (h *harness) dlq(name string, limit int) []wire.QueueMessage {
	var o wire.Options
	if limit > 0 {
		o = wire.AppendU32(o, wire.TagLimit, uint32(limit))
	}
	return h.list(wire.OpQueueDLQList, name, o)
}

func (h *harness) seqs(op wire.Op, name string, opts wire.Options, seqs ...uint64) command.Result {
	h.t.Helper()
	return h.ok(op, name, wire.AppendSeqList(nil, seqs), opts)
}

func (h *harness) stats(name string) wire.QueueStats {
	h.t.Helper()
	s, err := wire.DecodeQueueStats(h.ok(wire.OpQueueStats, name, nil, nil).Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// reload replaces the machine by one loaded from storage and checks that
// it holds exactly the same state.
func (h *harness) reload() {
	h.t.Helper()
	before := h.m.dump()
	m := NewWithLimits(h.db, h.lim)
	if err := m.Load(h.db); err != nil {
		h.t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		h.t.Fatalf("after load: %v", err)
	}
	if after := m.dump(); after != before {
		h.t.Fatalf("state differs after reload:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	m.now = h.m.now
	m.payloadBudget = h.m.payloadBudget
	h.m = m
}

// dump renders the observable state canonically.
func (m *Machine) dump() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var sb strings.Builder
	var qs []*queue
	for _, byName := range m.queues {
		for _, q := range byName {
			qs = append(qs, q)
		}
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].ns+"\x00"+qs[i].name < qs[j].ns+"\x00"+qs[j].name })
	for _, q := range qs {
		fmt.Fprintf(&sb, "queue %q/%q seq=%d pos=%d dlq=%d\n", q.ns, q.name, q.lastSeq, q.lastPos, q.lastDLQ)
		seqs := make([]uint64, 0, len(q.msgs))
		for s := range q.msgs {
			seqs = append(seqs, s)
		}
		slices.Sort(seqs)
		for _, s := range seqs {
			x := q.msgs[s]
			fmt.Fprintf(&sb, "  %d %s prio=%d pos=%d enq=%d due=%d del=%d vis=%d dlq=%d@%d reason=%q dedup=%v\n",
				x.seq, x.state, x.prio, x.pos, x.enqueued, x.due, x.deliveries, x.visMs, x.dlqPos, x.dlqAt, x.reason,
				x.dedup != nil && !x.dedup.dropped)
		}
		for msg := q.dlqHead; msg != nil; msg = msg.next {
			fmt.Fprintf(&sb, "  dlq %d\n", msg.seq)
		}
		keys := make([]string, 0, len(q.dedups))
		for k := range q.dedups {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&sb, "  dedup %q -> %d until %d\n", k, q.dedups[k].seq, q.dedups[k].until)
		}
	}
	return sb.String()
}

func payloads(ms []wire.QueueMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	return out
}

func wantPayloads(t testing.TB, got []wire.QueueMessage, want ...string) {
	t.Helper()
	if g := payloads(got); !slices.Equal(g, want) && !(len(g) == 0 && len(want) == 0) {
		t.Fatalf("payloads = %q, want %q", g, want)
	}
}

func TestMachine_PriorityThenFIFO(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	h.enqueue("q", "low1", enq{})
	h.enqueue("q", "high", enq{prio: 10})
	h.enqueue("q", "mid", enq{prio: 5})
	h.enqueue("q", "low2", enq{})
	wantPayloads(t, h.peek("q", 10), "high", "mid", "low1", "low2")
	wantPayloads(t, h.dequeue("q", 1, 0), "high")
	wantPayloads(t, h.dequeue("q", 10, 0), "mid", "low1", "low2")
	if got := h.dequeue("q", 1, 0); len(got) != 0 {
		t.Fatalf("drained queue returned %v", got)
	}
}

func TestMachine_UnknownQueueIsEmpty(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	r := h.ok(wire.OpQueueDequeue, "nope", nil, nil)
	if !r.Empty || !bytes.Equal(r.Body, []byte{0, 0, 0, 0}) {
		t.Fatalf("dequeue unknown: %+v", r)
	}
	h.seqs(wire.OpQueueAck, "nope", nil, 1, 2)
	h.seqs(wire.OpQueueNack, "nope", nil, 1)
	h.seqs(wire.OpQueueTouch, "nope", nil, 1)
	h.seqs(wire.OpQueueDLQRequeue, "nope", nil, 1)
	wantPayloads(t, h.peek("nope", 5))
	wantPayloads(t, h.dlq("nope", 0))
	if s := h.stats("nope"); s != (wire.QueueStats{}) {
		t.Fatalf("stats %+v", s)
	}
	if len(h.m.queues) != 0 {
		t.Fatal("reads and no-op writes must not create queues")
	}
}

func TestMachine_DelayEnds(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	h.enqueue("q", "later", enq{delay: time.Second})
	h.enqueue("q", "now", enq{})
	wantPayloads(t, h.peek("q", 10), "now")
	if s := h.stats("q"); s.Ready != 1 || s.Delayed != 1 {
		t.Fatalf("stats %+v", s)
	}
	if due := h.m.NextDue(); due != h.now+int64(time.Second) {
		t.Fatalf("NextDue = %d, want %d", due, h.now+int64(time.Second))
	}
	h.advance(999 * time.Millisecond)
	if w := h.pulse(); len(w) != 0 {
		t.Fatalf("early pulse woke %v", w)
	}
	h.advance(time.Millisecond)
	// A read sees the ended delay before any pulse applies it.
	wantPayloads(t, h.peek("q", 10), "later", "now")
	if s := h.stats("q"); s.Ready != 2 || s.Delayed != 0 {
		t.Fatalf("stats %+v", s)
	}
	if w := h.pulse(); !slices.Equal(w, []string{WaitKey("default", []byte("q"))}) {
		t.Fatalf("pulse woke %v", w)
	}
	wantPayloads(t, h.dequeue("q", 10, 0), "later", "now")
	if h.m.NextDue() == 0 {
		t.Fatal("leases must be scheduled")
	}
}

func TestMachine_DelayEndsLazilyInDequeue(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	h.enqueue("q", "a", enq{delay: 50 * time.Millisecond})
	if got := h.dequeue("q", 1, 0); len(got) != 0 {
		t.Fatal("delayed message dequeued early")
	}
	h.advance(50 * time.Millisecond)
	wantPayloads(t, h.dequeue("q", 1, 0), "a")
}

func TestMachine_EnqueueWakes(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	key := WaitKey("default", []byte("q"))
	if r := h.ok(wire.OpQueueEnqueue, "q", []byte("x"), nil); !slices.Equal(r.Wake, []string{key}) {
		t.Fatalf("ready enqueue woke %v", r.Wake)
	}
	if r := h.ok(wire.OpQueueEnqueue, "q", []byte("x"), wire.AppendU64(nil, wire.TagDelayMs, 10)); len(r.Wake) != 0 {
		t.Fatalf("delayed enqueue woke %v", r.Wake)
	}
}

func TestMachine_Dedup(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	a := h.enqueue("q", "a", enq{dedup: "k"})
	if b := h.enqueue("q", "b", enq{dedup: "k"}); b != a {
		t.Fatalf("duplicate got seq %d, want original %d", b, a)
	}
	if other := h.enqueue("other", "b", enq{dedup: "k"}); other != 1 {
		t.Fatalf("dedup keys are per queue: seq %d", other)
	}
	wantPayloads(t, h.peek("q", 10), "a")
	// Acked within the hold: still held until the hold ends.
	h.seqs(wire.OpQueueAck, "q", nil, h.dequeue("q", 1, 0)[0].Seq)
	h.advance(5*time.Minute - time.Nanosecond)
	if s := h.enqueue("q", "c", enq{dedup: "k"}); s != a {
		t.Fatalf("key released early: seq %d", s)
	}
	h.advance(time.Nanosecond)
	if s := h.enqueue("q", "d", enq{dedup: "k"}); s == a {
		t.Fatal("key held after the hold with its message gone")
	}
}

func TestMachine_DedupHeldWhileQueued(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{DedupHold: time.Second})
	a := h.enqueue("q", "a", enq{dedup: "k"})
	h.advance(2 * time.Second)
	h.pulse()
	if s := h.enqueue("q", "b", enq{dedup: "k"}); s != a {
		t.Fatalf("key of a queued message released: %d", s)
	}
	h.reload()
	msg := h.dequeue("q", 1, 0)[0]
	if s := h.enqueue("q", "b", enq{dedup: "k"}); s != a {
		t.Fatalf("key of a leased message released: %d", s)
	}
	h.seqs(wire.OpQueueAck, "q", nil, msg.Seq)
	if len(h.m.queues["default"]["q"].dedups) != 0 {
		t.Fatal("ack after the hold must release the key")
	}
	if s := h.enqueue("q", "c", enq{dedup: "k"}); s == a {
		t.Fatal("released key still deduplicates")
	}
	// Dead-lettering also releases it.
	c := h.enqueue("q", "d", enq{dedup: "k2"})
	h.advance(2 * time.Second)
	h.seqs(wire.OpQueueNack, "q", wire.AppendU8(nil, wire.TagSendToDLQ, 1), c)
	if s := h.enqueue("q", "e", enq{dedup: "k2"}); s == c {
		t.Fatal("key of a dead-lettered message still held")
	}
}

func TestMachine_LeaseExpiryRedelivers(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	h.enqueue("q", "a", enq{})
	h.enqueue("q", "b", enq{})
	first := h.dequeue("q", 1, 200*time.Millisecond)
	if first[0].Deliveries != 1 {
		t.Fatalf("deliveries %d", first[0].Deliveries)
	}
	wantPayloads(t, h.peek("q", 10), "b")
	if s := h.stats("q"); s.InFlight != 1 || s.Ready != 1 {
		t.Fatalf("stats %+v", s)
	}
	h.advance(200 * time.Millisecond)
	// Without a pulse, reads already see the lease as expired, and the
	// message back at its original position.
	got := h.peek("q", 10)
	wantPayloads(t, got, "a", "b")
	if got[0].Reason == nil || string(got[0].Reason) != ReasonLeaseExpired {
		t.Fatalf("reason %q", got[0].Reason)
	}
	if s := h.stats("q"); s.InFlight != 0 || s.Ready != 2 {
		t.Fatalf("stats %+v", s)
	}
	if w := h.pulse(); len(w) != 1 {
		t.Fatalf("pulse woke %v", w)
	}
	again := h.dequeue("q", 1, 0)
	if again[0].Seq != first[0].Seq || again[0].Deliveries != 2 {
		t.Fatalf("redelivery %+v", again[0])
	}
}

func TestMachine_AckAfterLeaseExpiry(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	s := h.enqueue("q", "a", enq{})
	h.dequeue("q", 1, 100*time.Millisecond)
	h.advance(time.Second)
	h.seqs(wire.OpQueueAck, "q", nil, s)
	if st := h.stats("q"); st != (wire.QueueStats{}) {
		t.Fatalf("ack after expiry left %+v", st)
	}
}

func TestMachine_TouchResetsDeadline(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	s := h.enqueue("q", "a", enq{})
	h.dequeue("q", 1, 300*time.Millisecond)
	for range 5 {
		h.advance(200 * time.Millisecond)
		h.seqs(wire.OpQueueTouch, "q", nil, s, 999)
		h.pulse()
		if got := h.dequeue("q", 1, 0); len(got) != 0 {
			t.Fatal("touched message redelivered")
		}
	}
	// Touch resets to now + visibility; it does not add.
	q := h.m.queues["default"]["q"]
	if d := q.msgs[s].due; d != h.now+int64(300*time.Millisecond) {
		t.Fatalf("due %d, want now+300ms", d)
	}
	h.advance(300 * time.Millisecond)
	h.seqs(wire.OpQueueTouch, "q", nil, s) // too late: the lease expired
	got := h.dequeue("q", 1, 0)
	if len(got) != 1 || got[0].Deliveries != 2 {
		t.Fatalf("after expiry: %+v", got)
	}
}

func TestMachine_NackReturnsToOriginalPosition(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	h.enqueue("q", "a", enq{})
	h.enqueue("q", "b", enq{})
	a := h.dequeue("q", 1, 0)[0]
	h.enqueue("q", "c", enq{})
	r := h.seqs(wire.OpQueueNack, "q", nil, a.Seq, 12345)
	if len(r.Wake) != 1 {
		t.Fatalf("nack woke %v", r.Wake)
	}
	got := h.dequeue("q", 3, 0)
	wantPayloads(t, got, "a", "b", "c")
	if got[0].Deliveries != 2 || string(got[0].Reason) != ReasonNack {
		t.Fatalf("%+v", got[0])
	}
	// A plain nack of a message that is not leased is ignored.
	h.seqs(wire.OpQueueNack, "q", nil, got[0].Seq)
	h.seqs(wire.OpQueueNack, "q", nil, got[0].Seq)
	if s := h.stats("q"); s.Ready != 1 || s.InFlight != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMachine_NackWithDelayAndReason(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	s := h.enqueue("q", "a", enq{})
	h.dequeue("q", 1, 0)
	o := wire.AppendU64(nil, wire.TagDelayMs, 500)
	o = wire.AppendOption(o, wire.TagNackReason, []byte("db down"))
	if r := h.seqs(wire.OpQueueNack, "q", o, s); len(r.Wake) != 0 {
		t.Fatal("delayed nack must not wake")
	}
	if st := h.stats("q"); st.Delayed != 1 {
		t.Fatalf("stats %+v", st)
	}
	h.advance(499 * time.Millisecond)
	if len(h.dequeue("q", 1, 0)) != 0 {
		t.Fatal("nack delay not honoured")
	}
	h.advance(time.Millisecond)
	got := h.dequeue("q", 1, 0)
	if len(got) != 1 || string(got[0].Reason) != "db down" || got[0].Deliveries != 2 {
		t.Fatalf("%+v", got)
	}
}

func TestMachine_DeliveryLimitToDLQ(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	s := h.enqueue("q", "poison", enq{})
	for i := 1; i <= 4; i++ {
		m := h.dequeue("q", 1, 100*time.Millisecond)[0]
		if m.Deliveries != uint32(i) {
			t.Fatalf("delivery %d: count %d", i, m.Deliveries)
		}
		h.seqs(wire.OpQueueNack, "q", wire.AppendOption(nil, wire.TagNackReason, []byte(fmt.Sprint("fail ", i))), s)
	}
	// The fifth delivery's lease expires: that is a failure too (D4).
	h.dequeue("q", 1, 100*time.Millisecond)
	h.advance(100 * time.Millisecond)
	dl := h.dlq("q", 0) // visible before the pulse applies it
	if len(dl) != 1 || dl[0].Seq != s || dl[0].Deliveries != 5 || string(dl[0].Reason) != ReasonLeaseExpired || dl[0].DLQAtMs != h.now/1e6 {
		t.Fatalf("dlq %+v", dl)
	}
	if st := h.stats("q"); st != (wire.QueueStats{DLQ: 1}) {
		t.Fatalf("stats %+v", st)
	}
	if w := h.pulse(); len(w) != 0 {
		t.Fatalf("dead-lettering woke %v", w)
	}
	dl2 := h.dlq("q", 0)
	if len(dl2) != 1 || dl2[0].DLQAtMs != dl[0].DLQAtMs {
		t.Fatalf("dlq after pulse %+v", dl2)
	}
	if len(h.dequeue("q", 1, 0)) != 0 {
		t.Fatal("dead letter delivered")
	}
	// Ack and plain nack ignore DLQ entries.
	h.seqs(wire.OpQueueAck, "q", nil, s)
	h.seqs(wire.OpQueueNack, "q", wire.AppendU8(nil, wire.TagSendToDLQ, 1), s)
	if len(h.dlq("q", 0)) != 1 {
		t.Fatal("ack removed a DLQ entry")
	}
}

func TestMachine_NackAtLimitGoesToDLQ(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{MaxDeliveries: 2})
	s := h.enqueue("q", "a", enq{})
	h.dequeue("q", 1, 0)
	h.seqs(wire.OpQueueNack, "q", nil, s)
	h.dequeue("q", 1, 0)
	h.seqs(wire.OpQueueNack, "q", wire.AppendOption(nil, wire.TagNackReason, []byte("boom")), s)
	dl := h.dlq("q", 0)
	if len(dl) != 1 || string(dl[0].Reason) != "boom" || dl[0].Deliveries != 2 {
		t.Fatalf("dlq %+v", dl)
	}
}

func TestMachine_NackToDLQ(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	ready := h.enqueue("q", "ready", enq{})
	leased := h.enqueue("q", "leased", enq{prio: 9})
	delayed := h.enqueue("q", "delayed", enq{delay: time.Hour})
	h.dequeue("q", 1, 0)
	h.seqs(wire.OpQueueNack, "q", wire.AppendU8(nil, wire.TagSendToDLQ, 1), leased, ready, delayed, 77)
	wantPayloads(t, h.dlq("q", 0), "leased", "ready")
	if s := h.stats("q"); s != (wire.QueueStats{Delayed: 1, DLQ: 2}) {
		t.Fatalf("stats %+v", s)
	}
	dl := h.dlq("q", 0)
	if string(dl[0].Reason) != ReasonSentToDLQ || dl[0].DLQAtMs != h.now/1e6 {
		t.Fatalf("%+v", dl[0])
	}
}

func TestMachine_DLQRequeueGoesToBack(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	a := h.enqueue("q", "a", enq{})
	h.enqueue("q", "b", enq{})
	h.enqueue("q", "hi", enq{prio: 1})
	h.seqs(wire.OpQueueNack, "q", wire.AppendFlag(nil, wire.TagSendToDLQ), a)
	h.enqueue("q", "c", enq{})
	r := h.seqs(wire.OpQueueDLQRequeue, "q", nil, a, 999)
	if len(r.Wake) != 1 {
		t.Fatalf("requeue woke %v", r.Wake)
	}
	got := h.peek("q", 10)
	wantPayloads(t, got, "hi", "b", "c", "a")
	if got[3].Seq != a || got[3].Deliveries != 0 {
		t.Fatalf("requeued %+v", got[3])
	}
	if len(h.dlq("q", 0)) != 0 {
		t.Fatal("requeued entry still in the DLQ")
	}
}

func TestMachine_DLQCapEvictsOldest(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{DLQMax: 3})
	var seqs []uint64
	for i := range 5 {
		seqs = append(seqs, h.enqueue("q", fmt.Sprint(i), enq{dedup: fmt.Sprint("k", i)}))
	}
	h.advance(10 * time.Minute)
	h.seqs(wire.OpQueueNack, "q", wire.AppendFlag(nil, wire.TagSendToDLQ), seqs...)
	wantPayloads(t, h.dlq("q", 0), "2", "3", "4")
	q := h.m.queues["default"]["q"]
	if len(q.msgs) != 3 || len(q.dedups) != 0 {
		t.Fatalf("evicted messages linger: %d msgs, %d dedup keys", len(q.msgs), len(q.dedups))
	}
	// Evicted payloads are gone from storage too.
	if _, err := h.db.Get(payloadKey(q, seqs[0])); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("payload of evicted message: %v", err)
	}
	h.reload()
}

func TestMachine_DLQCapDefault(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	seqs := h.enqueueMany("q", 10_001)
	h.seqs(wire.OpQueueNack, "q", wire.AppendFlag(nil, wire.TagSendToDLQ), seqs[:10_000]...)
	if s := h.stats("q"); s.DLQ != 10_000 || s.Ready != 1 {
		t.Fatalf("at the cap: %+v", s)
	}
	h.seqs(wire.OpQueueNack, "q", wire.AppendFlag(nil, wire.TagSendToDLQ), seqs[10_000])
	if s := h.stats("q"); s.DLQ != 10_000 || s.Ready != 0 {
		t.Fatalf("one past the cap: %+v", s)
	}
	if dl := h.dlq("q", 1); dl[0].Seq != seqs[1] {
		t.Fatalf("oldest is %d, want %d", dl[0].Seq, seqs[1])
	}
	// List limit: absent → 100, 1000 → 1000, 1001 → clamped to 1000.
	for _, c := range []struct{ limit, want int }{{0, 100}, {1, 1}, {1000, 1000}, {1001, 1000}} {
		if got := len(h.dlq("q", c.limit)); got != c.want {
			t.Errorf("limit %d: got %d, want %d", c.limit, got, c.want)
		}
	}
}

func TestMachine_DLQDeleteAndPurge(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	var seqs []uint64
	for i := range 4 {
		seqs = append(seqs, h.enqueue("q", fmt.Sprint(i), enq{}))
	}
	h.seqs(wire.OpQueueNack, "q", wire.AppendFlag(nil, wire.TagSendToDLQ), seqs[:3]...)
	r := h.seqs(wire.OpQueueDLQDelete, "q", nil, seqs[0], seqs[3], 99)
	if binary.LittleEndian.Uint64(r.Body) != 1 {
		t.Fatalf("deleted %x", r.Body)
	}
	r = h.ok(wire.OpQueueDLQDelete, "q", nil, wire.AppendFlag(nil, wire.TagDLQAll))
	if binary.LittleEndian.Uint64(r.Body) != 2 {
		t.Fatalf("purged %x", r.Body)
	}
	if s := h.stats("q"); s != (wire.QueueStats{Ready: 1}) {
		t.Fatalf("stats %+v", s)
	}
}

func TestMachine_CountClamp(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	for i := range 250 {
		h.enqueue("q", fmt.Sprint(i), enq{})
	}
	for _, c := range []struct{ count, want int }{{0, 1}, {1, 1}, {100, 100}, {101, 100}} {
		if got := len(h.peek("q", c.count)); got != c.want {
			t.Errorf("peek count %d: got %d, want %d", c.count, got, c.want)
		}
	}
	r := h.ok(wire.OpQueueDequeue, "q", nil, nil) // COUNT absent: 1
	if ms, _ := wire.DecodeQueueMessages(r.Body, false); len(ms) != 1 {
		t.Fatalf("absent count: %d", len(ms))
	}
	if got := len(h.dequeue("q", 0, 0)); got != 1 {
		t.Fatalf("count 0: %d", got)
	}
	if got := len(h.dequeue("q", 101, 0)); got != 100 {
		t.Fatalf("count 101: %d", got)
	}
	if got := len(h.dequeue("q", 100, 0)); got != 100 {
		t.Fatalf("count 100: %d", got)
	}
}

func TestMachine_VisibilityDefaultsAndClamp(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	for range 3 {
		h.enqueue("q", "x", enq{})
	}
	q := h.m.queues["default"]["q"]
	for _, c := range []struct{ ms, want uint64 }{
		{0, 30_000},
		{uint64(MaxVisibility.Milliseconds()), uint64(MaxVisibility.Milliseconds())},
		{uint64(MaxVisibility.Milliseconds()) + 1, uint64(MaxVisibility.Milliseconds())},
	} {
		o := wire.AppendU32(wire.AppendU32(nil, wire.TagCount, 1), wire.TagVisibilityTimeoutMs, uint32(c.ms))
		ms, _ := wire.DecodeQueueMessages(h.ok(wire.OpQueueDequeue, "q", nil, o).Body, false)
		if got := q.msgs[ms[0].Seq].due - h.now; got != int64(c.want)*1e6 {
			t.Errorf("visibility %d ms: lease of %v", c.ms, time.Duration(got))
		}
	}
}

func TestMachine_Limits(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	bad := func(name string, op wire.Op, key string, value []byte, opts wire.Options) {
		t.Helper()
		r := h.run(op, key, value, opts)
		if !errors.Is(r.Err, wire.ErrBadRequest) {
			t.Errorf("%s: err = %v, want BAD_REQUEST", name, r.Err)
		}
	}
	good := func(name string, op wire.Op, key string, value []byte, opts wire.Options) {
		t.Helper()
		if r := h.run(op, key, value, opts); r.Err != nil {
			t.Errorf("%s: %v", name, r.Err)
		}
	}
	good("name 256", wire.OpQueueEnqueue, strings.Repeat("n", MaxNameBytes), nil, nil)
	bad("name 257", wire.OpQueueEnqueue, strings.Repeat("n", MaxNameBytes+1), nil, nil)
	bad("empty name", wire.OpQueueEnqueue, "", nil, nil)
	bad("empty name peek", wire.OpQueuePeek, "", nil, nil)
	good("payload 16 MiB", wire.OpQueueEnqueue, "q", make([]byte, MaxPayloadBytes), nil)
	bad("payload 16 MiB + 1", wire.OpQueueEnqueue, "q", make([]byte, MaxPayloadBytes+1), nil)
	good("empty payload", wire.OpQueueEnqueue, "q", nil, nil)
	good("priority 255", wire.OpQueueEnqueue, "q", nil, wire.AppendU8(nil, wire.TagPriority, 255))
	bad("priority 256", wire.OpQueueEnqueue, "q", nil, wire.AppendU32(nil, wire.TagPriority, 256))
	bad("priority odd width", wire.OpQueueEnqueue, "q", nil, wire.AppendOption(nil, wire.TagPriority, []byte{1, 2, 3}))
	maxDelay := uint64(MaxDelay.Milliseconds())
	good("delay max", wire.OpQueueEnqueue, "q", nil, wire.AppendU64(nil, wire.TagDelayMs, maxDelay))
	bad("delay max + 1", wire.OpQueueEnqueue, "q", nil, wire.AppendU64(nil, wire.TagDelayMs, maxDelay+1))
	bad("nack delay max + 1", wire.OpQueueNack, "q", wire.AppendSeqList(nil, []uint64{1}), wire.AppendU64(nil, wire.TagDelayMs, maxDelay+1))
	good("dedup 255", wire.OpQueueEnqueue, "q", nil, wire.AppendOption(nil, wire.TagDedupKey, bytes.Repeat([]byte("k"), MaxDedupKeyBytes)))
	bad("dedup empty", wire.OpQueueEnqueue, "q", nil, wire.AppendOption(nil, wire.TagDedupKey, nil))
	many := make([]uint64, MaxSeqsPerCall+1)
	good("seqs at the limit", wire.OpQueueAck, "q", wire.AppendSeqList(nil, many[:MaxSeqsPerCall]), nil)
	bad("seqs one past", wire.OpQueueAck, "q", wire.AppendSeqList(nil, many), nil)
	bad("truncated seq list", wire.OpQueueAck, "q", []byte{2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, nil)
	good("empty seq list", wire.OpQueueTouch, "q", nil, nil)
}

func TestMachine_ReplyBytesCap(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{MaxReplyBytes: 64 << 10})
	big := make([]byte, 12<<10)
	for range 7 {
		h.ok(wire.OpQueueEnqueue, "q", big, nil)
	}
	got := h.dequeue("q", 100, 0)
	if len(got) != 5 {
		t.Fatalf("dequeued %d messages of 12 KiB, want 5 (64 KiB cap)", len(got))
	}
	if got := h.peek("q", 100); len(got) != 2 {
		t.Fatalf("peek %d", len(got))
	}
}

func TestMachine_ReloadRestoresEverything(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{DLQMax: 5})
	h.enqueue("q", "delayed", enq{delay: time.Minute, dedup: "d"})
	h.enqueue("q", "ready", enq{prio: 3})
	l := h.enqueue("q", "leased", enq{prio: 200, dedup: "l"})
	h.dequeue("q", 1, time.Second)
	x := h.enqueue("q", "dead", enq{})
	h.seqs(wire.OpQueueNack, "q", wire.AppendOption(wire.AppendFlag(nil, wire.TagSendToDLQ), wire.TagNackReason, []byte("why")), x)
	h.ns = "other"
	h.enqueue("q", "elsewhere", enq{})
	h.ns = "default"
	h.reload()
	// The lease keeps its absolute deadline across the reload.
	h.advance(time.Second)
	h.pulse()
	got := h.dequeue("q", 1, 0)
	if len(got) != 1 || got[0].Seq != l || got[0].Deliveries != 2 {
		t.Fatalf("after reload: %+v", got)
	}
	if s := h.enqueue("q", "dup", enq{dedup: "l"}); s != l {
		t.Fatalf("dedup lost: %d", s)
	}
	if s := h.enqueue("q", "new", enq{}); s != 5 {
		t.Fatalf("seq after reload %d, want 5", s)
	}
	dl := h.dlq("q", 0)
	if len(dl) != 1 || string(dl[0].Reason) != "why" {
		t.Fatalf("dlq %+v", dl)
	}
	h.reload()
}

func TestMachine_PulseTouchesOnlyDueQueues(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	for i := range 100 {
		h.enqueue(fmt.Sprint("q", i), "x", enq{delay: time.Duration(i+1) * time.Second})
	}
	h.advance(10 * time.Second)
	if w := h.pulse(); len(w) != 10 {
		t.Fatalf("pulse woke %d queues, want 10", len(w))
	}
	if due := h.m.NextDue(); due != h.now+int64(time.Second) {
		t.Fatalf("next due in %v", time.Duration(due-h.now))
	}
}

func TestMachine_ClockGoingBackAfterRestart(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{DedupHold: time.Second})
	h.enqueue("q", "a", enq{dedup: "a"})
	h.enqueue("q", "b", enq{dedup: "b", delay: time.Minute})
	h.reload()
	h.m.now = 0
	h.advance(-time.Hour) // the host clock went back across the restart
	h.enqueue("q", "c", enq{dedup: "c"})
	q := h.m.queues["default"]["q"]
	if first := q.dedupFIFO[q.dedupHead]; first.key != "c" {
		t.Fatalf("earliest hold end is %q, want c", first.key)
	}
	if got := h.dequeue("q", 10, time.Second); len(got) != 2 {
		t.Fatalf("dequeued %d", len(got))
	}
}

// held reports whether the machine holds the payload of seq in queue name.
func (h *harness) held(name string, seq uint64) bool {
	h.m.mu.RLock()
	defer h.m.mu.RUnlock()
	return h.m.queues[h.ns][name].msgs[seq].payload != nil
}

func TestMachine_PayloadsHeldAtTheEdges(t *testing.T) {
	h := setup(t, Limits{})
	atMax := h.enqueue("jobs", strings.Repeat("x", PayloadCacheMax), enq{})
	overMax := h.enqueue("jobs", strings.Repeat("y", PayloadCacheMax+1), enq{})
	empty := h.enqueue("jobs", "", enq{})
	if !h.held("jobs", atMax) || h.held("jobs", overMax) || !h.held("jobs", empty) {
		t.Fatalf("held: %d-byte %v, %d-byte %v, empty %v", PayloadCacheMax, h.held("jobs", atMax),
			PayloadCacheMax+1, h.held("jobs", overMax), h.held("jobs", empty))
	}

	// The budget: exactly full holds; one byte more does not, until a
	// delivery frees room.
	h = setup(t, Limits{})
	h.m.payloadBudget = 10
	first := h.enqueue("jobs", "0123456789", enq{})
	second := h.enqueue("jobs", "a", enq{})
	if !h.held("jobs", first) || h.held("jobs", second) {
		t.Fatalf("budget 10: 10 bytes held %v, 1 more held %v", h.held("jobs", first), h.held("jobs", second))
	}
	if ms := h.dequeue("jobs", 1, 0); len(ms) != 1 || string(ms[0].Payload) != "0123456789" {
		t.Fatalf("dequeue %+v", ms)
	}
	third := h.enqueue("jobs", "b", enq{})
	if !h.held("jobs", third) || h.m.payloadBytes != 1 {
		t.Fatalf("after a delivery freed the budget: held %v, %d bytes", h.held("jobs", third), h.m.payloadBytes)
	}
	if err := h.m.Check(); err != nil {
		t.Fatal(err)
	}
}

// A dequeue of a message whose payload is held does not read storage: with
// the stored payload deleted behind the machine it still answers, and a
// message that is not held fails.
func TestMachine_DequeueServesHeldPayloads(t *testing.T) {
	h := setup(t, Limits{})
	h.m.payloadBudget = 5
	heldSeq := h.enqueue("jobs", "held!", enq{})
	storedSeq := h.enqueue("jobs", "stored", enq{})
	q := h.m.queues[h.ns]["jobs"]
	b := h.db.NewBatch()
	b.Delete(h.m.payloadKey(q, heldSeq))
	b.Delete(h.m.payloadKey(q, storedSeq))
	if err := h.db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	if ms := h.dequeue("jobs", 1, 0); len(ms) != 1 || string(ms[0].Payload) != "held!" {
		t.Fatalf("held payload: %+v", ms)
	}
	if r := h.run(wire.OpQueueDequeue, "jobs", nil, wire.AppendU32(nil, wire.TagCount, 1)); r.Err == nil {
		t.Fatal("dequeue of a message whose stored payload is gone succeeded: it did not read storage")
	}
}

// TestMachine_ReadsWaitForTheGroupToCommit: a read (stats, peek, DLQ list)
// that arrives while a group is applied but not committed answers only
// after the commit, never with the uncommitted change.
func TestMachine_ReadsWaitForTheGroupToCommit(t *testing.T) {
	h := setup(t, Limits{})
	h.enqueue("jobs", "committed", enq{})
	b := h.db.NewBatch() // a group in progress
	if r := h.m.Apply(&command.Command{Op: command.Op(wire.OpQueueEnqueue), Time: h.now, Namespace: h.ns, Key: []byte("jobs"), Value: []byte("pending")}, b); r.Err != nil {
		t.Fatal(r.Err)
	}
	answered := make(chan uint64, 1)
	go func() {
		r := h.m.Handlers()[wire.OpQueueStats].Read(&command.Command{Op: command.Op(wire.OpQueueStats), Time: h.now, Namespace: h.ns, Key: []byte("jobs")})
		s, err := wire.DecodeQueueStats(r.Body)
		if err != nil {
			t.Error(err)
		}
		answered <- s.Ready
	}()
	select {
	case n := <-answered:
		t.Fatalf("stats answered (ready %d) while the group was not committed", n)
	case <-time.After(100 * time.Millisecond):
	}
	if err := h.db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	h.m.Committed()
	if n := <-answered; n != 2 {
		t.Fatalf("stats after the commit: ready %d, want 2", n)
	}
}
