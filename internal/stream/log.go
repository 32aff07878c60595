package stream

import (
	"math"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// append adds one record: one Set, counters updated in memory, no scan.
func (m *Machine) append(cmd *command.Command, b storage.Batch) command.Result {
	if err := validateName("stream", cmd.Key); err != nil {
		return command.Fail(err)
	}
	if len(cmd.Value) > MaxPayloadBytes {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "payload is %d bytes, over the %d-byte limit", len(cmd.Value), MaxPayloadBytes))
	}
	key, hasKey := cmd.Options.Lookup(wire.TagPartitionKey)
	clientTs, _ := cmd.Options.Uint(wire.TagTimestampMs)
	if clientTs > math.MaxInt64 {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "timestamp %d is over the limit of %d", clientTs, int64(math.MaxInt64)))
	}
	m.mu.Lock()
	l := m.lookup(cmd.Namespace, cmd.Key)
	if l == nil {
		var err error
		if l, err = m.create(cmd.Namespace, cmd.Key); err != nil {
			m.mu.Unlock()
			return command.Fail(err)
		}
	}
	h := recordHeader{serverTsMs: max(cmd.TimeMs(), l.serverTs)}
	if clientTs > 0 {
		h.tsMs, h.flags = int64(clientTs), flagClientTs
		h.serverTsMs = l.serverTs
	} else {
		h.tsMs = h.serverTsMs
	}
	if hasKey {
		h.flags |= flagKey
		h.keyLen = len(key)
	}
	size := uint64(len(key) + len(cmd.Value))
	off := l.last + 1
	l.last = off
	l.maxTs = max(l.maxTs, h.tsMs)
	l.serverTs = h.serverTsMs
	l.cum += size
	l.bytes += size
	h.maxTsMs, h.cumBytes = l.maxTs, l.cum
	m.kbuf = appendRecordKey(m.kbuf[:0], l.prefix, off)
	m.vbuf = appendRecordValue(m.vbuf[:0], &h, key, cmd.Value)
	m.tails.appendedRecord(l, off, &h, m.vbuf)
	wake := l.wake
	m.mu.Unlock()
	b.Set(m.kbuf, m.vbuf)
	return command.Result{
		Body: wire.AppendStreamAppendReply(make([]byte, 0, 16), wire.StreamAppendReply{Offset: off, TimestampMs: h.tsMs}),
		Wake: wake,
	}
}

// peekHeader reads the fixed part of record off without copying its payload.
func peekHeader(r storage.Reader, prefix []byte, off uint64) (h recordHeader, size uint64, ok bool, err error) {
	k := recordKey(prefix, off)
	err = r.Iterate(k, append(k, 0), false, func(_, v []byte) bool {
		h, ok = decodeRecordHeader(v)
		size = h.size(v)
		return false
	})
	return h, size, ok, err
}

// searchTime returns the earliest offset in [first, last] whose running max
// timestamp is ≥ tsMs, or last+1 if none. A record missing from r (not yet
// committed, for a reader) counts as qualifying, which keeps the search
// monotone.
func searchTime(r storage.Reader, l *log, first, last uint64, maxTs, tsMs int64) (uint64, error) {
	if first > last || maxTs < tsMs {
		return last + 1, nil
	}
	lo, hi := first, last+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		h, _, ok, err := peekHeader(r, l.prefix, mid)
		if err != nil {
			return 0, err
		}
		if !ok || h.maxTsMs >= tsMs {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// cumBefore returns the cumulative bytes of every record before off, for
// first ≤ off ≤ last+1, reading through r.
func cumBefore(r storage.Reader, l *log, off uint64) (uint64, error) {
	if off > l.last {
		return l.cum, nil
	}
	h, size, ok, err := peekHeader(r, l.prefix, off)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, errCorrupt
	}
	return h.cumBytes - size, nil
}

// trim drops the oldest records by count, age and size; each policy given
// moves the new first offset forward and the furthest wins. With DRY_RUN it
// reports the same numbers and changes nothing.
func (m *Machine) trim(cmd *command.Command, b storage.Batch) command.Result {
	if err := validateName("stream", cmd.Key); err != nil {
		return command.Fail(err)
	}
	o := cmd.Options
	maxLen, hasLen := o.Uint(wire.TagRetentionCount)
	maxAge, hasAge := o.Uint(wire.TagRetentionAge)
	if !hasAge {
		maxAge, hasAge = o.Uint(wire.TagMaxAgeSeconds)
	}
	maxBytes, hasBytes := o.Uint(wire.TagRetentionBytes)
	if !hasBytes {
		maxBytes, hasBytes = o.Uint(wire.TagMaxBytes)
	}
	dry := o.Has(wire.TagDryRun)
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.lookup(cmd.Namespace, cmd.Key)
	if l == nil || l.count() == 0 {
		return command.Reply(wire.AppendStreamTrimReply(nil, wire.StreamTrimReply{}))
	}
	cut := l.first
	if hasLen && maxLen < l.count() {
		cut = max(cut, l.last+1-maxLen)
	}
	if hasAge {
		cutoff := cmd.TimeMs() - int64(min(maxAge, math.MaxInt64/1000)*1000)
		p, err := searchTime(b, l, l.first, l.last, l.maxTs, cutoff)
		if err != nil {
			return internal(err)
		}
		cut = max(cut, p)
	}
	if hasBytes && maxBytes < l.bytes {
		// Smallest p with cum(last) - cumBefore(p) ≤ maxBytes.
		lo, hi := cut, l.last+1
		for lo < hi {
			mid := lo + (hi-lo)/2
			c, err := cumBefore(b, l, mid)
			if err != nil {
				return internal(err)
			}
			if l.cum-c <= maxBytes {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		cut = max(cut, lo)
	}
	deleted := cut - l.first
	first := cut
	if cut > l.last {
		first = 0
	}
	reply := wire.AppendStreamTrimReply(nil, wire.StreamTrimReply{Deleted: deleted, FirstOffset: first})
	if dry || deleted == 0 {
		return command.Reply(reply)
	}
	cb, err := cumBefore(b, l, cut)
	if err != nil {
		return internal(err)
	}
	k := recordKey(l.prefix, 0)
	for off := l.first; off < cut; off++ {
		k = appendRecordKey(k[:0], l.prefix, off)
		b.Delete(k)
	}
	l.bytes = l.cum - cb
	l.first = cut
	m.tails.trimTo(&l.tail, cut)
	mt := meta{first: l.first, last: l.last, maxTs: l.maxTs, serverTs: l.serverTs, cum: l.cum}
	b.Set(metaKey(l.prefix), mt.encode())
	return command.Reply(reply)
}
