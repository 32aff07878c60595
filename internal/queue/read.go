package queue

import (
	"errors"
	"slices"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// Reads never change state, yet must not show a lease that has expired or a
// delay that has ended just because no pulse has applied it yet (SEMANTICS
// §1.4). A view is what expire would do to a queue at a given time,
// computed without doing it.
type view struct {
	ready        []*message // due messages that would become ready
	fromLease    []bool     // per ready entry: it came from an expired lease
	dlq          []*message // due leases that would be dead-lettered, in order
	delayedEnded int
	leasesEnded  int
}

func (m *Machine) viewAt(q *queue, now int64) view {
	var v view
	for _, msg := range q.timers.dueBy(now) {
		switch {
		case msg.state == stateDelayed:
			v.delayedEnded++
			v.ready = append(v.ready, msg)
			v.fromLease = append(v.fromLease, false)
		case msg.deliveries >= uint32(m.lim.MaxDeliveries):
			v.leasesEnded++
			v.dlq = append(v.dlq, msg)
		default:
			v.leasesEnded++
			v.ready = append(v.ready, msg)
			v.fromLease = append(v.fromLease, true)
		}
	}
	return v
}

// peek lists up to COUNT ready messages in dequeue order without leasing
// them (SEMANTICS §3.7).
func (m *Machine) peek(cmd *command.Command) command.Result {
	if err := validateName(cmd.Key); err != nil {
		return command.Fail(err)
	}
	count := clampCount(cmd.Options)
	detailed := cmd.Options.Flag(wire.TagMessageDetail)
	m.mu.RLock()
	q := m.lookup(cmd.Namespace, cmd.Key)
	if q == nil {
		m.mu.RUnlock()
		return command.Reply(emptyList())
	}
	v := m.viewAt(q, max(cmd.Time, m.now))
	cand := q.ready.top(count)
	lease := make(map[*message]bool, len(v.ready))
	for i, msg := range v.ready {
		cand = append(cand, msg)
		lease[msg] = v.fromLease[i]
	}
	if len(v.ready) > 0 {
		slices.SortFunc(cand, func(a, b *message) int {
			if q.ready.less(a, b) {
				return -1
			}
			return 1
		})
	}
	cand = cand[:min(count, len(cand))]
	recs := make([]wire.QueueMessage, len(cand))
	for i, msg := range cand {
		recs[i].Seq = msg.seq
		if detailed {
			fillDetail(&recs[i], msg)
			if lease[msg] {
				recs[i].Reason = []byte(ReasonLeaseExpired)
			}
		}
	}
	m.mu.RUnlock()
	return m.withPayloads(q, recs, detailed)
}

// dlqList lists DLQ entries oldest first (SEMANTICS §3.8): LIMIT absent or
// 0 means DLQListDefault, and is clamped to DLQListMax.
func (m *Machine) dlqList(cmd *command.Command) command.Result {
	if err := validateName(cmd.Key); err != nil {
		return command.Fail(err)
	}
	limit := DLQListDefault
	if l, ok := cmd.Options.Uint(wire.TagLimit); ok && l > 0 {
		limit = int(min(l, DLQListMax))
	}
	detailed := cmd.Options.Flag(wire.TagMessageDetail)
	m.mu.RLock()
	q := m.lookup(cmd.Namespace, cmd.Key)
	if q == nil {
		m.mu.RUnlock()
		return command.Reply(emptyList())
	}
	v := m.viewAt(q, max(cmd.Time, m.now))
	// Entries the view adds evict the oldest ones past the cap.
	skip := max(0, q.dlqLen+len(v.dlq)-m.lim.DLQMax)
	var recs []wire.QueueMessage
	add := func(msg *message, virtual bool) {
		if skip > 0 {
			skip--
			return
		}
		r := wire.QueueMessage{Seq: msg.seq}
		if detailed {
			fillDetail(&r, msg)
			if virtual {
				r.DLQAtMs = msg.due / 1e6
				r.Reason = []byte(ReasonLeaseExpired)
			}
		}
		recs = append(recs, r)
	}
	for msg := q.dlqHead; msg != nil && len(recs) < limit; msg = msg.next {
		add(msg, false)
	}
	for _, msg := range v.dlq {
		if len(recs) >= limit {
			break
		}
		add(msg, true)
	}
	m.mu.RUnlock()
	return m.withPayloads(q, recs, detailed)
}

// withPayloads reads each record's payload from committed storage, outside
// the machine lock, and encodes the message list. A message whose payload
// is absent was removed after it was chosen, or is not committed yet; it is
// left out.
func (m *Machine) withPayloads(q *queue, recs []wire.QueueMessage, detailed bool) command.Result {
	body := make([]byte, 4, 64)
	n := 0
	for i := range recs {
		p, err := m.db.Get(payloadKey(q, recs[i].Seq))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return internal(err)
		}
		if n > 0 && len(body)+len(p) > m.lim.MaxReplyBytes {
			break
		}
		recs[i].Payload = p
		body = wire.AppendQueueMessage(body, &recs[i], detailed)
		n++
	}
	body[0], body[1], body[2], body[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return command.Reply(body)
}

// stats reports the queue's depth by state (extension QUEUE_STATS).
func (m *Machine) stats(cmd *command.Command) command.Result {
	if err := validateName(cmd.Key); err != nil {
		return command.Fail(err)
	}
	var s wire.QueueStats
	m.mu.RLock()
	if q := m.lookup(cmd.Namespace, cmd.Key); q != nil {
		v := m.viewAt(q, max(cmd.Time, m.now))
		s.Ready = uint64(q.ready.Len() + len(v.ready))
		s.Delayed = uint64(q.delayed - v.delayedEnded)
		s.InFlight = uint64(q.leased - v.leasesEnded)
		s.DLQ = uint64(min(m.lim.DLQMax, q.dlqLen+len(v.dlq)))
	}
	m.mu.RUnlock()
	return command.Reply(wire.AppendQueueStats(nil, &s))
}
