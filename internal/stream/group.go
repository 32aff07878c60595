package stream

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// groupCmd is a decoded consumer-group command.
type groupCmd struct {
	op         wire.Op
	group      []byte
	consumer   []byte
	seqs       []uint64
	ackTimeout int64 // ns; -1 = not given
	maxDeliver int64 // -1 = not given
}

func decodeGroupCmd(cmd *command.Command) (groupCmd, error) {
	gc := groupCmd{op: wire.Op(cmd.Op), ackTimeout: -1, maxDeliver: -1}
	if err := validateName("stream", cmd.Key); err != nil {
		return gc, err
	}
	var err error
	switch gc.op {
	case wire.OpStreamGroupJoin, wire.OpStreamGroupLeave, wire.OpStreamGroupRead:
		if gc.group, gc.consumer, err = wire.DecodeGroupConsumer(cmd.Value); err != nil {
			return gc, wire.Errorf(wire.StatusBadRequest, "malformed group/consumer value: %v", err)
		}
		if err := validateName("consumer", gc.consumer); err != nil {
			return gc, err
		}
	default:
		if gc.group, gc.seqs, err = wire.DecodeGroupSeqs(cmd.Value); err != nil {
			return gc, wire.Errorf(wire.StatusBadRequest, "malformed group offset list: %v", err)
		}
		if len(gc.seqs) > MaxOffsetsPerCall {
			return gc, wire.Errorf(wire.StatusBadRequest, "%d offsets in one call, over the limit of %d", len(gc.seqs), MaxOffsetsPerCall)
		}
	}
	if err := validateName("group", gc.group); err != nil {
		return gc, err
	}
	if gc.op == wire.OpStreamGroupJoin || gc.op == wire.OpStreamGroupRead {
		if ms, ok := cmd.Options.Uint(wire.TagAckTimeoutMs); ok {
			if ms > uint64(AckTimeoutMax/time.Millisecond) {
				return gc, wire.Errorf(wire.StatusBadRequest, "ack_timeout_ms %d is over the %d limit", ms, AckTimeoutMax.Milliseconds())
			}
			gc.ackTimeout = int64(ms) * int64(time.Millisecond)
			if ms == 0 {
				gc.ackTimeout = int64(AckTimeoutDefault)
			}
		}
		if n, ok := cmd.Options.Uint(wire.TagMaxDeliver); ok {
			if n > MaxDeliverMax {
				return gc, wire.Errorf(wire.StatusBadRequest, "max_deliver %d is over the %d limit", n, MaxDeliverMax)
			}
			gc.maxDeliver = int64(n)
			if n == 0 {
				gc.maxDeliver = MaxDeliverDefault
			}
		}
	}
	return gc, nil
}

// applyGroup applies every consumer-group write. Join and read create the
// stream and group if needed; the others are no-ops on an unknown group.
func (m *Machine) applyGroup(cmd *command.Command, b storage.Batch) command.Result {
	gc, err := decodeGroupCmd(cmd)
	if err != nil {
		return command.Fail(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := cmd.Time
	wake := m.expireDue(now, b)
	creates := gc.op == wire.OpStreamGroupJoin || gc.op == wire.OpStreamGroupRead
	l := m.lookup(cmd.Namespace, cmd.Key)
	var g *group
	if l != nil {
		g = l.groups[string(gc.group)]
	}
	if g == nil {
		if !creates {
			return m.groupNoop(gc, wake)
		}
		// A refusal still carries the wake-ups of expireDue above: the
		// entries it made redeliverable wait for a group read, and no
		// pulse is due for them any more.
		if l == nil {
			if l, err = m.create(cmd.Namespace, cmd.Key); err != nil {
				return command.Result{Err: err, Wake: wake}
			}
		}
		if len(l.groups) >= m.lim.MaxGroupsPerStream {
			return command.Result{Err: wire.Errorf(wire.StatusOverloaded, "too many groups on stream (limit %d)", m.lim.MaxGroupsPerStream), Wake: wake}
		}
		g = newGroup(l, string(gc.group))
		l.addGroup(g)
		m.saveGroup(g, b)
	}
	if (gc.ackTimeout >= 0 && gc.ackTimeout != g.ackTimeout) || (gc.maxDeliver >= 0 && uint32(gc.maxDeliver) != g.maxDeliver) {
		if gc.ackTimeout >= 0 {
			g.ackTimeout = gc.ackTimeout
		}
		if gc.maxDeliver >= 0 {
			g.maxDeliver = uint32(gc.maxDeliver)
		}
		m.saveGroup(g, b)
	}
	var r command.Result
	switch gc.op {
	case wire.OpStreamGroupJoin:
		r = command.Result{}
	case wire.OpStreamGroupRead:
		r = m.groupRead(g, string(gc.consumer), clampCount(cmd.Options, GroupReadCountDefault, GroupReadCountMax), now, b)
	case wire.OpStreamGroupLeave:
		r = m.leave(g, string(gc.consumer), now, b)
	case wire.OpStreamGroupAck:
		r = m.ack(g, gc.seqs, b)
	case wire.OpStreamGroupNack:
		r = m.nack(g, gc.seqs, now, b)
	case wire.OpStreamGroupTouch:
		r = m.touch(g, gc.seqs, now, b)
	case wire.OpStreamGroupDLQRequeue:
		r = m.requeue(g, gc.seqs, b)
	}
	if len(wake) > 0 {
		r.Wake = append(r.Wake, wake...)
	}
	return r
}

// groupNoop answers a write on a group that does not exist.
func (m *Machine) groupNoop(gc groupCmd, wake []string) command.Result {
	r := command.Result{Wake: wake}
	if gc.op != wire.OpStreamGroupLeave {
		r.Body = countReply(0)
	}
	return r
}

func countReply(n int) []byte { return binary.LittleEndian.AppendUint64(make([]byte, 0, 8), uint64(n)) }

func (m *Machine) saveGroup(g *group, b storage.Batch) {
	k := append(append(m.kbuf[:0], g.gprefix...), groupMeta)
	m.kbuf = k
	b.Set(k, encodeGroup(g.cursor, uint32(g.ackTimeout/int64(time.Millisecond)), g.maxDeliver))
}

func (m *Machine) pelKey(g *group, off uint64) []byte {
	k := append(append(m.kbuf[:0], g.gprefix...), groupPending)
	m.kbuf = binary.BigEndian.AppendUint64(k, off)
	return m.kbuf
}

func (m *Machine) saveEntry(e *entry, deadline int64, b storage.Batch) {
	m.vbuf = encodeEntry(m.vbuf[:0], e.deliveries, deadline, e.consumer)
	b.Set(m.pelKey(e.g, e.offset), m.vbuf)
}

// groupRead delivers up to count records to consumer: redeliverable entries
// (lowest offset first), then new records after the cursor while the PEL has
// room. Each gets the deadline now + the group's ack timeout.
func (m *Machine) groupRead(g *group, consumer string, count int, now int64, b storage.Batch) command.Result {
	l := g.log
	deadline := now + g.ackTimeout
	body := make([]byte, 4, 4+count*64)
	n := 0
	for n < count && len(g.ready) > 0 && len(body) < m.lim.MaxReplyBytes {
		e := heap.Pop(&g.ready).(*entry)
		v, err := b.Get(recordKey(l.prefix, e.offset))
		if errors.Is(err, storage.ErrNotFound) {
			// Trimmed while pending: nothing left to deliver.
			delete(g.pel, e.offset)
			b.Delete(m.pelKey(g, e.offset))
			continue
		}
		if err != nil {
			return internal(err)
		}
		h, ok := decodeRecordHeader(v)
		if !ok {
			return internal(errCorrupt)
		}
		e.deliveries++
		e.consumer = consumer
		e.deadline = deadline
		heap.Push(&m.deadlines, e)
		m.saveEntry(e, deadline, b)
		body = appendWireRecord(body, e.offset, &h, v, wire.StreamTierPending)
		n++
	}
	start := max(g.cursor+1, l.first)
	want := min(count-n, m.lim.MaxPendingPerGroup-len(g.pel))
	if want > 0 && start <= l.last && len(body) < m.lim.MaxReplyBytes {
		var offs []uint64
		var bad bool
		err := b.Iterate(recordKey(l.prefix, start), recordKey(l.prefix, l.last+1), false, func(k, v []byte) bool {
			h, ok := decodeRecordHeader(v)
			if !ok {
				bad = true
				return false
			}
			off := recordOffset(k)
			body = appendWireRecord(body, off, &h, v, wire.StreamTierHot)
			offs = append(offs, off)
			return len(offs) < want && len(body) < m.lim.MaxReplyBytes
		})
		if err == nil && bad {
			err = errCorrupt
		}
		if err != nil {
			return internal(err)
		}
		for _, off := range offs {
			e := &entry{g: g, offset: off, consumer: consumer, deliveries: 1, deadline: deadline, dIdx: -1, rIdx: -1}
			g.pel[off] = e
			heap.Push(&m.deadlines, e)
			m.saveEntry(e, deadline, b)
		}
		if len(offs) > 0 {
			g.cursor = offs[len(offs)-1]
			m.saveGroup(g, b)
			n += len(offs)
		}
	}
	binary.LittleEndian.PutUint32(body, uint32(n))
	return command.Result{Body: body, Empty: n == 0}
}

// release makes a delivered entry redeliverable now, or dead-letters it if
// it has used up its deliveries. Either way the group's readers may now
// get something — the entry, or a new record in the PEL room it freed — so
// callers wake them.
func (m *Machine) release(e *entry, now int64, b storage.Batch) {
	if e.dIdx >= 0 {
		heap.Remove(&m.deadlines, e.dIdx)
	}
	if e.deliveries >= e.g.maxDeliver {
		m.deadLetter(e, now, b)
		return
	}
	heap.Push(&e.g.ready, e)
	m.saveEntry(e, 0, b)
}

// leave releases every entry delivered to consumer, in offset order.
func (m *Machine) leave(g *group, consumer string, now int64, b storage.Batch) command.Result {
	var es []*entry
	for _, e := range g.pel {
		if e.dIdx >= 0 && e.consumer == consumer {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b *entry) int { return cmpOffset(a.offset, b.offset) })
	for _, e := range es {
		m.release(e, now, b)
	}
	if len(es) > 0 {
		return command.Result{Wake: []string{g.wakeKey}}
	}
	return command.Result{}
}

func cmpOffset(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ack removes entries from the PEL whoever holds them.
func (m *Machine) ack(g *group, seqs []uint64, b storage.Batch) command.Result {
	full := len(g.pel) >= m.lim.MaxPendingPerGroup
	n := 0
	for _, off := range seqs {
		e := g.pel[off]
		if e == nil {
			continue
		}
		if e.dIdx >= 0 {
			heap.Remove(&m.deadlines, e.dIdx)
		}
		if e.rIdx >= 0 {
			heap.Remove(&g.ready, e.rIdx)
		}
		delete(g.pel, off)
		b.Delete(m.pelKey(g, off))
		n++
	}
	r := command.Reply(countReply(n))
	if full && n > 0 {
		r.Wake = []string{g.wakeKey}
	}
	return r
}

// nack releases delivered entries at once (an extension; see docs/protocol.md).
func (m *Machine) nack(g *group, seqs []uint64, now int64, b storage.Batch) command.Result {
	n := 0
	for _, off := range seqs {
		if e := g.pel[off]; e != nil && e.dIdx >= 0 {
			m.release(e, now, b)
			n++
		}
	}
	r := command.Reply(countReply(n))
	if n > 0 {
		r.Wake = []string{g.wakeKey}
	}
	return r
}

// touch resets the deadline of delivered entries to now + the ack timeout.
func (m *Machine) touch(g *group, seqs []uint64, now int64, b storage.Batch) command.Result {
	n := 0
	deadline := now + g.ackTimeout
	for _, off := range seqs {
		if e := g.pel[off]; e != nil && e.dIdx >= 0 {
			e.deadline = deadline
			heap.Fix(&m.deadlines, e.dIdx)
			m.saveEntry(e, deadline, b)
			n++
		}
	}
	return command.Reply(countReply(n))
}

// requeue moves dead letters back into the PEL, ready, with delivery count 0.
func (m *Machine) requeue(g *group, seqs []uint64, b storage.Batch) command.Result {
	l := g.log
	n := 0
	for _, off := range seqs {
		if _, ok := g.dead[off]; !ok {
			continue
		}
		delete(g.dead, off)
		b.Delete(m.deadKey(g, off))
		if off < l.first || off > l.last || g.pel[off] != nil {
			continue // trimmed
		}
		e := &entry{g: g, offset: off, dIdx: -1, rIdx: -1}
		g.pel[off] = e
		heap.Push(&g.ready, e)
		m.saveEntry(e, 0, b)
		n++
	}
	r := command.Reply(countReply(n))
	if n > 0 {
		r.Wake = []string{g.wakeKey}
	}
	return r
}

func (m *Machine) deadKey(g *group, off uint64) []byte {
	m.kbuf = appendOffsetKey(m.kbuf[:0], g.dprefix, off)
	return m.kbuf
}

// deadLetter moves an entry (already out of both heaps) from the PEL to the
// group's dead-letter list, evicting the lowest offsets past the limit.
func (m *Machine) deadLetter(e *entry, now int64, b storage.Batch) {
	g := e.g
	delete(g.pel, e.offset)
	b.Delete(m.pelKey(g, e.offset))
	if e.offset < g.log.first {
		return // trimmed: nothing to keep
	}
	g.dead[e.offset] = struct{}{}
	heap.Push(&g.deadOrder, e.offset)
	m.vbuf = encodeEntry(m.vbuf[:0], e.deliveries, now/int64(time.Millisecond), e.consumer)
	b.Set(m.deadKey(g, e.offset), m.vbuf)
	for len(g.dead) > m.lim.MaxDeadLetters {
		off := heap.Pop(&g.deadOrder).(uint64)
		if _, ok := g.dead[off]; ok {
			delete(g.dead, off)
			b.Delete(m.deadKey(g, off))
		}
	}
	if len(g.deadOrder) > 2*len(g.dead)+64 {
		// Drop offsets requeued since they were pushed.
		g.deadOrder = g.deadOrder[:0]
		for off := range g.dead {
			g.deadOrder = append(g.deadOrder, off)
		}
		heap.Init(&g.deadOrder)
	}
}

// expireDue processes every entry whose deadline is ≤ now: dead-lettered if
// it has used its deliveries, else made ready. It returns the wait keys of
// the groups that gained ready entries or PEL room. Callers hold mu.
func (m *Machine) expireDue(now int64, b storage.Batch) []string {
	var wake []string
	for len(m.deadlines) > 0 && m.deadlines[0].deadline <= now {
		e := heap.Pop(&m.deadlines).(*entry)
		g := e.g
		if e.deliveries >= g.maxDeliver {
			m.deadLetter(e, now, b)
		} else {
			heap.Push(&g.ready, e)
			// Persist the transition, so a reload sees exactly this state
			// even if the group's settings change before the entry is
			// redelivered.
			m.saveEntry(e, 0, b)
		}
		if !slices.Contains(wake, g.wakeKey) {
			wake = append(wake, g.wakeKey)
		}
	}
	return wake
}
