package stream

import (
	"fmt"
	"testing"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/fuzzprog"
	"github.com/floruntime/flo/wire"
)

var fuzzOps = []wire.Op{
	wire.OpStreamAppend, wire.OpStreamRead, wire.OpStreamTrim, wire.OpStreamInfo,
	wire.OpStreamGroupJoin, wire.OpStreamGroupLeave, wire.OpStreamGroupRead,
	wire.OpStreamGroupAck, wire.OpStreamGroupNack, wire.OpStreamGroupTouch,
	wire.OpStreamGroupDLQList, wire.OpStreamGroupDLQRequeue,
}

// FuzzMachine applies a fuzzed program of stream commands to a machine over
// an in-memory Pebble. Every command must answer OK or a documented error
// status without panicking, the valid reads must keep succeeding, and a
// machine reloaded from storage at the end must answer them the same.
func FuzzMachine(f *testing.F) {
	gc := wire.AppendGroupConsumer(nil, "g", "c")
	var p []byte
	p = fuzzprog.AppendStep(p, 0, 0, 0, []byte("r1"), nil)
	p = fuzzprog.AppendStep(p, 0, 0, 0, []byte("r2"), wire.AppendStreamAppendOptions(nil, true, "k", 5))
	p = fuzzprog.AppendStep(p, 4, 1, 0, gc, nil)
	p = fuzzprog.AppendStep(p, 6, 1, 0, gc, wire.AppendU32(wire.AppendU32(nil, wire.TagCount, 2), wire.TagAckTimeoutMs, 100))
	p = fuzzprog.AppendStep(p, 9, 1, 0, wire.AppendGroupSeqs(nil, "g", []uint64{1}), nil)
	p = fuzzprog.AppendStep(p, 7, 1, 0, wire.AppendGroupSeqs(nil, "g", []uint64{1}), nil)
	p = fuzzprog.AppendStep(p, 8, 1, 0, wire.AppendGroupSeqs(nil, "g", []uint64{2}), wire.AppendU8(nil, wire.TagMaxDeliver, 1))
	p = fuzzprog.AppendStep(p, 10, 0x85, 0, wire.AppendGroupName(nil, "g"), nil)
	p = fuzzprog.AppendStep(p, 11, 1, 0, wire.AppendGroupSeqs(nil, "g", []uint64{2}), nil)
	p = fuzzprog.AppendStep(p, 1, 1, 0, nil, startAt(wire.StreamID{}))
	p = fuzzprog.AppendStep(p, 2, 1, 0, nil, wire.AppendU64(nil, wire.TagRetentionCount, 1))
	p = fuzzprog.AppendStep(p, 5, 1, 0, gc, nil)
	f.Add(p)
	var q []byte
	q = fuzzprog.AppendStep(q, 0, 0, 2, nil, []byte{0x25, 0xff})
	q = fuzzprog.AppendStep(q, 3, 0, 3, nil, nil)
	q = fuzzprog.AppendStep(q, 7, 0, 1, []byte{0xff, 0xff, 1, 2, 3}, nil)
	q = fuzzprog.AppendStep(q, 2, 0, 1, nil, wire.AppendU64(nil, wire.TagMaxBytes, 1<<63))
	f.Add(q)
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := fuzzprog.NewRunner(t, "ns", int64(1_900_000_000)*1e9)
		db := fr.DB
		lim := Limits{MaxGroupsPerStream: 2, MaxPendingPerGroup: 3, MaxDeadLetters: 2, MaxReplyBytes: 64}
		m := NewWithLimits(db, lim)
		if err := m.Load(db); err != nil {
			t.Fatal(err)
		}
		readAll := wire.AppendU32(startAt(wire.StreamID{}), wire.TagCount, 1000)
		reads := func(m *Machine) []command.Result {
			var rs []command.Result
			for _, k := range []string{"a", "b"} {
				rs = append(rs, fr.Run(m, wire.OpStreamInfo, []byte(k), nil, nil))
				rs = append(rs, fr.Run(m, wire.OpStreamRead, []byte(k), nil, readAll))
				rs = append(rs, fr.Run(m, wire.OpStreamGroupDLQList, []byte(k), wire.AppendGroupName(nil, "g"), nil))
			}
			return rs
		}
		for i, s := range fuzzprog.Decode(data) {
			op := fr.Step(m, s, fuzzOps)
			fuzzprog.CheckReads(t, fmt.Sprintf("step %d (op 0x%02x)", i, uint8(op)), reads(m))
		}
		before := reads(m)
		m2 := NewWithLimits(db, lim)
		if err := m2.Load(db); err != nil {
			t.Fatalf("reload: %v", err)
		}
		fuzzprog.CheckSame(t, "after reload", before, reads(m2))
	})
}
