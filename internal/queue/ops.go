package queue

import (
	"encoding/binary"
	"errors"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// enqueue adds a message (SEMANTICS §3.2). A held dedup key answers with
// the original seq and changes nothing.
func (m *Machine) enqueue(now int64, cmd *command.Command, b storage.Batch) command.Result {
	o := cmd.Options
	if len(cmd.Value) > MaxPayloadBytes {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "payload is %d bytes, over the %d-byte limit", len(cmd.Value), MaxPayloadBytes))
	}
	var prio uint8
	if v, ok := o.Uint(wire.TagPriority); ok {
		if v > 255 {
			return command.Fail(wire.Errorf(wire.StatusBadRequest, "priority %d is out of range 0-255", v))
		}
		prio = uint8(v)
	} else if o.Has(wire.TagPriority) {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "priority must be an unsigned integer"))
	}
	delay, err := delayMs(o)
	if err != nil {
		return command.Fail(err)
	}
	dedup, hasDedup := o.Lookup(wire.TagDedupKey)
	if hasDedup && (len(dedup) == 0 || len(dedup) > MaxDedupKeyBytes) {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "dedup key must be 1-%d bytes", MaxDedupKeyBytes))
	}

	q := m.queueFor(cmd.Namespace, string(cmd.Key))
	woke := m.expire(q, now, b)
	var wake []string
	if hasDedup {
		if e := q.dedups[string(dedup)]; e != nil {
			if m.held(q, e, now) {
				m.end(q, b)
				if woke && q.ready.Len() > 0 {
					wake = []string{q.wake}
				}
				return command.Result{Body: seqBody(e.seq), Wake: wake}
			}
			m.dropDedup(b, q, e)
		}
	}
	q.lastSeq++
	q.lastPos++
	q.countersDirty = true
	msg := &message{seq: q.lastSeq, pos: q.lastPos, enqueued: now, prio: prio, idx: -1}
	q.msgs[msg.seq] = msg
	if delay > 0 {
		msg.state = stateDelayed
		msg.due = now + delay*1e6
		q.timers.push(msg)
		q.delayed++
	} else {
		m.makeReady(q, msg)
		woke = true
	}
	b.Set(m.payloadKey(q, msg.seq), cmd.Value)
	m.holdPayload(msg, cmd.Value)
	m.putMeta(b, q, msg)
	if hasDedup {
		e := &dedupEntry{key: string(dedup), seq: msg.seq, until: now + int64(m.lim.DedupHold)}
		q.dedups[e.key] = e
		q.pushDedup(e)
		msg.dedup = e
		m.putDedup(b, q, e)
	}
	m.end(q, b)
	if woke {
		wake = []string{q.wake}
	}
	return command.Result{Body: seqBody(msg.seq), Wake: wake}
}

// dequeue leases up to COUNT ready messages (SEMANTICS §3.3). Finding none
// is an Empty result, on which a blocking call parks.
//
// The value, empty in v1, may carry a seq list to ack first (our extension,
// docs/protocol.md): a consumer then acks what it finished and leases what
// comes next in one round trip and one durable write. A blocking call
// applies them on its first attempt only: its retries carry none
// (dropAcks), since acked later they could delete a message that came back
// meanwhile.
func (m *Machine) dequeue(now int64, cmd *command.Command, b storage.Batch) command.Result {
	acks, err := seqList(cmd.Value)
	if err != nil {
		return command.Fail(err)
	}
	q := m.lookup(cmd.Namespace, cmd.Key)
	if q == nil {
		return command.Result{Body: emptyList(), Empty: true}
	}
	count := clampCount(cmd.Options)
	vis := visibilityMs(cmd.Options)
	detailed := cmd.Options.Flag(wire.TagMessageDetail)
	woke := m.expire(q, now, b)
	m.ack(q, acks, now, b)
	body := make([]byte, 4, 64)
	n := 0
	var failure error
	for n < count && q.ready.Len() > 0 {
		msg := q.ready.s[0]
		payload := msg.payload
		if payload == nil {
			var err error
			if payload, err = b.Get(m.payloadKey(q, msg.seq)); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					err = errors.Join(ErrCorrupt, err)
				}
				failure = err
				break
			}
		}
		if n > 0 && len(body)+len(payload) > m.lim.MaxReplyBytes {
			break
		}
		q.ready.pop()
		msg.state = stateLeased
		msg.deliveries++
		msg.visMs = vis
		msg.due = now + int64(vis)*1e6
		q.timers.push(msg)
		q.leased++
		m.putMeta(b, q, msg)
		wm := wire.QueueMessage{Seq: msg.seq, Payload: payload}
		if detailed {
			fillDetail(&wm, msg)
		}
		body = wire.AppendQueueMessage(body, &wm, detailed)
		// Redeliveries are the exception; they read storage.
		m.releasePayload(msg)
		n++
	}
	m.end(q, b)
	if failure != nil {
		return internal(failure)
	}
	binary.LittleEndian.PutUint32(body, uint32(n))
	r := command.Result{Body: body, Empty: n == 0}
	if woke && q.ready.Len() > 0 {
		r.Wake = []string{q.wake}
	}
	return r
}

// fillDetail copies msg's metadata into the detailed record fields.
func fillDetail(wm *wire.QueueMessage, msg *message) {
	wm.Priority = msg.prio
	wm.Deliveries = msg.deliveries
	wm.EnqueuedAtMs = msg.enqueued / 1e6
	if msg.state == stateDLQ {
		wm.DLQAtMs = msg.dlqAt / 1e6
	}
	if msg.reason != "" {
		wm.Reason = []byte(msg.reason)
	}
}

// seqOp applies ack, nack, touch, DLQ requeue or DLQ delete to a seq list.
// Seqs that are unknown, or not in a state the operation acts on, are
// ignored (SEMANTICS §3.4–3.8).
func (m *Machine) seqOp(op wire.Op, now int64, cmd *command.Command, b storage.Batch) command.Result {
	o := cmd.Options
	all := op == wire.OpQueueDLQDelete && o.Flag(wire.TagDLQAll)
	var seqs []uint64
	if !all {
		var err error
		if seqs, err = seqList(cmd.Value); err != nil {
			return command.Fail(err)
		}
	}
	var nackDelay int64
	var reason string
	if op == wire.OpQueueNack {
		var err error
		if nackDelay, err = delayMs(o); err != nil {
			return command.Fail(err)
		}
		if r, ok := o.Lookup(wire.TagNackReason); ok && len(r) > 0 {
			reason = string(r)
		}
	}
	q := m.lookup(cmd.Namespace, cmd.Key)
	if q == nil {
		if op == wire.OpQueueDLQDelete {
			return command.Reply(binary.LittleEndian.AppendUint64(nil, 0))
		}
		return command.Result{}
	}
	woke := m.expire(q, now, b)
	var deleted uint64
	switch op {
	case wire.OpQueueAck:
		m.ack(q, seqs, now, b)
	case wire.OpQueueNack:
		toDLQ := o.Flag(wire.TagSendToDLQ)
		for _, s := range seqs {
			if m.nack(q, q.msgs[s], toDLQ, nackDelay, reason, now, b) {
				woke = true
			}
		}
	case wire.OpQueueTouch:
		for _, s := range seqs {
			if msg := q.msgs[s]; msg != nil && msg.state == stateLeased {
				msg.due = now + int64(msg.visMs)*1e6
				q.timers.fix(msg.idx)
				m.putMeta(b, q, msg)
			}
		}
	case wire.OpQueueDLQRequeue:
		for _, s := range seqs {
			if msg := q.msgs[s]; msg != nil && msg.state == stateDLQ {
				q.dlqRemove(msg)
				msg.deliveries = 0
				msg.reason = ""
				msg.dlqPos, msg.dlqAt = 0, 0
				q.lastPos++
				q.countersDirty = true
				msg.pos = q.lastPos // the back of its priority level
				m.makeReady(q, msg)
				m.putMeta(b, q, msg)
				woke = true
			}
		}
	case wire.OpQueueDLQDelete:
		if all {
			for q.dlqHead != nil {
				msg := q.dlqHead
				q.dlqRemove(msg)
				m.drop(b, q, msg, now)
				deleted++
			}
		}
		for _, s := range seqs {
			if msg := q.msgs[s]; msg != nil && msg.state == stateDLQ {
				q.dlqRemove(msg)
				m.drop(b, q, msg, now)
				deleted++
			}
		}
	}
	m.end(q, b)
	var r command.Result
	if op == wire.OpQueueDLQDelete {
		r.Body = binary.LittleEndian.AppendUint64(nil, deleted)
	}
	if woke && q.ready.Len() > 0 {
		r.Wake = []string{q.wake}
	}
	return r
}

// seqList decodes the seq list of an ack, nack, touch, requeue, DLQ delete
// or dequeue, within MaxSeqsPerCall.
func seqList(value []byte) ([]uint64, error) {
	seqs, err := wire.DecodeSeqList(value)
	if err != nil {
		return nil, wire.Errorf(wire.StatusBadRequest, "malformed seq list")
	}
	if len(seqs) > MaxSeqsPerCall {
		return nil, wire.Errorf(wire.StatusBadRequest, "%d seqs in one call, over the limit of %d", len(seqs), MaxSeqsPerCall)
	}
	return seqs, nil
}

// ack removes the messages of seqs for good; seqs that are unknown or
// dead-lettered are ignored.
func (m *Machine) ack(q *queue, seqs []uint64, now int64, b storage.Batch) {
	for _, s := range seqs {
		if msg := q.msgs[s]; msg != nil && msg.state != stateDLQ {
			m.unplace(q, msg)
			m.drop(b, q, msg, now)
		}
	}
}

// nack ends msg's lease (or, with toDLQ, dead-letters a leased or ready
// message). It reports whether msg became ready.
func (m *Machine) nack(q *queue, msg *message, toDLQ bool, delay int64, reason string, now int64, b storage.Batch) bool {
	if msg == nil {
		return false
	}
	if toDLQ {
		if msg.state != stateLeased && msg.state != stateReady {
			return false
		}
		m.unplace(q, msg)
		msg.reason = reason
		if reason == "" {
			msg.reason = ReasonSentToDLQ
		}
		m.toDLQ(q, msg, now, now, b)
		m.putMeta(b, q, msg)
		return false
	}
	if msg.state != stateLeased {
		return false
	}
	m.unplace(q, msg)
	msg.reason = reason
	if reason == "" {
		msg.reason = ReasonNack
	}
	ready := false
	switch {
	case msg.deliveries >= uint32(m.lim.MaxDeliveries):
		m.toDLQ(q, msg, now, now, b)
	case delay > 0:
		msg.state = stateDelayed
		msg.due = now + delay*1e6
		q.timers.push(msg)
		q.delayed++
	default:
		m.makeReady(q, msg)
		ready = true
	}
	m.putMeta(b, q, msg)
	return ready
}
