package stream

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// emptyList is the record list with no records.
var emptyList = []byte{0, 0, 0, 0}

// snapshot is a copy of a stream's counters taken under the read lock.
type snapshot struct {
	l           *log
	first, last uint64
	maxTs       int64
	avgBytes    int // average key+payload size, to size replies
}

func (m *Machine) snapshot(ns string, name []byte) (snapshot, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	l := m.lookupRead(ns, name)
	if l == nil {
		return snapshot{}, false
	}
	// last is what is committed: a TAIL read positioned on an offset not
	// in storage yet would find nothing.
	s := snapshot{l: l, first: l.first, last: l.visible, maxTs: l.maxTs}
	if n := l.count(); n > 0 {
		s.avgBytes = int(l.bytes / n)
	}
	return s, true
}

func clampCount(o wire.Options, def, hi uint64) int {
	n, ok := o.Uint(wire.TagCount)
	if !ok || n == 0 {
		return int(def)
	}
	return int(min(n, hi))
}

// read serves STREAM_READ. Positioning (docs/protocol.md): STREAM_TAIL wins;
// else STREAM_START with sequence ≠ 0 is an offset (inclusive), with only a
// timestamp it is the first record whose timestamp ≥ it; else the beginning.
// A blocking TAIL read pins its start on the first attempt by rewriting
// cmd.Options into an offset read, since the node re-runs the same cmd.
func (m *Machine) read(cmd *command.Command) command.Result {
	if err := validateName("stream", cmd.Key); err != nil {
		return command.Fail(err)
	}
	o := cmd.Options
	count := clampCount(o, ReadCountDefault, ReadCountMax)
	s, ok := m.snapshot(cmd.Namespace, cmd.Key)
	if !ok {
		s = snapshot{first: 1, last: 0}
	}
	start := s.first
	var tsFloor int64 = math.MinInt64
	switch {
	case o.Has(wire.TagStreamTail):
		// Blocking exactly when the server parks the call: a BLOCK_MS of
		// a width it cannot read does not block.
		if _, blocking := o.Uint(wire.TagBlockMs); blocking {
			start = s.last + 1
			cmd.Options = pinStart(o, start)
		} else if s.last+1 > uint64(count) {
			start = max(s.first, s.last+1-uint64(count))
		}
	case o.Has(wire.TagStreamStart):
		id, err := streamID(o, wire.TagStreamStart)
		if err != nil {
			return command.Fail(err)
		}
		switch {
		case id.Sequence != 0:
			start = max(s.first, id.Sequence)
		case id.TimestampMs != 0:
			ts := int64(min(id.TimestampMs, math.MaxInt64))
			if s.l != nil {
				if start, err = searchTime(m.db, s.l, s.first, s.last, s.maxTs, ts); err != nil {
					return internal(err)
				}
			}
			tsFloor = ts
		}
	}
	end := uint64(math.MaxUint64)
	if o.Has(wire.TagStreamEnd) {
		id, err := streamID(o, wire.TagStreamEnd)
		if err != nil {
			return command.Fail(err)
		}
		switch {
		case id.Sequence != 0:
			end = id.Sequence
		case id.TimestampMs != 0 && s.l != nil && id.TimestampMs < math.MaxInt64:
			ts := int64(id.TimestampMs)
			p, err := searchTime(m.db, s.l, s.first, s.last, s.maxTs, ts+1)
			if err != nil {
				return internal(err)
			}
			// p is the first record whose running maximum timestamp passes
			// ts; after a trim that maximum may come from a dropped record,
			// so records from p on whose own timestamps are ≤ ts still
			// belong (at most count of them can be answered).
			for n := 0; p <= s.last && n < count; n++ {
				h, _, ok, err := peekHeader(m.db, s.l.prefix, p)
				if err != nil {
					return internal(err)
				}
				if !ok || h.tsMs > ts {
					break
				}
				p++
			}
			end = p - 1
		}
	}
	if s.l == nil || start > end {
		return command.Result{Body: emptyList, Empty: true}
	}
	if tsFloor == math.MinInt64 {
		m.mu.RLock()
		body, n, ok := readTail(s.l, start, end, count, m.lim.MaxReplyBytes)
		m.mu.RUnlock()
		if ok {
			return command.Result{Body: body, Empty: n == 0}
		}
	}
	// Size the reply for the records the snapshot says exist, at their
	// average size (bounded, so huge records do not reserve memory up front).
	hint := count
	if start <= s.last && s.last-start+1 < uint64(count) {
		hint = int(s.last - start + 1)
	}
	hint = min(hint*(wire.StreamRecordOverhead+s.avgBytes+8), 8<<20)
	body, n, err := readRecords(m.db, s.l.prefix, start, end, count, m.lim.MaxReplyBytes, tsFloor, hint)
	if err != nil {
		return internal(err)
	}
	return command.Result{Body: body, Empty: n == 0}
}

// readRecords encodes up to count records with offsets in [start, end] as a
// record list, stopping once it passes maxBytes. Records before the first
// one whose timestamp ≥ tsFloor are skipped (only a trimmed stream with
// out-of-order client timestamps has any).
func readRecords(r storage.Reader, prefix []byte, start, end uint64, count, maxBytes int, tsFloor int64, sizeHint int) ([]byte, int, error) {
	upper := recordsEnd(prefix)
	if end < math.MaxUint64 {
		upper = recordKey(prefix, end+1)
	}
	body := make([]byte, 4, 4+sizeHint)
	n := 0
	var bad bool
	err := r.Iterate(recordKey(prefix, start), upper, false, func(k, v []byte) bool {
		h, ok := decodeRecordHeader(v)
		if !ok {
			bad = true
			return false
		}
		if h.tsMs < tsFloor {
			return true
		}
		tsFloor = math.MinInt64
		body = appendWireRecord(body, recordOffset(k), &h, v, wire.StreamTierHot)
		n++
		return n < count && len(body) < maxBytes
	})
	if err == nil && bad {
		err = errCorrupt
	}
	if err != nil {
		return nil, 0, err
	}
	binary.LittleEndian.PutUint32(body, uint32(n))
	return body, n, nil
}

// appendWireRecord encodes a stored record in the v1 record-list layout.
func appendWireRecord(dst []byte, off uint64, h *recordHeader, v []byte, tier uint8) []byte {
	key := v[recordHeaderSize : recordHeaderSize+h.keyLen]
	rec := wire.StreamRecord{
		Offset:      off,
		TimestampMs: h.tsMs,
		Tier:        tier,
		HasKey:      h.flags&flagKey != 0,
		Key:         key,
		Payload:     v[recordHeaderSize+h.keyLen:],
	}
	return wire.AppendStreamRecord(dst, &rec)
}

func streamID(o wire.Options, t wire.Tag) (wire.StreamID, error) {
	raw, _ := o.Lookup(t)
	id, ok := wire.DecodeStreamID(raw)
	if !ok {
		return wire.StreamID{}, wire.Errorf(wire.StatusBadRequest, "stream position must be a 16-byte StreamID, got %d bytes", len(raw))
	}
	return id, nil
}

// pinStart returns o with STREAM_TAIL and STREAM_START removed and
// STREAM_START = (0, start) in front.
func pinStart(o wire.Options, start uint64) wire.Options {
	out := make(wire.Options, 0, len(o)+2+wire.StreamIDSize)
	out = append(out, byte(wire.TagStreamStart), wire.StreamIDSize)
	out = wire.AppendStreamID(out, wire.StreamID{Sequence: start})
	for i := 0; i+2 <= len(o); {
		t, n := wire.Tag(o[i]), int(o[i+1])
		if i+2+n > len(o) {
			break
		}
		if t != wire.TagStreamTail && t != wire.TagStreamStart {
			out = append(out, o[i:i+2+n]...)
		}
		i += 2 + n
	}
	return out
}

// info serves STREAM_INFO: 32 bytes, zeros for an unknown stream.
func (m *Machine) info(cmd *command.Command) command.Result {
	if err := validateName("stream", cmd.Key); err != nil {
		return command.Fail(err)
	}
	var i wire.StreamInfo
	m.mu.RLock()
	if l := m.lookupRead(cmd.Namespace, cmd.Key); l != nil {
		// What is committed, as for reads: appends still being applied
		// are not counted (cum - bytes is the cum before first).
		i.LastOffset = l.visible
		if l.visible >= l.first {
			i = wire.StreamInfo{FirstOffset: l.first, LastOffset: l.visible, Count: l.visible - l.first + 1, Bytes: l.visibleCum - (l.cum - l.bytes)}
		}
	}
	m.mu.RUnlock()
	return command.Reply(wire.AppendStreamInfo(make([]byte, 0, 32), i))
}

// deadList serves the group DLQ list: entries in offset order, skipping any
// whose record has been trimmed.
func (m *Machine) deadList(cmd *command.Command) command.Result {
	if err := validateName("stream", cmd.Key); err != nil {
		return command.Fail(err)
	}
	g, err := wire.DecodeGroupName(cmd.Value)
	if err != nil {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "malformed group value: %v", err))
	}
	if err := validateName("group", g); err != nil {
		return command.Fail(err)
	}
	limit := DeadListDefault
	if n, ok := cmd.Options.Uint(wire.TagLimit); ok && n > 0 {
		limit = int(min(n, DeadListMax))
	}
	prefix := streamPrefix(cmd.Namespace, cmd.Key)
	dp := deadPrefix(prefix, string(g))
	var out []wire.StreamDeadRecord
	var bad bool
	err = m.db.Iterate(dp, storage.PrefixEnd(dp), false, func(k, v []byte) bool {
		if len(k) != len(dp)+8 {
			return true
		}
		n, deadMs, consumer, ok := decodeEntry(v)
		if !ok {
			bad = true
			return false
		}
		out = append(out, wire.StreamDeadRecord{Offset: recordOffset(k), Deliveries: n, DeadAtMs: deadMs, Consumer: []byte(consumer)})
		return true
	})
	if err == nil && bad {
		err = errCorrupt
	}
	if err != nil {
		return internal(err)
	}
	body := make([]byte, 4, 256)
	n := 0
	for i := range out {
		if n == limit || len(body) >= m.lim.MaxReplyBytes {
			break
		}
		v, err := m.db.Get(recordKey(prefix, out[i].Offset))
		if errors.Is(err, storage.ErrNotFound) {
			continue // trimmed since it was dead-lettered
		}
		if err != nil {
			return internal(err)
		}
		h, ok := decodeRecordHeader(v)
		if !ok {
			return internal(errCorrupt)
		}
		d := &out[i]
		d.TimestampMs = h.tsMs
		d.HasKey = h.flags&flagKey != 0
		d.Key = v[recordHeaderSize : recordHeaderSize+h.keyLen]
		d.Payload = v[recordHeaderSize+h.keyLen:]
		body = wire.AppendStreamDeadRecord(body, d)
		n++
	}
	binary.LittleEndian.PutUint32(body, uint32(n))
	return command.Reply(body)
}
