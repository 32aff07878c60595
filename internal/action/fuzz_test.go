package action

import (
	"fmt"
	"testing"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/fuzzprog"
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
	p = fuzzprog.AppendStep(p, 0, 0, 0, reg, nil)
	p = fuzzprog.AppendStep(p, 1, 0, 0, inv, nil)
	p = fuzzprog.AppendStep(p, 1, 0, 0, wire.AppendActionInvoke(nil, &wire.ActionInvoke{Input: []byte("x")}), nil)
	p = fuzzprog.AppendStep(p, 5, 0, 1, wire.AppendWorkerRegister(nil, &wire.WorkerRegister{TaskTypes: []string{"a"}}), nil)
	p = fuzzprog.AppendStep(p, 6, 1, 1, wire.AppendTaskTypes(nil, []string{"a"}), wire.AppendU32(nil, wire.TagCount, 2))
	p = fuzzprog.AppendStep(p, 9, 1, 1, wire.AppendWorkerTouch(nil, &wire.WorkerTouch{TaskID: []byte(RunID(1)), ExtendMs: 500}), nil)
	p = fuzzprog.AppendStep(p, 7, 1, 1, wire.AppendTaskReport(nil, &wire.TaskReport{TaskID: []byte(RunID(1)), Data: []byte("ok")}), nil)
	p = fuzzprog.AppendStep(p, 8, 1, 1, wire.AppendTaskReport(nil, &wire.TaskReport{TaskID: []byte(RunID(2)), Data: []byte("no")}), wire.AppendFlag(nil, wire.TagRetry))
	p = fuzzprog.AppendStep(p, 3, 0x90, 0, nil, nil)
	p = fuzzprog.AppendStep(p, 4, 0, 0, wire.AppendActionListRequest(nil, &wire.ActionListRequest{Limit: 1}), nil)
	p = fuzzprog.AppendStep(p, 2, 1, 0, nil, nil)
	f.Add(p)
	var q []byte
	q = fuzzprog.AppendStep(q, 0, 0, 3, []byte{1, 2, 3}, nil)
	q = fuzzprog.AppendStep(q, 1, 0, 2, []byte{0xff, 0xff, 0xff, 0xff, 0xff}, nil)
	q = fuzzprog.AppendStep(q, 6, 0, 1, []byte{0xff, 0xff}, wire.AppendU32(nil, wire.TagCount, 1<<31))
	q = fuzzprog.AppendStep(q, 7, 0, 1, []byte{0xff, 0xff, 0xff, 0xff}, nil)
	f.Add(q)
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := fuzzprog.NewRunner(t, "default", int64(t0)*1e6)
		db := fr.DB
		m := NewWithLimits(db, Limits{})
		if err := m.Load(db); err != nil {
			t.Fatal(err)
		}
		reads := func(m *Machine) []command.Result {
			var rs []command.Result
			rs = append(rs, fr.Run(m, wire.OpActionList, nil, nil, nil))
			rs = append(rs, fr.Run(m, wire.OpWorkerList, nil, nil, nil))
			for seq := range uint64(4) {
				rs = append(rs, fr.Run(m, wire.OpActionStatus, []byte(RunID(seq)), nil, nil))
			}
			return rs
		}
		for i, s := range fuzzprog.Decode(data) {
			op := fr.Step(m, s, fuzzOps)
			checkIndexes(t, m)
			fuzzprog.CheckReads(t, fmt.Sprintf("step %d (op 0x%02x)", i, uint8(op)), reads(m))
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
		fuzzprog.CheckSame(t, "after reload", before, after)
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
