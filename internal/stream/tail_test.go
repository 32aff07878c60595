package stream

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/wire"
)

// TestMachine_TailCacheMatchesStorage appends (in groups of several
// commands per commit, like the journal), trims and reads three streams at
// random with a tail cache small enough to evict all the time, and checks
// that every read answered from the cache is byte-identical to the same
// read answered from storage by a machine rebuilt without a cache.
func TestMachine_TailCacheMatchesStorage(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	f.m.tails.budget, f.m.tails.maxRecord, f.m.tails.segmentSize = 3000, 250, 600
	rng := rand.New(rand.NewSource(5))
	streams := []string{"a", "b", "c"}
	served, multiSegment := 0, 0
	for round := 0; round < 300; round++ {
		// One group: several commands in one batch, published together.
		b := f.db.NewBatch()
		for i := rng.Intn(6); i >= 0; i-- {
			f.now += int64(time.Millisecond)
			s := streams[rng.Intn(len(streams))]
			cmd := command.Command{Op: command.Op(wire.OpStreamAppend), Time: f.now, Namespace: "ns", Key: []byte(s), Value: bytes.Repeat([]byte{byte(round)}, rng.Intn(200))}
			switch r := rng.Intn(10); {
			case r == 0:
				cmd.Op = command.Op(wire.OpStreamTrim)
				cmd.Value = nil
				cmd.Options = wire.AppendU64(nil, wire.TagRetentionCount, uint64(rng.Intn(30)))
			case r < 3:
				cmd.Options = wire.AppendOption(nil, wire.TagPartitionKey, []byte(fmt.Sprint("k", rng.Intn(5))))
			case r < 4:
				cmd.Options = wire.AppendU64(nil, wire.TagTimestampMs, uint64(1000+rng.Intn(1000)))
			case r < 5:
				cmd.Value = bytes.Repeat([]byte{1}, 250) // too large to cache once encoded
			}
			if r := f.m.Apply(&cmd, b); r.Err != nil {
				t.Fatalf("round %d: %v", round, r.Err)
			}
		}
		if err := f.db.Commit(b, false); err != nil {
			t.Fatal(err)
		}
		f.m.Committed()
		checkTails(t, f.m)
		if round%10 != 9 {
			continue
		}
		ref := NewWithLimits(f.db, Limits{})
		if err := ref.Load(f.db); err != nil {
			t.Fatal(err)
		}
		for _, s := range streams {
			l := f.m.streams["ns\x00"+s]
			if l == nil {
				continue
			}
			if len(l.tail.segs) > 1 {
				multiSegment++
			}
			var cases []wire.Options
			for _, start := range []uint64{l.first, l.tail.first, l.tail.first + 1, (l.first + l.last) / 2, l.last - 1, l.last, l.last + 1} {
				for _, count := range []uint32{1, 5, 1000} {
					o := wire.AppendU32(startAt(wire.StreamID{Sequence: start}), wire.TagCount, count)
					cases = append(cases, o, wire.AppendStreamID(append(o, byte(wire.TagStreamEnd), wire.StreamIDSize), wire.StreamID{Sequence: start + 2}))
				}
			}
			cases = append(cases, wire.AppendFlag(wire.AppendU32(nil, wire.TagCount, 3), wire.TagStreamTail), nil)
			for _, o := range cases {
				cmd := command.Command{Op: command.Op(wire.OpStreamRead), Time: f.now, Namespace: "ns", Key: []byte(s), Options: o}
				got := f.m.read(&cmd)
				cmd.Options = o
				want := ref.read(&cmd)
				if !bytes.Equal(got.Body, want.Body) || got.Empty != want.Empty || got.Err != nil {
					t.Fatalf("round %d, stream %s, options %x: cache gave %x (empty %v, %v), storage %x (empty %v)", round, s, o, got.Body, got.Empty, got.Err, want.Body, want.Empty)
				}
				if !l.tail.empty() {
					served++
				}
			}
		}
		if round == 299 && (served == 0 || multiSegment == 0) {
			t.Fatalf("reads served while a tail was cached: %d, tails of several segments seen: %d", served, multiSegment)
		}
	}
}

// checkTails verifies the cache's invariants: each tail holds its stream's
// newest records contiguously, the byte count is exact and within budget.
func checkTails(t *testing.T, m *Machine) {
	t.Helper()
	total := 0
	for name, l := range m.streams {
		tl := &l.tail
		if tl.empty() {
			continue
		}
		if tl.last() != l.last || tl.first < l.first || tl.first < tl.segs[0].base || tl.first > tl.segs[0].last() {
			t.Fatalf("stream %q: tail [%d, %d] (first segment from %d), stream [%d, %d]", name, tl.first, tl.last(), tl.segs[0].base, l.first, l.last)
		}
		for i, s := range tl.segs {
			if len(s.ends) == 0 || (i > 0 && s.base != tl.segs[i-1].last()+1) {
				t.Fatalf("stream %q: segment %d starts at %d with %d records after one ending at %d", name, i, s.base, len(s.ends), tl.segs[max(i-1, 0)].last())
			}
			total += s.cost()
		}
	}
	if total != m.tails.bytes || total > m.tails.budget {
		t.Fatalf("tail bytes: counted %d, recorded %d, budget %d", total, m.tails.bytes, m.tails.budget)
	}
	// Published: the group's encodings are consumed, their buffer kept
	// for the next group only within its bound.
	if len(m.tails.appended) != 0 || len(m.tails.encoded) != 0 || cap(m.tails.encoded) > maxKeptEncoded {
		t.Fatalf("after publish: %d records, %d bytes (capacity %d) still held", len(m.tails.appended), len(m.tails.encoded), cap(m.tails.encoded))
	}
}

// TestMachine_TailRecordMaxEdge: a record whose encoding is exactly the
// limit is cached; one byte more empties the stream's tail, and the next
// record starts it again.
func TestMachine_TailRecordMaxEdge(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	f.append("s", "x", nil)
	l := f.m.streams["ns\x00s"]
	overhead := len(l.tail.segs[0].data) - 1 // encoding of a 1-byte record, minus its payload
	f.m.tails.maxRecord = overhead + 100
	f.append("s", string(bytes.Repeat([]byte{'a'}, 100)), nil)
	if l.tail.empty() || l.tail.last() != 2 {
		t.Fatalf("record at the limit not cached: tail %+v", l.tail)
	}
	f.append("s", string(bytes.Repeat([]byte{'b'}, 101)), nil)
	if !l.tail.empty() {
		t.Fatalf("record over the limit: tail not emptied: first %d, last %d", l.tail.first, l.tail.last())
	}
	f.append("s", "y", nil)
	if l.tail.empty() || l.tail.first != 4 || l.tail.last() != 4 {
		t.Fatalf("tail did not restart after the large record")
	}
	checkTails(t, f.m)
}

// TestMachine_ReadIsServedFromTheTail removes committed records from
// storage behind the machine's back: a read starting inside the tail still
// returns them, while a machine rebuilt without a tail does not.
func TestMachine_ReadIsServedFromTheTail(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	for i := 1; i <= 5; i++ {
		f.append("s", fmt.Sprint("r", i), nil)
	}
	l := f.m.streams["ns\x00s"]
	b := f.db.NewBatch()
	for off := uint64(1); off <= 5; off++ {
		b.Delete(recordKey(l.prefix, off))
	}
	if err := f.db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	if got := f.read("s", startAt(wire.StreamID{Sequence: 3})); !reflect.DeepEqual(got, seq(3, 5)) {
		t.Fatalf("read from the tail: offsets %v, want 3..5", got)
	}
	f.reload()
	if got := f.read("s", startAt(wire.StreamID{Sequence: 3})); len(got) != 0 {
		t.Fatalf("read without a tail: offsets %v, want none (records deleted)", got)
	}
}
