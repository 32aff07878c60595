package stream

import (
	"encoding/binary"

	"github.com/floruntime/flo/wire"
)

// Tail cache limits.
const (
	// TailCacheBytes bounds the encoded records the tail cache holds across
	// all streams.
	TailCacheBytes = 64 << 20
	// TailRecordMax is the largest encoded record the cache keeps; a larger
	// one empties its stream's tail, which restarts after it.
	TailRecordMax = TailCacheBytes / 64
	// tailSlotOverhead approximates a cached record's slice and queue cost.
	tailSlotOverhead = 40
)

// The tail cache keeps the most recently appended records of every stream,
// already in the wire's record-list encoding, so a read near the end of a
// stream — the common case of consumers keeping up — copies bytes instead
// of iterating Pebble (a block-cache lookup, checksum and decompression
// per block, and a key comparison per record). Records enter it in
// Committed, after the group that appended them is committed, so the cache
// never shows a record storage does not have; a stream's cached records are
// always its newest committed ones, contiguous. The oldest records across
// all streams are evicted first once TailCacheBytes is reached. All of it
// is guarded by Machine.mu. (docs/decisions/stream-tail-cache.md)

// tail is one stream's cached records: offsets [first, first+len(recs)).
type tail struct {
	first uint64
	recs  [][]byte
	head  int // recs[:head] are evicted
}

func (t *tail) len() int     { return len(t.recs) - t.head }
func (t *tail) last() uint64 { return t.first + uint64(t.len()) - 1 }

// tailCache is the machine-wide state of the tail caches.
type tailCache struct {
	budget    int // TailCacheBytes; tests lower it
	maxRecord int // TailRecordMax; tests lower it
	bytes     int
	// order lists, oldest first, the stream and offset of every record
	// added, for eviction; entries whose record is gone already are skipped.
	order []tailRef
	head  int
	// appended holds the records of the group being applied, in order.
	appended []tailRef
}

type tailRef struct {
	l   *log
	off uint64
	enc []byte // the encoded record (appended entries only)
}

func recordCost(enc []byte) int { return len(enc) + tailSlotOverhead }

// appendedRecord notes a record Apply wrote (v as stored), for Committed
// to publish.
func (c *tailCache) appendedRecord(l *log, off uint64, v []byte) {
	h, ok := decodeRecordHeader(v)
	if !ok {
		return
	}
	enc := appendWireRecord(nil, off, &h, v, wire.StreamTierHot)
	c.appended = append(c.appended, tailRef{l: l, off: off, enc: enc})
}

// publish moves the records of the committed group into their streams'
// tails and evicts the oldest records past the budget. Callers hold the
// machine's write lock.
func (c *tailCache) publish() {
	for _, r := range c.appended {
		t := &r.l.tail
		// Records arrive in offset order and tails lose records only at the
		// front, so r follows the tail's last record unless it was trimmed
		// by its own group or is too large to keep.
		switch {
		case r.off < r.l.first:
			continue
		case len(r.enc) > c.maxRecord:
			c.reset(t)
			continue
		}
		if t.len() == 0 {
			t.first, t.recs, t.head = r.off, t.recs[:0], 0
		}
		t.recs = append(t.recs, r.enc)
		c.bytes += recordCost(r.enc)
		c.order = append(c.order, tailRef{l: r.l, off: r.off})
	}
	clear(c.appended)
	c.appended = c.appended[:0]
	for c.bytes > c.budget && c.head < len(c.order) {
		ref := c.order[c.head]
		c.order[c.head] = tailRef{}
		c.head++
		if t := &ref.l.tail; t.len() > 0 && t.first == ref.off {
			c.dropFront(t)
		}
	}
	if c.head > len(c.order)/2 {
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
}

// dropFront evicts t's oldest record.
func (c *tailCache) dropFront(t *tail) {
	c.bytes -= recordCost(t.recs[t.head])
	t.recs[t.head] = nil
	t.head++
	t.first++
	if t.head > len(t.recs)/2 {
		n := copy(t.recs, t.recs[t.head:])
		clear(t.recs[n:])
		t.recs, t.head = t.recs[:n], 0
	}
}

// trimTo drops t's records below first (a trim).
func (c *tailCache) trimTo(t *tail, first uint64) {
	for t.len() > 0 && t.first < first {
		c.dropFront(t)
	}
}

// reset empties t.
func (c *tailCache) reset(t *tail) {
	for t.len() > 0 {
		c.dropFront(t)
	}
}

// readTail serves a plain read of [start, end] from l's tail when the tail
// covers start; ok is false when the read must go to storage. Callers hold
// the machine's read lock.
func readTail(l *log, start, end uint64, count int) (body []byte, n int, ok bool) {
	t := &l.tail
	if t.len() == 0 || start < t.first {
		return nil, 0, false
	}
	body = []byte{0, 0, 0, 0}
	if start <= t.last() && start <= end {
		stop := min(t.last(), end)
		if stop-start >= uint64(count) {
			stop = start + uint64(count) - 1
		}
		size := 4
		for off := start; off <= stop; off++ {
			size += len(t.recs[t.head+int(off-t.first)])
		}
		body = make([]byte, 4, size)
		for off := start; off <= stop; off++ {
			body = append(body, t.recs[t.head+int(off-t.first)]...)
		}
		n = int(stop - start + 1)
	}
	binary.LittleEndian.PutUint32(body, uint32(n))
	return body, n, true
}
