package queue

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
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
	p = encodeStep(p, 0, 0, 0, []byte("m1"), wire.AppendU8(nil, wire.TagPriority, 3))
	p = encodeStep(p, 0, 0, 0, []byte("m2"), wire.AppendOption(nil, wire.TagDedupKey, []byte("d")))
	p = encodeStep(p, 0, 0, 0, []byte("m3"), wire.AppendU64(nil, wire.TagDelayMs, 500))
	p = encodeStep(p, 1, 1, 0, nil, wire.AppendU32(wire.AppendU32(nil, wire.TagCount, 2), wire.TagVisibilityTimeoutMs, 1000))
	p = encodeStep(p, 4, 1, 0, seq1, wire.AppendU32(nil, wire.TagExtendMs, 1000))
	p = encodeStep(p, 2, 1, 0, seq1, nil)
	p = encodeStep(p, 3, 1, 0, seq12, wire.AppendFlag(nil, wire.TagSendToDLQ))
	p = encodeStep(p, 8, 1, 0, nil, nil)
	p = encodeStep(p, 5, 1, 0, seq12, nil)
	p = encodeStep(p, 6, 0x85, 0, nil, wire.AppendFlag(nil, wire.TagDLQAll))
	f.Add(p)
	var q []byte
	q = encodeStep(q, 0, 0, 1, []byte("x"), nil)
	q = encodeStep(q, 1, 0, 1, wire.AppendSeqList(nil, []uint64{0, 1 << 63}), wire.AppendU8(nil, wire.TagCount, 0))
	q = encodeStep(q, 3, 0, 1, []byte{0xff, 0xff, 0xff, 0xff}, nil)
	q = encodeStep(q, 7, 0, 2, nil, nil)
	q = encodeStep(q, 9, 0, 3, nil, nil)
	f.Add(q)
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := storage.Open("", storage.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		m := NewWithLimits(db, Limits{MaxDeliveries: 2, DLQMax: 3, MaxReplyBytes: 64})
		now := int64(1_900_000_000) * 1e9
		run := func(op wire.Op, key, value, opts []byte) command.Result {
			cmd := &command.Command{Op: command.Op(op), Time: now, Namespace: "default", Key: key, Value: value, Options: opts}
			if op == wire.Op(command.OpPulse) {
				cmd = &command.Command{Op: command.OpPulse, Time: now}
			}
			if hd := m.Handlers()[op]; hd.Kind == command.Read {
				return hd.Read(cmd)
			}
			b := db.NewBatch()
			r := m.Apply(cmd, b)
			if err := db.Commit(b, false); err != nil {
				t.Fatal(err)
			}
			m.Committed()
			return r
		}
		for i, s := range decodeProgram(data) {
			now += s.advance
			if s.pulse {
				run(wire.Op(command.OpPulse), nil, nil, nil)
			}
			op := fuzzOps[s.op%len(fuzzOps)]
			r := run(op, s.key, s.value, s.opts)
			checkStatus(t, "step", r.Err)
			if err := m.Check(); err != nil {
				t.Fatalf("step %d (op 0x%02x): %v", i, uint8(op), err)
			}
			for _, rop := range []wire.Op{wire.OpQueueStats, wire.OpQueuePeek, wire.OpQueueDLQList} {
				if r := run(rop, []byte("a"), nil, nil); r.Err != nil && !errors.Is(r.Err, wire.ErrNotFound) {
					t.Fatalf("step %d: read 0x%02x: %v", i, uint8(rop), r.Err)
				}
			}
		}
	})
}

// step is one fuzzed command decoded from a fuzz program.
type step struct {
	op      int    // index into the target's opcode list
	pulse   bool   // apply a pulse before the command
	advance int64  // ns to advance the clock by first
	key     []byte // key (name) of the command
	value   []byte
	opts    []byte
}

// fuzzKeys are the names a program picks from: two valid ones that share
// state across steps, an empty one and an oversized one.
var fuzzKeys = [][]byte{[]byte("a"), []byte("b"), nil, bytes.Repeat([]byte("x"), 300)}

// decodeProgram splits data into at most 24 steps, each
//
//	[op:u8][time:u8][key:u8][vlen:u8][value][olen:u8][opts]
//
// time's top bit asks for a pulse, its low 7 bits advance the clock by that
// many 100 ms; lengths are clamped to what is left.
func decodeProgram(data []byte) []step {
	var steps []step
	take := func(n int) []byte {
		n = min(n, len(data))
		b := data[:n]
		data = data[n:]
		return b
	}
	for len(data) >= 3 && len(steps) < 24 {
		h := take(3)
		s := step{op: int(h[0]), pulse: h[1]&0x80 != 0, advance: int64(h[1]&0x7F) * 100e6, key: fuzzKeys[int(h[2])%len(fuzzKeys)]}
		if l := take(1); len(l) == 1 {
			s.value = bytes.Clone(take(int(l[0])))
		}
		if l := take(1); len(l) == 1 {
			s.opts = bytes.Clone(take(int(l[0])))
		}
		steps = append(steps, s)
	}
	return steps
}

// encodeStep is decodeProgram's inverse for one step, for seeds.
func encodeStep(dst []byte, op int, time uint8, key uint8, value, opts []byte) []byte {
	dst = append(dst, byte(op), time, key, byte(len(value)))
	dst = append(dst, value...)
	dst = append(dst, byte(len(opts)))
	return append(dst, opts...)
}

// checkStatus fails unless err is nil or a *wire.Error with a status the
// protocol documents for a domain outcome (never INTERNAL: storage is
// in memory and cannot fail).
func checkStatus(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var we *wire.Error
	if !errors.As(err, &we) {
		t.Fatalf("%s: error without a status: %v", what, err)
	}
	switch we.Status {
	case wire.StatusNotFound, wire.StatusBadRequest, wire.StatusConflict, wire.StatusOverloaded:
	default:
		t.Fatalf("%s: unexpected status %v: %v", what, we.Status, err)
	}
}
