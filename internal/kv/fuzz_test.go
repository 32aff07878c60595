package kv

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

var fuzzOps = []wire.Op{wire.OpKVPut, wire.OpKVGet, wire.OpKVDelete, wire.OpKVScan, wire.OpKVHistory}

// FuzzMachine applies a fuzzed program of KV commands to a machine over an
// in-memory Pebble. Every command must answer OK or a documented error
// status without panicking, and after each one the machine (with its cache)
// must answer get, scan and history as a fresh machine over the same
// storage does.
func FuzzMachine(f *testing.F) {
	var p []byte
	p = encodeStep(p, 0, 0, 0, []byte("v1"), nil)
	p = encodeStep(p, 0, 1, 0, []byte("v2"), wire.AppendU64(nil, wire.TagCASVersion, 1))
	p = encodeStep(p, 0, 1, 1, []byte("v3"), wire.AppendU32(nil, wire.TagTTLSeconds, 1))
	p = encodeStep(p, 0, 1, 1, []byte("v4"), wire.AppendFlag(nil, wire.TagIfNotExists))
	p = encodeStep(p, 3, 0, 2, nil, wire.AppendFlag(wire.AppendU32(nil, wire.TagLimit, 1), wire.TagKeysOnly))
	p = encodeStep(p, 4, 0x8F, 0, nil, wire.AppendU32(nil, wire.TagLimit, 1))
	p = encodeStep(p, 2, 1, 0, nil, wire.AppendFlag(nil, wire.TagIfExists))
	p = encodeStep(p, 1, 1, 1, nil, nil)
	f.Add(p)
	var q []byte
	q = encodeStep(q, 0, 0, 3, []byte("x"), []byte{0x01, 0x03, 0xff})
	q = encodeStep(q, 0, 0, 2, nil, wire.AppendU64(nil, wire.TagTTLSeconds, 1<<63))
	q = encodeStep(q, 3, 0, 0, nil, wire.AppendOption(nil, wire.TagCursor, []byte{0xff, 0, 1}))
	f.Add(q)
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := storage.Open("kv", storage.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		m := New(db)
		if err := m.Load(db); err != nil {
			t.Fatal(err)
		}
		now := t0.UnixNano()
		run := func(m *Machine, op wire.Op, key, value, opts []byte) command.Result {
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
		reads := func(m *Machine) []command.Result {
			var rs []command.Result
			for _, k := range []string{"a", "b"} {
				rs = append(rs, run(m, wire.OpKVGet, []byte(k), nil, nil))
				rs = append(rs, run(m, wire.OpKVHistory, []byte(k), nil, nil))
			}
			return append(rs, run(m, wire.OpKVScan, nil, nil, nil))
		}
		for i, s := range decodeProgram(data) {
			now += s.advance
			if s.pulse {
				run(m, wire.Op(command.OpPulse), nil, nil, nil)
			}
			op := fuzzOps[s.op%len(fuzzOps)]
			r := run(m, op, s.key, s.value, s.opts)
			checkStatus(t, "step", r.Err)
			fresh := New(db)
			if err := fresh.Load(db); err != nil {
				t.Fatal(err)
			}
			got, want := reads(m), reads(fresh)
			for j := range got {
				if got[j].Err != nil && !errors.Is(got[j].Err, wire.ErrNotFound) {
					t.Fatalf("step %d (op 0x%02x): read %d: %v", i, uint8(op), j, got[j].Err)
				}
				if !bytes.Equal(got[j].Body, want[j].Body) || (got[j].Err == nil) != (want[j].Err == nil) {
					t.Fatalf("step %d (op 0x%02x): read %d differs from a fresh machine:\n%+v\n%+v", i, uint8(op), j, got[j], want[j])
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
