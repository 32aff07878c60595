package queue

import (
	"cmp"
	"container/heap"
	"slices"

	"github.com/floruntime/flo/internal/indexheap"
)

// state is where a message is. Every message that exists is in exactly one
// state, and in exactly the structure of that state (see Check).
type state uint8

const (
	stateDelayed state = iota + 1 // in queue.timers until its delay ends
	stateReady                    // in queue.ready
	stateLeased                   // in queue.timers until its lease deadline
	stateDLQ                      // in the queue's DLQ list
)

func (s state) String() string {
	switch s {
	case stateDelayed:
		return "delayed"
	case stateReady:
		return "ready"
	case stateLeased:
		return "leased"
	case stateDLQ:
		return "dlq"
	}
	return "invalid"
}

// message is the in-memory metadata of one message. The payload lives only
// in storage.
type message struct {
	seq        uint64
	pos        uint64 // position within its priority: FIFO order of the ready heap
	enqueued   int64  // Unix nanos
	due        int64  // Unix nanos: delay end (delayed) or lease deadline (leased)
	deliveries uint32
	visMs      uint32 // visibility timeout of the latest lease, reused by touch
	prio       uint8
	state      state
	idx        int    // index in queue.ready or queue.timers
	reason     string // last failure reason, shown by the DLQ
	dedup      *dedupEntry
	// payload is a copy of the stored payload while the message waits for
	// its first delivery, within the machine's payload budget; nil when not
	// held (a dequeue then reads storage). Never nil for an empty payload
	// that is held.
	payload []byte

	// DLQ membership (state == stateDLQ).
	dlqPos     uint64 // DLQ order: oldest entry has the smallest
	dlqAt      int64  // Unix nanos the message entered the DLQ
	prev, next *message
}

// queued reports whether the message still counts as "in the queue" for
// deduplication: delayed, ready or leased.
func (m *message) queued() bool {
	return m != nil && m.state != stateDLQ
}

// dedupEntry holds a dedup key for at least the hold time after the enqueue
// that set it, and after that for as long as its message is queued.
type dedupEntry struct {
	key     string
	seq     uint64
	until   int64 // Unix nanos the minimum hold ends
	dropped bool  // released; no longer in queue.dedups
}

// queue is one (namespace, name) queue.
type queue struct {
	ns, name string
	wake     string // the key blocking dequeues park under
	meta     []byte // storage prefix of metadata keys: 'q' ns 0x00 [len:u16] name
	data     []byte // storage prefix of payload keys:  'Q' ns 0x00 [len:u16] name

	// Counters, persisted in the queue's counter record. Each holds the last
	// value handed out; the next is one more.
	lastSeq, lastPos, lastDLQ uint64
	countersDirty             bool

	msgs    map[uint64]*message
	ready   mheap // ready messages, by priority (high first), then position
	timers  mheap // delayed and leased messages, by due time, then seq
	delayed int   // messages in timers that are delayed
	leased  int   // messages in timers that are leased

	dlqHead, dlqTail *message // oldest and newest DLQ entry
	dlqLen           int

	dedups    map[string]*dedupEntry
	dedupFIFO []*dedupEntry // by until; entries before dedupHead are consumed
	dedupHead int

	due  int64 // cached nextDue, the key in Machine.sched
	sidx int   // index in Machine.sched, -1 when not scheduled
}

func newQueue(ns, name string) *queue {
	q := &queue{
		ns:     ns,
		name:   name,
		wake:   WaitKey(ns, []byte(name)),
		meta:   prefix('q', ns, name),
		data:   prefix('Q', ns, name),
		msgs:   make(map[uint64]*message),
		timers: mheap{byDue: true},
		dedups: make(map[string]*dedupEntry),
		sidx:   -1,
	}
	return q
}

// nextDue returns the earliest time-driven change of q (Unix nanos), or 0.
func (q *queue) nextDue() int64 {
	var due int64
	if len(q.timers.s) > 0 {
		due = q.timers.s[0].due
	}
	if q.dedupHead < len(q.dedupFIFO) {
		if u := q.dedupFIFO[q.dedupHead].until; due == 0 || u < due {
			due = u
		}
	}
	return due
}

// pushDedup adds e to the FIFO of hold ends. Command time never runs
// backwards within a run, so e almost always goes at the end; after a
// restart on a clock that went back it is inserted in order.
func (q *queue) pushDedup(e *dedupEntry) {
	n := len(q.dedupFIFO)
	if n == q.dedupHead || q.dedupFIFO[n-1].until <= e.until {
		q.dedupFIFO = append(q.dedupFIFO, e)
		return
	}
	live := q.dedupFIFO[q.dedupHead:]
	i, _ := slices.BinarySearchFunc(live, e.until, func(x *dedupEntry, until int64) int {
		if x.until <= until {
			return -1
		}
		return 1
	})
	q.dedupFIFO = slices.Insert(q.dedupFIFO, q.dedupHead+i, e)
}

// dlqAppend adds m as the newest DLQ entry.
func (q *queue) dlqAppend(m *message) {
	m.prev, m.next = q.dlqTail, nil
	if q.dlqTail != nil {
		q.dlqTail.next = m
	} else {
		q.dlqHead = m
	}
	q.dlqTail = m
	q.dlqLen++
}

// dlqRemove unlinks m from the DLQ list.
func (q *queue) dlqRemove(m *message) {
	if m.prev != nil {
		m.prev.next = m.next
	} else {
		q.dlqHead = m.next
	}
	if m.next != nil {
		m.next.prev = m.prev
	} else {
		q.dlqTail = m.prev
	}
	m.prev, m.next = nil, nil
	q.dlqLen--
}

// mheap is an indexed binary min-heap of messages: each message records its
// index, so removal and re-keying are O(log n). byDue selects the order:
// (due, seq) for timers, (priority descending, position) for ready.
type mheap struct {
	s     []*message
	byDue bool
}

func (h *mheap) less(a, b *message) bool {
	if h.byDue {
		if a.due != b.due {
			return a.due < b.due
		}
		return a.seq < b.seq
	}
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	return a.pos < b.pos
}

// heap.Interface, through which push, remove, fix and init keep idx.
func (h *mheap) Len() int           { return len(h.s) }
func (h *mheap) Less(i, j int) bool { return h.less(h.s[i], h.s[j]) }
func (h *mheap) Swap(i, j int) {
	h.s[i], h.s[j] = h.s[j], h.s[i]
	h.s[i].idx = i
	h.s[j].idx = j
}
func (h *mheap) Push(x any) {
	m := x.(*message)
	m.idx = len(h.s)
	h.s = append(h.s, m)
}
func (h *mheap) Pop() any {
	n := len(h.s) - 1
	m := h.s[n]
	h.s[n] = nil
	h.s = h.s[:n]
	return m
}

func (h *mheap) push(m *message) { heap.Push(h, m) }

func (h *mheap) pop() *message { return h.remove(0) }

// remove takes the message at index i out of the heap.
func (h *mheap) remove(i int) *message {
	m := heap.Remove(h, i).(*message)
	m.idx = -1
	if len(h.s) == 0 && cap(h.s) > 1024 {
		h.s = nil // give back the memory of a drained backlog
	}
	return m
}

// fix restores the order after the key of the message at index i changed.
func (h *mheap) fix(i int) { heap.Fix(h, i) }

// init establishes heap order over s in O(n) (used by Load).
func (h *mheap) init() {
	for i, m := range h.s {
		m.idx = i
	}
	heap.Init(h)
}

// top returns up to k messages in heap order without changing the heap, in
// O(k log k): a frontier of candidate indices, itself a small heap, grows
// from the root as each best candidate is taken.
func (h *mheap) top(k int) []*message {
	n := min(k, len(h.s))
	if n <= 0 {
		return nil
	}
	out := make([]*message, 0, n)
	f := make([]int, 1, n+1)
	less := func(a, b int) bool { return h.less(h.s[f[a]], h.s[f[b]]) }
	for len(out) < n {
		at := f[0]
		out = append(out, h.s[at])
		last := len(f) - 1
		f[0] = f[last]
		f = f[:last]
		for i := 0; ; {
			j := 2*i + 1
			if j >= len(f) {
				break
			}
			if r := j + 1; r < len(f) && less(r, j) {
				j = r
			}
			if !less(j, i) {
				break
			}
			f[i], f[j] = f[j], f[i]
			i = j
		}
		for c := 2*at + 1; c <= 2*at+2 && c < len(h.s); c++ {
			f = append(f, c)
			for j := len(f) - 1; j > 0; {
				i := (j - 1) / 2
				if !less(j, i) {
					break
				}
				f[i], f[j] = f[j], f[i]
				j = i
			}
		}
	}
	return out
}

// dueBy returns the members whose due time is ≤ now, in (due, seq) order,
// without changing the heap. Only meaningful for a timers heap.
func (h *mheap) dueBy(now int64) []*message {
	var out []*message
	var walk func(i int)
	walk = func(i int) {
		if i >= len(h.s) || h.s[i].due > now {
			return
		}
		out = append(out, h.s[i])
		walk(2*i + 1)
		walk(2*i + 2)
	}
	walk(0)
	slices.SortFunc(out, func(a, b *message) int {
		if a.due != b.due {
			return cmp.Compare(a.due, b.due)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	return out
}

// qheap orders queues by their next due time (then by name, so the order is
// total) for Machine.sched; each queue records its index (sidx).
type qheap = indexheap.Heap[*queue, dueQueueOrder]

type dueQueueOrder struct{}

func (dueQueueOrder) Less(a, b *queue) bool {
	if a.due != b.due {
		return a.due < b.due
	}
	if a.ns != b.ns {
		return a.ns < b.ns
	}
	return a.name < b.name
}
func (dueQueueOrder) Index(q *queue) *int { return &q.sidx }
