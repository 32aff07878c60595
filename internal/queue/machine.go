package queue

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/fsm"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// Fixed limits of queues (SEMANTICS §8.2). Values over a limit are rejected
// with BAD_REQUEST unless the comment says they are clamped.
const (
	// MaxNameBytes bounds a queue name (1–256 bytes).
	MaxNameBytes = 256
	// MaxPayloadBytes bounds a message payload (may be empty).
	MaxPayloadBytes = 16 << 20
	// MaxDedupKeyBytes bounds a dedup key. SEMANTICS allows 256, but the
	// TLV length byte that carries it stops at 255.
	MaxDedupKeyBytes = wire.MaxOptionBytes
	// MaxReasonBytes bounds a nack reason (one TLV value).
	MaxReasonBytes = wire.MaxOptionBytes
	// MaxCount is the most messages one dequeue or peek returns; counts are
	// clamped to 1..MaxCount, and 0 means 1.
	MaxCount = 100
	// DLQListDefault and DLQListMax: the DLQ list limit when absent or 0,
	// and its clamp.
	DLQListDefault = 100
	DLQListMax     = 1000
	// MaxSeqsPerCall bounds the seq list of ack, nack, touch, requeue and
	// DLQ delete.
	MaxSeqsPerCall = wire.MaxSeqListLen
	// MaxDelay bounds an enqueue's or a nack's delay.
	MaxDelay = 365 * 24 * time.Hour
	// DefaultVisibility is the lease of a dequeue that names none (or 0);
	// MaxVisibility is the clamp of longer ones.
	DefaultVisibility = 30 * time.Second
	MaxVisibility     = 12 * time.Hour
)

// Reasons recorded as a message's last failure when no nack reason is given.
const (
	ReasonLeaseExpired = "visibility timeout expired"
	ReasonNack         = "nacked"
	ReasonSentToDLQ    = "sent to the DLQ by nack"
)

// Limits are the queue settings a server may configure; tests shrink them.
type Limits struct {
	// MaxDeliveries: a message whose lease ends (nack or expiry) after this
	// many deliveries moves to the DLQ (default 5).
	MaxDeliveries int
	// DLQMax caps each queue's DLQ; the oldest entry is evicted (default 10,000).
	DLQMax int
	// DedupHold is the least time a dedup key is held (default 5 min).
	DedupHold time.Duration
	// MaxReplyBytes bounds one message list (dequeue, peek, DLQ list): the
	// reply stops early, but always carries at least one message, rather
	// than grow past it (100 × 16 MiB would). Default 64 MiB.
	MaxReplyBytes int
}

const (
	// PayloadCacheBytes bounds the payloads the machine keeps in memory
	// for messages that have not been delivered yet, so that a dequeue —
	// which runs on the journal's apply goroutine — need not read them
	// back from storage (docs/decisions/queue-payload-cache.md).
	PayloadCacheBytes = 64 << 20
	// PayloadCacheMax is the largest payload kept; bigger ones are read
	// from storage, where their size dwarfs the cost of the read.
	PayloadCacheMax = 64 << 10
)

// DefaultLimits returns the SEMANTICS defaults.
func DefaultLimits() Limits {
	return Limits{MaxDeliveries: 5, DLQMax: 10_000, DedupHold: 5 * time.Minute, MaxReplyBytes: command.MaxReplyBytes}
}

// Machine is the queue state machine. Message metadata, heaps and the DLQ
// are kept in memory (rebuilt by Load); payloads are read from storage when
// a message is listed or redelivered, and also on a first delivery unless
// the message still holds the copy enqueue kept (PayloadCacheBytes).
//
// Concurrency: Apply runs on the journal goroutine; reads (peek, DLQ list,
// stats) and NextDue run on other goroutines. mu guards every field below
// it; reads hold it shared only while choosing messages and fetch payloads
// after releasing it. Reads also pass the reads gate (fsm.ReadGate), so
// they never see a change (a lease, a DLQ move, a message) that storage
// does not have yet.
type Machine struct {
	db  storage.Reader
	lim Limits

	reads fsm.ReadGate // reads see only committed groups

	mu     sync.RWMutex
	queues map[string]map[string]*queue // namespace -> name -> queue
	sched  qheap                        // queues with time-driven work, by due time
	now    int64                        // latest command time applied; time never runs backwards
	kbuf   []byte                       // scratch key, reused by every write (Batch.Set copies)
	vbuf   []byte                       // scratch value
	checks int                          // operations checked (invariant builds)

	// Payloads held in message.payload: bytes in use and the budget.
	payloadBytes  int
	payloadBudget int
}

// NewWithLimits returns a queue machine with lim, reading committed
// payloads from db; non-positive fields of lim take their defaults.
func NewWithLimits(db storage.Reader, lim Limits) *Machine {
	d := DefaultLimits()
	if lim.MaxDeliveries <= 0 {
		lim.MaxDeliveries = d.MaxDeliveries
	}
	if lim.DLQMax <= 0 {
		lim.DLQMax = d.DLQMax
	}
	if lim.DedupHold <= 0 {
		lim.DedupHold = d.DedupHold
	}
	if lim.MaxReplyBytes <= 0 {
		lim.MaxReplyBytes = d.MaxReplyBytes
	}
	return &Machine{db: db, lim: lim, queues: make(map[string]map[string]*queue), payloadBudget: PayloadCacheBytes}
}

// holdPayload keeps a copy of msg's payload p if it fits the budget.
func (m *Machine) holdPayload(msg *message, p []byte) {
	if len(p) > PayloadCacheMax || m.payloadBytes+len(p) > m.payloadBudget {
		return
	}
	msg.payload = append(make([]byte, 0, len(p)), p...)
	m.payloadBytes += len(p)
}

// releasePayload forgets msg's held payload, if any.
func (m *Machine) releasePayload(msg *message) {
	if msg.payload != nil {
		m.payloadBytes -= len(msg.payload)
		msg.payload = nil
	}
}

// WaitKey is the key a blocking dequeue on (ns, name) parks under.
func WaitKey(ns string, name []byte) string {
	return "queue\x00" + ns + "\x00" + string(name)
}

// dropAcks removes a parked dequeue's ack list before its retries: the
// acks were applied (and made durable) by its first attempt, and applied
// again later they could delete a message that came back meanwhile (a DLQ
// requeue of an acked seq that was in the DLQ then).
func dropAcks(cmd *command.Command) { cmd.Value = nil }

func waitKeys(cmd *command.Command) []string {
	return []string{WaitKey(cmd.Namespace, cmd.Key)}
}

// Handlers implements fsm.Machine.
func (m *Machine) Handlers() map[wire.Op]command.Handler {
	return map[wire.Op]command.Handler{
		wire.OpQueueEnqueue:    {Kind: command.Write},
		wire.OpQueueDequeue:    {Kind: command.Write, WaitKeys: waitKeys, Retried: dropAcks},
		wire.OpQueueAck:        {Kind: command.Write},
		wire.OpQueueNack:       {Kind: command.Write},
		wire.OpQueueTouch:      {Kind: command.Write},
		wire.OpQueueDLQRequeue: {Kind: command.Write},
		wire.OpQueueDLQDelete:  {Kind: command.Write},
		wire.OpQueuePeek:       {Kind: command.Read, Read: m.reads.Read(m.peek)},
		wire.OpQueueDLQList:    {Kind: command.Read, Read: m.reads.Read(m.dlqList)},
		wire.OpQueueStats:      {Kind: command.Read, Read: m.reads.Read(m.stats)},
	}
}

// Committed implements fsm.Committer: the group's changes are in storage,
// so reads may see them.
func (m *Machine) Committed() { m.reads.Committed() }

// NextDue implements fsm.Machine: the earliest delay end, lease deadline or
// dedup hold end over all queues.
func (m *Machine) NextDue() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.sched) == 0 {
		return 0
	}
	return m.sched[0].due
}

// Apply implements fsm.Machine. Every operation first applies what is due
// on its queue at the command time, so no write ever acts on an expired
// lease or an ended delay, whether or not a pulse got there first.
func (m *Machine) Apply(cmd *command.Command, b storage.Batch) command.Result {
	m.reads.Applying()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := max(cmd.Time, m.now)
	m.now = now
	if cmd.Op == command.OpPulse {
		return m.pulse(now, b)
	}
	if err := validateName(cmd.Key); err != nil {
		return command.Fail(err)
	}
	switch op := wire.Op(cmd.Op); op {
	case wire.OpQueueEnqueue:
		return m.enqueue(now, cmd, b)
	case wire.OpQueueDequeue:
		return m.dequeue(now, cmd, b)
	case wire.OpQueueAck, wire.OpQueueNack, wire.OpQueueTouch, wire.OpQueueDLQRequeue, wire.OpQueueDLQDelete:
		return m.seqOp(op, now, cmd, b)
	default:
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "queue: unknown opcode 0x%02x", uint8(op)))
	}
}

// pulse applies everything due at now on every queue.
func (m *Machine) pulse(now int64, b storage.Batch) command.Result {
	var wake []string
	for len(m.sched) > 0 && m.sched[0].due <= now {
		q := m.sched[0]
		if m.expire(q, now, b) && q.ready.Len() > 0 {
			wake = append(wake, q.wake)
		}
		m.end(q, b)
	}
	return command.Result{Wake: wake}
}

// expire applies q's due changes: delays end, leases expire (a delivery
// that failed: to the DLQ at the delivery limit, else back to ready at its
// position), dedup holds end. It reports whether a message became ready.
func (m *Machine) expire(q *queue, now int64, b storage.Batch) bool {
	woke := false
	for len(q.timers.s) > 0 && q.timers.s[0].due <= now {
		msg := q.timers.pop()
		if msg.state == stateDelayed {
			q.delayed--
			m.makeReady(q, msg)
			woke = true
		} else {
			q.leased--
			msg.reason = ReasonLeaseExpired
			if msg.deliveries >= uint32(m.lim.MaxDeliveries) {
				// The move happened when the lease ended, not when we noticed.
				m.toDLQ(q, msg, msg.due, now, b)
			} else {
				m.makeReady(q, msg)
				woke = true
			}
		}
		m.putMeta(b, q, msg)
	}
	for q.dedupHead < len(q.dedupFIFO) && q.dedupFIFO[q.dedupHead].until <= now {
		e := q.dedupFIFO[q.dedupHead]
		q.dedupFIFO[q.dedupHead] = nil
		q.dedupHead++
		if !e.dropped && !q.msgs[e.seq].queued() {
			m.dropDedup(b, q, e)
		}
		// A key whose message is still queued stays held; the message
		// releases it when it leaves (see release).
	}
	if q.dedupHead > 64 && q.dedupHead*2 >= len(q.dedupFIFO) {
		n := copy(q.dedupFIFO, q.dedupFIFO[q.dedupHead:])
		clear(q.dedupFIFO[n:])
		q.dedupFIFO = q.dedupFIFO[:n]
		q.dedupHead = 0
	}
	return woke
}

// end finishes an operation on q: persists changed counters, reschedules
// q's next due time and, in invariant builds, checks q.
func (m *Machine) end(q *queue, b storage.Batch) {
	m.putCounters(b, q)
	m.reschedule(q)
	checkQueue(m, q)
}

// reschedule puts q at its current next due time in m.sched.
func (m *Machine) reschedule(q *queue) {
	d := q.nextDue()
	switch {
	case d == 0:
		if q.sidx >= 0 {
			m.sched.Remove(q)
		}
		q.due = 0
	case q.sidx < 0:
		q.due = d
		m.sched.Add(q)
	case d != q.due:
		q.due = d
		m.sched.Fix(q)
	}
}

// queueFor returns the queue (ns, name), creating it.
func (m *Machine) queueFor(ns, name string) *queue {
	byName := m.queues[ns]
	if byName == nil {
		byName = make(map[string]*queue)
		m.queues[ns] = byName
	}
	q := byName[name]
	if q == nil {
		q = newQueue(ns, name)
		byName[name] = q
	}
	return q
}

// lookup returns the queue (ns, name), or nil if it was never used.
func (m *Machine) lookup(ns string, name []byte) *queue {
	return m.queues[ns][string(name)]
}

// makeReady puts msg in the ready heap at its position.
func (m *Machine) makeReady(q *queue, msg *message) {
	msg.state = stateReady
	msg.due = 0
	q.ready.push(msg)
}

// unplace takes msg out of the structure of its state.
func (m *Machine) unplace(q *queue, msg *message) {
	switch msg.state {
	case stateReady:
		q.ready.remove(msg.idx)
	case stateDelayed:
		q.timers.remove(msg.idx)
		q.delayed--
	case stateLeased:
		q.timers.remove(msg.idx)
		q.leased--
	case stateDLQ:
		q.dlqRemove(msg)
	}
}

// drop deletes an unplaced message for good.
func (m *Machine) drop(b storage.Batch, q *queue, msg *message, now int64) {
	m.releasePayload(msg)
	delete(q.msgs, msg.seq)
	b.Delete(m.metaKey(q, msg.seq))
	b.DeleteOnce(m.payloadKey(q, msg.seq))
	m.release(b, q, msg, now)
}

// toDLQ moves an unplaced message into the DLQ as its newest entry, at time
// at, evicting the oldest entries if the DLQ is full. The caller writes
// msg's metadata.
func (m *Machine) toDLQ(q *queue, msg *message, at, now int64, b storage.Batch) {
	m.releasePayload(msg)
	for q.dlqLen >= m.lim.DLQMax && q.dlqHead != nil {
		old := q.dlqHead
		q.dlqRemove(old)
		m.drop(b, q, old, now)
	}
	msg.state = stateDLQ
	msg.due = 0
	q.lastDLQ++
	q.countersDirty = true
	msg.dlqPos = q.lastDLQ
	msg.dlqAt = at
	q.dlqAppend(msg)
	m.release(b, q, msg, now)
}

// release lets go of msg's dedup key when msg leaves the queue (acked,
// dead-lettered or evicted) after the key's minimum hold. Before that, the
// key's hold ends on its own (expire).
func (m *Machine) release(b storage.Batch, q *queue, msg *message, now int64) {
	if e := msg.dedup; e != nil && !e.dropped && now >= e.until {
		m.dropDedup(b, q, e)
	}
}

func (m *Machine) dropDedup(b storage.Batch, q *queue, e *dedupEntry) {
	e.dropped = true
	if q.dedups[e.key] == e {
		delete(q.dedups, e.key)
		b.Delete(m.dedupKey(q, e.key))
	}
}

// held reports whether dedup entry e still blocks its key at now.
func (m *Machine) held(q *queue, e *dedupEntry, now int64) bool {
	return !e.dropped && (now < e.until || q.msgs[e.seq].queued())
}

func validateName(name []byte) error {
	if len(name) == 0 {
		return wire.Errorf(wire.StatusBadRequest, "queue name must not be empty")
	}
	if len(name) > MaxNameBytes {
		return wire.Errorf(wire.StatusBadRequest, "queue name is %d bytes, over the %d-byte limit", len(name), MaxNameBytes)
	}
	return nil
}

// clampCount reads COUNT: absent or 0 means 1, more than MaxCount is clamped.
func clampCount(o wire.Options) int {
	v, ok := o.Uint(wire.TagCount)
	if !ok || v == 0 {
		return 1
	}
	return int(min(v, MaxCount))
}

// visibilityMs reads VISIBILITY_TIMEOUT_MS: absent or 0 is the default,
// longer than MaxVisibility is clamped.
func visibilityMs(o wire.Options) uint32 {
	v, ok := o.Uint(wire.TagVisibilityTimeoutMs)
	if !ok || v == 0 {
		return uint32(DefaultVisibility.Milliseconds())
	}
	return uint32(min(v, uint64(MaxVisibility.Milliseconds())))
}

// delayMs reads DELAY_MS (0 when absent).
func delayMs(o wire.Options) (int64, error) {
	v, ok := o.Uint(wire.TagDelayMs)
	if !ok {
		if o.Has(wire.TagDelayMs) {
			return 0, wire.Errorf(wire.StatusBadRequest, "delay_ms must be an unsigned integer of 1, 2, 4 or 8 bytes")
		}
		return 0, nil
	}
	if v > uint64(MaxDelay.Milliseconds()) {
		return 0, wire.Errorf(wire.StatusBadRequest, "delay_ms %d is over the limit of %d", v, MaxDelay.Milliseconds())
	}
	return int64(v), nil
}

func internal(err error) command.Result {
	return command.Fail(wire.Errorf(wire.StatusInternal, "queue: %v", err))
}

func seqBody(seq uint64) []byte {
	return binary.LittleEndian.AppendUint64(make([]byte, 0, 8), seq)
}

// emptyList is the reply with no messages.
func emptyList() []byte { return []byte{0, 0, 0, 0} }
