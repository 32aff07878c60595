package stream

import (
	"encoding/binary"
	"sort"

	"github.com/floruntime/flo/wire"
)

// Tail cache limits.
const (
	// TailCacheBytes bounds the memory the tail cache uses across all
	// streams.
	TailCacheBytes = 64 << 20
	// TailRecordMax is the largest encoded record the cache keeps; a larger
	// one empties its stream's tail, which restarts after it.
	TailRecordMax = TailCacheBytes / 64
	// TailSegmentBytes is the size a segment grows to before the next
	// record starts a new one; eviction drops a whole segment.
	TailSegmentBytes = 64 << 10
	// tailSegmentOverhead approximates a segment's fixed cost.
	tailSegmentOverhead = 96
)

// The tail cache keeps the most recently appended records of every stream,
// already in the wire's record-list encoding, so a read near the end of a
// stream — the common case of consumers keeping up — copies bytes instead
// of iterating Pebble (a block-cache lookup, checksum and decompression
// per block, and a key comparison per record). Records enter it in
// Committed, after the group that appended them is committed, so the cache
// never shows a record storage does not have. A stream's cached records
// are always its newest committed ones, contiguous: they arrive in offset
// order and leave only from the front (trim, eviction). They are packed
// back to back in segments of up to TailSegmentBytes, and the oldest
// segments across all streams are evicted first once TailCacheBytes is
// reached. All of it is guarded by Machine.mu.
// (docs/decisions/stream-tail-cache.md)

// tail is one stream's cached records: offsets [first, last()].
type tail struct {
	first uint64 // may lie inside segs[0] after a trim
	segs  []*segment
}

// segment holds consecutive encoded records: record base+i is
// data[ends[i-1]:ends[i]] (from 0 for i = 0).
type segment struct {
	base uint64
	data []byte
	ends []uint32
}

func (s *segment) last() uint64 { return s.base + uint64(len(s.ends)) - 1 }
func (s *segment) cost() int    { return cap(s.data) + 4*cap(s.ends) + tailSegmentOverhead }

// span returns the bytes of records [from, to] of s.
func (s *segment) span(from, to uint64) []byte {
	lo := uint32(0)
	if from > s.base {
		lo = s.ends[from-s.base-1]
	}
	return s.data[lo:s.ends[to-s.base]]
}

func (t *tail) empty() bool  { return len(t.segs) == 0 }
func (t *tail) last() uint64 { return t.segs[len(t.segs)-1].last() }

// tailCache is the machine-wide state of the tail caches.
type tailCache struct {
	budget      int // TailCacheBytes; tests lower it
	maxRecord   int // TailRecordMax; tests lower it
	segmentSize int // TailSegmentBytes; tests lower it
	bytes       int
	// order lists every segment, oldest first, for eviction; a segment
	// its stream dropped already is skipped.
	order []segmentRef
	head  int
	// appended holds the records of the group being applied, in order;
	// their wire encodings lie back to back in encoded, one buffer reused
	// group after group instead of an allocation per record.
	appended []appendedRecord
	encoded  []byte
}

// maxKeptEncoded bounds the encoding buffer kept between groups, so one
// group of large records does not pin its size for good.
const maxKeptEncoded = 1 << 20

type segmentRef struct {
	l   *log
	seg *segment
}

type appendedRecord struct {
	l          *log
	off        uint64
	cum        uint64 // the stream's cum after the record
	start, end int    // its encoding in tailCache.encoded
}

// appendedRecord notes a record Apply wrote (h its header, v its stored
// value), for Committed to publish.
func (c *tailCache) appendedRecord(l *log, off uint64, h *recordHeader, v []byte) {
	start := len(c.encoded)
	c.encoded = appendWireRecord(c.encoded, off, h, v, wire.StreamTierHot)
	c.appended = append(c.appended, appendedRecord{l: l, off: off, cum: h.cumBytes, start: start, end: len(c.encoded)})
}

// publish moves the records of the committed group into their streams'
// tails and evicts the oldest segments past the budget. Callers hold the
// machine's write lock.
func (c *tailCache) publish() {
	for _, r := range c.appended {
		enc := c.encoded[r.start:r.end]
		r.l.visible = max(r.l.visible, r.off)
		r.l.visibleCum = max(r.l.visibleCum, r.cum)
		t := &r.l.tail
		switch {
		case r.off < r.l.first:
			continue // trimmed by its own group
		case len(enc) > c.maxRecord:
			c.reset(t)
			continue
		}
		if t.empty() {
			t.first = r.off
		}
		var s *segment
		if n := len(t.segs); n > 0 && len(t.segs[n-1].data)+len(enc) <= c.segmentSize {
			s = t.segs[n-1]
			c.bytes -= s.cost()
		} else {
			s = &segment{base: r.off}
			t.segs = append(t.segs, s)
			c.order = append(c.order, segmentRef{l: r.l, seg: s})
		}
		s.data = append(s.data, enc...)
		s.ends = append(s.ends, uint32(len(s.data)))
		c.bytes += s.cost()
	}
	clear(c.appended)
	c.appended = c.appended[:0]
	c.encoded = c.encoded[:0]
	if cap(c.encoded) > maxKeptEncoded {
		c.encoded = nil
	}
	for c.bytes > c.budget && c.head < len(c.order) {
		ref := c.order[c.head]
		c.order[c.head] = segmentRef{}
		c.head++
		if t := &ref.l.tail; !t.empty() && t.segs[0] == ref.seg {
			c.dropFront(t)
		}
	}
	if c.head > len(c.order)/2 {
		n := copy(c.order, c.order[c.head:])
		clear(c.order[n:])
		c.order, c.head = c.order[:n], 0
	}
}

// dropFront drops t's oldest segment.
func (c *tailCache) dropFront(t *tail) {
	c.bytes -= t.segs[0].cost()
	t.segs[0] = nil
	t.segs = t.segs[1:]
	if !t.empty() {
		t.first = t.segs[0].base
	}
}

// trimTo forgets t's records below first (a trim).
func (c *tailCache) trimTo(t *tail, first uint64) {
	for !t.empty() && t.segs[0].last() < first {
		c.dropFront(t)
	}
	if !t.empty() {
		t.first = max(t.first, first)
	}
}

// reset empties t.
func (c *tailCache) reset(t *tail) {
	for !t.empty() {
		c.dropFront(t)
	}
}

// readTail serves a plain read of [start, end] from l's tail when the tail
// covers start; ok is false when the read must go to storage (also when
// the reply would pass maxBytes: storage reads stop at it). count is at
// least 1 (clampCount). Callers hold the machine's read lock.
func readTail(l *log, start, end uint64, count, maxBytes int) (body []byte, n int, ok bool) {
	t := &l.tail
	if t.empty() || start < t.first {
		return nil, 0, false
	}
	if start > t.last() || start > end {
		return []byte{0, 0, 0, 0}, 0, true
	}
	stop := min(t.last(), end, start+uint64(count)-1)
	// The records' bytes, one span per segment they lie in.
	var spans [][]byte
	size := 4
	for i := sort.Search(len(t.segs), func(i int) bool { return t.segs[i].last() >= start }); i < len(t.segs) && t.segs[i].base <= stop; i++ {
		sp := t.segs[i].span(max(start, t.segs[i].base), min(stop, t.segs[i].last()))
		spans = append(spans, sp)
		size += len(sp)
	}
	if size > maxBytes && stop > start {
		return nil, 0, false
	}
	body = binary.LittleEndian.AppendUint32(make([]byte, 0, size), uint32(stop-start+1))
	for _, sp := range spans {
		body = append(body, sp...)
	}
	return body, int(stop - start + 1), true
}
