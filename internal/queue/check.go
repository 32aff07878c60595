package queue

import (
	"errors"
	"fmt"
)

// Check verifies the machine's invariants and returns every violation
// found. It is O(total messages) and meant for tests; builds with
// -tags invariants also run it on each queue an operation touched.
//
// Invariants:
//  1. Every message is in exactly one state, and in exactly the structure
//     of that state: ready heap, timers heap (delayed or leased) or DLQ
//     list. Acked and evicted messages are in none (they no longer exist).
//  2. Both heaps satisfy heap order and every member's idx is its index.
//  3. The DLQ list is doubly linked, ordered by dlqPos, and no longer than
//     Limits.DLQMax; dlqLen, delayed and leased match the structures.
//  4. Seqs, positions and DLQ positions never exceed the queue's counters,
//     so the counters never hand out a value already in use.
//  5. Every dedup map entry is live, names a seq already handed out, and
//     the FIFO of pending hold ends is ordered by time.
//  6. The schedule holds exactly the queues with time-driven work, at
//     their next due time, in heap order.
//  7. Only messages never delivered (ready or delayed) hold a payload, and
//     the held bytes add up to the machine's count, within its budget.
func (m *Machine) Check() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var errs []error
	held := 0
	for _, byName := range m.queues {
		for _, q := range byName {
			errs = append(errs, m.checkQueue(q)...)
			for _, msg := range q.msgs {
				held += len(msg.payload)
			}
		}
	}
	if held != m.payloadBytes || held > m.payloadBudget {
		errs = append(errs, fmt.Errorf("held payloads: %d bytes, counted %d, budget %d", held, m.payloadBytes, m.payloadBudget))
	}
	for i, q := range m.sched {
		if q.sidx != i {
			errs = append(errs, fmt.Errorf("queue %q: sched index %d, at %d", q.name, q.sidx, i))
		}
		if i > 0 && (dueQueueOrder{}).Less(q, m.sched[(i-1)/2]) {
			errs = append(errs, fmt.Errorf("sched: heap order broken at %d", i))
		}
	}
	return errors.Join(errs...)
}

func (m *Machine) checkQueue(q *queue) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("queue %q/%q: %s", q.ns, q.name, fmt.Sprintf(format, args...)))
	}
	seen := make(map[*message]string, len(q.msgs))
	mark := func(msg *message, where string) {
		if prev, ok := seen[msg]; ok {
			bad("message %d in both %s and %s", msg.seq, prev, where)
		}
		seen[msg] = where
		if msg.payload != nil && (msg.deliveries > 0 || (msg.state != stateReady && msg.state != stateDelayed)) {
			bad("message %d holds its payload while %s after %d deliveries", msg.seq, msg.state, msg.deliveries)
		}
		if q.msgs[msg.seq] != msg {
			bad("message %d in %s but not in the message map", msg.seq, where)
		}
	}
	checkHeap := func(h *mheap, name string) {
		for i, msg := range h.s {
			mark(msg, name)
			if msg.idx != i {
				bad("%s: message %d has idx %d at %d", name, msg.seq, msg.idx, i)
			}
			if i > 0 && h.less(msg, h.s[(i-1)/2]) {
				bad("%s: heap order broken at %d", name, i)
			}
		}
	}
	checkHeap(&q.ready, "ready")
	checkHeap(&q.timers, "timers")
	var delayed, leased int
	for _, msg := range q.ready.s {
		if msg.state != stateReady {
			bad("message %d is %s in the ready heap", msg.seq, msg.state)
		}
	}
	for _, msg := range q.timers.s {
		switch msg.state {
		case stateDelayed:
			delayed++
		case stateLeased:
			leased++
			if msg.deliveries == 0 {
				bad("leased message %d has no deliveries", msg.seq)
			}
		default:
			bad("message %d is %s in the timers heap", msg.seq, msg.state)
		}
	}
	if delayed != q.delayed || leased != q.leased {
		bad("counts delayed=%d leased=%d, structures hold %d and %d", q.delayed, q.leased, delayed, leased)
	}
	n := 0
	var prev *message
	for msg := q.dlqHead; msg != nil; msg = msg.next {
		mark(msg, "dlq")
		if msg.state != stateDLQ {
			bad("message %d is %s in the DLQ", msg.seq, msg.state)
		}
		if msg.prev != prev {
			bad("dlq: broken back link at %d", msg.seq)
		}
		if prev != nil && prev.dlqPos >= msg.dlqPos {
			bad("dlq: order broken at %d", msg.seq)
		}
		if msg.dlqPos > q.lastDLQ {
			bad("dlq: message %d has dlq position %d past the counter %d", msg.seq, msg.dlqPos, q.lastDLQ)
		}
		prev = msg
		n++
		if n > len(q.msgs) {
			bad("dlq: cycle")
			break
		}
	}
	if prev != q.dlqTail || n != q.dlqLen {
		bad("dlq: length %d, counted %d", q.dlqLen, n)
	}
	if q.dlqLen > m.lim.DLQMax {
		bad("dlq: %d entries, over the cap %d", q.dlqLen, m.lim.DLQMax)
	}
	for seq, msg := range q.msgs {
		if msg.seq != seq {
			bad("map key %d holds message %d", seq, msg.seq)
		}
		if _, ok := seen[msg]; !ok {
			bad("message %d (%s) is in no structure", seq, msg.state)
		}
		if seq > q.lastSeq || msg.pos > q.lastPos {
			bad("message %d (pos %d) is past the counters %d/%d", seq, msg.pos, q.lastSeq, q.lastPos)
		}
	}
	for key, e := range q.dedups {
		if e.key != key || e.dropped || e.seq == 0 || e.seq > q.lastSeq {
			bad("dedup entry %q is inconsistent", key)
		}
	}
	for i := q.dedupHead + 1; i < len(q.dedupFIFO); i++ {
		if q.dedupFIFO[i].until < q.dedupFIFO[i-1].until {
			bad("dedup FIFO out of order at %d", i)
		}
	}
	due := q.nextDue()
	switch {
	case due == 0 && q.sidx >= 0:
		bad("scheduled with nothing due")
	case due != 0 && (q.sidx < 0 || q.sidx >= len(m.sched) || m.sched[q.sidx] != q):
		bad("not scheduled, due %d", due)
	case due != 0 && q.due != due:
		bad("scheduled at %d, due %d", q.due, due)
	}
	return errs
}
