package queue

import (
	"fmt"
	"testing"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/fuzzprog"
	"github.com/floruntime/flo/wire"
)

var fuzzOps = []wire.Op{
	wire.OpQueueEnqueue, wire.OpQueueDequeue, wire.OpQueueAck, wire.OpQueueNack,
	wire.OpQueueTouch, wire.OpQueueDLQRequeue, wire.OpQueueDLQDelete,
	wire.OpQueuePeek, wire.OpQueueDLQList, wire.OpQueueStats,
}

// FuzzMachine applies a fuzzed program of queue commands to a machine over
// an in-memory Pebble. Every command must answer OK or a documented error
// status without panicking, the invariants must hold after each, and the
// valid reads (stats, peek, DLQ list) must keep succeeding.
func FuzzMachine(f *testing.F) {
	seq1 := wire.AppendSeqList(nil, []uint64{1})
	seq12 := wire.AppendSeqList(nil, []uint64{1, 2})
	var p []byte
	p = fuzzprog.AppendStep(p, 0, 0, 0, []byte("m1"), wire.AppendU8(nil, wire.TagPriority, 3))
	p = fuzzprog.AppendStep(p, 0, 0, 0, []byte("m2"), wire.AppendOption(nil, wire.TagDedupKey, []byte("d")))
	p = fuzzprog.AppendStep(p, 0, 0, 0, []byte("m3"), wire.AppendU64(nil, wire.TagDelayMs, 500))
	p = fuzzprog.AppendStep(p, 1, 1, 0, nil, wire.AppendU32(wire.AppendU32(nil, wire.TagCount, 2), wire.TagVisibilityTimeoutMs, 1000))
	p = fuzzprog.AppendStep(p, 4, 1, 0, seq1, wire.AppendU32(nil, wire.TagExtendMs, 1000))
	p = fuzzprog.AppendStep(p, 2, 1, 0, seq1, nil)
	p = fuzzprog.AppendStep(p, 3, 1, 0, seq12, wire.AppendFlag(nil, wire.TagSendToDLQ))
	p = fuzzprog.AppendStep(p, 8, 1, 0, nil, nil)
	p = fuzzprog.AppendStep(p, 5, 1, 0, seq12, nil)
	p = fuzzprog.AppendStep(p, 6, 0x85, 0, nil, wire.AppendFlag(nil, wire.TagDLQAll))
	f.Add(p)
	var q []byte
	q = fuzzprog.AppendStep(q, 0, 0, 1, []byte("x"), nil)
	q = fuzzprog.AppendStep(q, 1, 0, 1, wire.AppendSeqList(nil, []uint64{0, 1 << 63}), wire.AppendU8(nil, wire.TagCount, 0))
	q = fuzzprog.AppendStep(q, 3, 0, 1, []byte{0xff, 0xff, 0xff, 0xff}, nil)
	q = fuzzprog.AppendStep(q, 7, 0, 2, nil, nil)
	q = fuzzprog.AppendStep(q, 9, 0, 3, nil, nil)
	f.Add(q)
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := fuzzprog.NewRunner(t, "default", int64(1_900_000_000)*1e9)
		m := NewWithLimits(fr.DB, Limits{MaxDeliveries: 2, DLQMax: 3, MaxReplyBytes: 64})
		for i, s := range fuzzprog.Decode(data) {
			op := fr.Step(m, s, fuzzOps)
			if err := m.Check(); err != nil {
				t.Fatalf("step %d (op 0x%02x): %v", i, uint8(op), err)
			}
			var rs []command.Result
			for _, rop := range []wire.Op{wire.OpQueueStats, wire.OpQueuePeek, wire.OpQueueDLQList} {
				rs = append(rs, fr.Run(m, rop, []byte("a"), nil, nil))
			}
			fuzzprog.CheckReads(t, fmt.Sprintf("step %d (op 0x%02x)", i, uint8(op)), rs)
		}
	})
}
