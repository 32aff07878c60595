package action

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
	wire.OpActionRegister, wire.OpActionInvoke, wire.OpActionDelete, wire.OpActionStatus,
	wire.OpActionList, wire.OpWorkerRegister, wire.OpWorkerAwait, wire.OpWorkerComplete,
	wire.OpWorkerFail, wire.OpWorkerTouch, wire.OpWorkerList,
}

// FuzzMachine applies a fuzzed program of action and worker commands to a
// machine over an in-memory Pebble. Every command must answer OK or a
// documented error status without panicking, the run indexes must stay
// consistent, the valid reads must keep succeeding, and a machine reloaded
// from storage at the end must answer them the same.
func FuzzMachine(f *testing.F) {
	reg := wire.AppendActionRegister(nil, &wire.ActionRegister{TimeoutMs: 1000, MaxRetries: 1})
	inv := wire.AppendActionInvoke(nil, &wire.ActionInvoke{Priority: 3, Input: []byte("in"), IdempotencyKey: []byte("i")})
	var p []byte
	p = encodeStep(p, 0, 0, 0, reg, nil)
	p = encodeStep(p, 1, 0, 0, inv, nil)
	p = encodeStep(p, 1, 0, 0, wire.AppendActionInvoke(nil, &wire.ActionInvoke{Input: []byte("x")}), nil)
	p = encodeStep(p, 5, 0, 1, wire.AppendWorkerRegister(nil, &wire.WorkerRegister{TaskTypes: []string{"a"}}), nil)
	p = encodeStep(p, 6, 1, 1, wire.AppendTaskTypes(nil, []string{"a"}), wire.AppendU32(nil, wire.TagCount, 2))
	p = encodeStep(p, 9, 1, 1, wire.AppendWorkerTouch(nil, &wire.WorkerTouch{TaskID: []byte(RunID(1)), ExtendMs: 500}), nil)
	p = encodeStep(p, 7, 1, 1, wire.AppendTaskReport(nil, &wire.TaskReport{TaskID: []byte(RunID(1)), Data: []byte("ok")}), nil)
	p = encodeStep(p, 8, 1, 1, wire.AppendTaskReport(nil, &wire.TaskReport{TaskID: []byte(RunID(2)), Data: []byte("no")}), wire.AppendFlag(nil, wire.TagRetry))
	p = encodeStep(p, 3, 0x90, 0, nil, nil)
	p = encodeStep(p, 4, 0, 0, wire.AppendActionListRequest(nil, &wire.ActionListRequest{Limit: 1}), nil)
	p = encodeStep(p, 2, 1, 0, nil, nil)
	f.Add(p)
	var q []byte
	q = encodeStep(q, 0, 0, 3, []byte{1, 2, 3}, nil)
	q = encodeStep(q, 1, 0, 2, []byte{0xff, 0xff, 0xff, 0xff, 0xff}, nil)
	q = encodeStep(q, 6, 0, 1, []byte{0xff, 0xff}, wire.AppendU32(nil, wire.TagCount, 1<<31))
	q = encodeStep(q, 7, 0, 1, []byte{0xff, 0xff, 0xff, 0xff}, nil)
	f.Add(q)
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := storage.Open("", storage.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		m := NewWithLimits(db, Limits{})
		if err := m.Load(db); err != nil {
			t.Fatal(err)
		}
		now := int64(t0) * 1e6
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
			rs = append(rs, run(m, wire.OpActionList, nil, nil, nil))
			rs = append(rs, run(m, wire.OpWorkerList, nil, nil, nil))
			for seq := range uint64(4) {
				rs = append(rs, run(m, wire.OpActionStatus, []byte(RunID(seq)), nil, nil))
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
			checkIndexes(t, m)
			for _, r := range reads(m) {
				if r.Err != nil && !errors.Is(r.Err, wire.ErrNotFound) {
					t.Fatalf("step %d (op 0x%02x): read: %v", i, uint8(op), r.Err)
				}
			}
		}
		before := reads(m)
		m2 := NewWithLimits(db, Limits{})
		if err := m2.Load(db); err != nil {
			t.Fatalf("reload: %v", err)
		}
		checkIndexes(t, m2)
		after := reads(m2)
		// An await that claims nothing refreshes a worker's last-seen
		// time in memory only (docs/decisions/action-worker-records.md),
		// so the worker lists are compared without it and the health
		// computed from it.
		before[1].Body, after[1].Body = workersSansLastSeen(t, before[1].Body), workersSansLastSeen(t, after[1].Body)
		for i := range before {
			if !bytes.Equal(before[i].Body, after[i].Body) || (before[i].Err == nil) != (after[i].Err == nil) {
				t.Fatalf("read %d differs after reload:\n%+v\n%+v", i, before[i], after[i])
			}
		}
	})
}

// workersSansLastSeen re-encodes a worker list with every last-seen time
// and state zeroed.
func workersSansLastSeen(t *testing.T, body []byte) []byte {
	l, err := wire.DecodeWorkerList(body)
	if err != nil {
		t.Fatalf("worker list: %v", err)
	}
	for i := range l.Workers {
		l.Workers[i].LastSeenMs, l.Workers[i].State = 0, 0
	}
	return wire.AppendWorkerList(nil, &l)
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
