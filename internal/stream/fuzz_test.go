package stream

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
	p = encodeStep(p, 0, 0, 0, []byte("r1"), nil)
	p = encodeStep(p, 0, 0, 0, []byte("r2"), wire.AppendStreamAppendOptions(nil, true, "k", 5))
	p = encodeStep(p, 4, 1, 0, gc, nil)
	p = encodeStep(p, 6, 1, 0, gc, wire.AppendU32(wire.AppendU32(nil, wire.TagCount, 2), wire.TagAckTimeoutMs, 100))
	p = encodeStep(p, 9, 1, 0, wire.AppendGroupSeqs(nil, "g", []uint64{1}), nil)
	p = encodeStep(p, 7, 1, 0, wire.AppendGroupSeqs(nil, "g", []uint64{1}), nil)
	p = encodeStep(p, 8, 1, 0, wire.AppendGroupSeqs(nil, "g", []uint64{2}), wire.AppendU8(nil, wire.TagMaxDeliver, 1))
	p = encodeStep(p, 10, 0x85, 0, wire.AppendGroupName(nil, "g"), nil)
	p = encodeStep(p, 11, 1, 0, wire.AppendGroupSeqs(nil, "g", []uint64{2}), nil)
	p = encodeStep(p, 1, 1, 0, nil, startAt(wire.StreamID{}))
	p = encodeStep(p, 2, 1, 0, nil, wire.AppendU64(nil, wire.TagRetentionCount, 1))
	p = encodeStep(p, 5, 1, 0, gc, nil)
	f.Add(p)
	var q []byte
	q = encodeStep(q, 0, 0, 2, nil, []byte{0x25, 0xff})
	q = encodeStep(q, 3, 0, 3, nil, nil)
	q = encodeStep(q, 7, 0, 1, []byte{0xff, 0xff, 1, 2, 3}, nil)
	q = encodeStep(q, 2, 0, 1, nil, wire.AppendU64(nil, wire.TagMaxBytes, 1<<63))
	f.Add(q)
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := storage.Open("", storage.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		lim := Limits{MaxGroupsPerStream: 2, MaxPendingPerGroup: 3, MaxDeadLetters: 2, MaxReplyBytes: 64}
		m := NewWithLimits(db, lim)
		if err := m.Load(db); err != nil {
			t.Fatal(err)
		}
		now := int64(1_900_000_000) * 1e9
		run := func(m *Machine, op wire.Op, key, value, opts []byte) command.Result {
			cmd := &command.Command{Op: command.Op(op), Time: now, Namespace: "ns", Key: key, Value: value, Options: opts}
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
		readAll := wire.AppendU32(startAt(wire.StreamID{}), wire.TagCount, 1000)
		reads := func(m *Machine) []command.Result {
			var rs []command.Result
			for _, k := range []string{"a", "b"} {
				rs = append(rs, run(m, wire.OpStreamInfo, []byte(k), nil, nil))
				rs = append(rs, run(m, wire.OpStreamRead, []byte(k), nil, readAll))
				rs = append(rs, run(m, wire.OpStreamGroupDLQList, []byte(k), wire.AppendGroupName(nil, "g"), nil))
			}
			return rs
		}
		for i, s := range decodeProgram(data) {
			now += s.advance
			if s.pulse {
				run(m, wire.Op(command.OpPulse), nil, nil, nil)
			}
			op := fuzzOps[s.op%len(fuzzOps)]
			r := run(m, op, s.key, s.value, s.opts)
			checkStatus(t, "step", r.Err)
			for _, r := range reads(m) {
				if r.Err != nil && !errors.Is(r.Err, wire.ErrNotFound) {
					t.Fatalf("step %d (op 0x%02x): read: %v", i, uint8(op), r.Err)
				}
			}
		}
		before := reads(m)
		m2 := NewWithLimits(db, lim)
		if err := m2.Load(db); err != nil {
			t.Fatalf("reload: %v", err)
		}
		after := reads(m2)
		for i := range before {
			if !sameResult(before[i], after[i]) {
				t.Fatalf("read %d differs after reload:\n%+v\n%+v", i, before[i], after[i])
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
