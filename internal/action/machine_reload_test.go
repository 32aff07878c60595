package action

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/wire"
)

// TestMachine_ReloadedAnswersLikeNeverReloaded drives four machines with
// one seeded stream of writes under a moving clock (short leases, backoffs,
// delays, day-long jumps that reach retention). The second is rebuilt from
// storage (Load) at random points; the third is pulsed at every timer's due
// time (the others notice timers only when the next write comes); the
// fourth is a twin of the first. After every write all must give the same
// reply, the twins the same wake-ups (a reloaded machine may wake parked
// calls spuriously, which is harmless), every read (status of every run
// ever issued, at the write's time and a little later; action and worker
// lists) must agree, and storage must end byte-identical.
func TestMachine_ReloadedAnswersLikeNeverReloaded(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 2; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			reloadedAnswersLikeNeverReloaded(t, seed, 800)
		})
	}
}

func reloadedAnswersLikeNeverReloaded(t *testing.T, seed uint64, steps int) {
	lim := Limits{MaxLiveRuns: 40}
	// b, the machine that reloads, keeps its storage churning through
	// flushes and compactions.
	a, b, c, twin := setup(t, lim), setupChurning(t, lim), setup(t, lim), setup(t, lim)
	rng := rand.New(rand.NewPCG(seed, 99))
	types := []string{"a", "b", "c"}
	workers := []string{"w1", "w2", "w3", "w4"}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	var ids []string
	type claim struct{ id, worker string }
	var claims []claim
	now := int64(t0)
	for i := range steps {
		switch n := rng.IntN(100); {
		case n < 2:
			now += RetentionMs/2 + int64(rng.IntN(5000))
		case n < 15:
			now += int64(rng.IntN(10_000))
		default:
			now += int64(rng.IntN(200))
		}
		var r req
		switch n := rng.IntN(100); {
		case n < 5:
			r = registerReq(pick(types), uint32(50+rng.IntN(2000)), uint32(rng.IntN(4)))
		case n < 7:
			r = req{op: wire.OpActionDelete, key: pick(types)}
		case n < 9:
			r = req{op: wire.OpWorkerRegister, key: pick(workers), value: wire.AppendWorkerRegister(nil, &wire.WorkerRegister{TaskTypes: types[:1+rng.IntN(3)]})}
		case n < 32:
			inv := wire.ActionInvoke{Priority: uint8(rng.IntN(3) * 10), Input: []byte(fmt.Sprint("in", i))}
			if rng.IntN(4) == 0 {
				inv.IdempotencyKey = []byte(fmt.Sprint("k", rng.IntN(20)))
			}
			if rng.IntN(4) == 0 {
				inv.DelayMs = int64(rng.IntN(5000))
			}
			r = req{op: wire.OpActionInvoke, key: pick(types), value: wire.AppendActionInvoke(nil, &inv)}
		case n < 55:
			r = awaitReq(pick(workers), types[:1+rng.IntN(3)]...)
			if rng.IntN(3) == 0 {
				r.opts = wire.AppendU64(r.opts, wire.TagTimeoutMs, uint64(rng.IntN(1000)))
			}
			if rng.IntN(3) == 0 {
				r.opts = wire.AppendU32(r.opts, wire.TagCount, uint32(rng.IntN(4)))
			}
		case n < 90 && len(ids) > 0:
			var c claim
			if len(claims) > 0 && rng.IntN(5) != 0 {
				c = claims[max(0, len(claims)-1-rng.IntN(5))]
			} else {
				c = claim{id: ids[rng.IntN(len(ids))], worker: pick(workers)}
			}
			switch rng.IntN(5) {
			case 0:
				r = reportReq(wire.OpWorkerComplete, c.worker, c.id, "out", false)
			case 1:
				r = reportReq(wire.OpWorkerFail, c.worker, c.id, fmt.Sprint("err", i), rng.IntN(4) != 0)
			case 2:
				// Results riding on the worker's next claim (TaskWorker's
				// way): up to three of its recent claims, maybe claiming none.
				var reps []wire.TaskReport
				for _, x := range claims[max(0, len(claims)-3):] {
					if x.worker == c.worker || len(reps) == 0 {
						reps = append(reps, wire.TaskReport{TaskID: []byte(x.id), Data: []byte(fmt.Sprint("out", i))})
					}
				}
				r = req{op: wire.OpWorkerAwait, key: c.worker, value: wire.AppendAwaitCompletions(wire.AppendTaskTypes(nil, types[:1+rng.IntN(3)]), reps),
					opts: wire.AppendU32(wire.AppendFlag(nil, wire.TagCompletions), wire.TagCount, uint32(rng.IntN(3)))}
			default:
				r = touchReq(c.worker, c.id, uint32(50+rng.IntN(1000)))
			}
		default:
			r = req{} // pulse
		}
		if r.op != 0 && rng.IntN(5) == 0 {
			r.ns = "other"
		}
		// Reads check the newest runs and a sample of older ones.
		sample := ids[max(0, len(ids)-10):]
		for range min(len(ids), 20) {
			sample = append(sample, ids[rng.IntN(len(ids))])
		}
		if rng.IntN(10) == 0 {
			b.reload()
			compareReads(t, i, "after reload", a, b, sample, now)
		}
		full := rng.IntN(4) == 0
		// c is pulsed when each timer is due, unless a purge is due by then
		// (purges happen only on the stream's own pulses, so that all three
		// machines keep the same retained runs).
		for len(c.m.timers) > 0 {
			due := c.m.timers[0].due()
			if due > now || c.m.terminalHead != 0 && c.m.terminalHead+RetentionMs <= due {
				break
			}
			c.ok(due, req{})
		}
		ra, rb, rc, rt := a.apply(now, r), b.apply(now, r), c.apply(now, r), twin.apply(now, r)
		x := fmt.Sprintf("%x|%v|%v", ra.Body, ra.Err, ra.Empty)
		for _, res := range []command.Result{rb, rc, rt} {
			if y := fmt.Sprintf("%x|%v|%v", res.Body, res.Err, res.Empty); x != y {
				t.Fatalf("step %d (%v at %d): replies differ:\n%s\n%s", i, r.op, now, x, y)
			}
		}
		if !slices.Equal(ra.Wake, rt.Wake) {
			t.Fatalf("step %d (%v at %d): twins wake %v and %v", i, r.op, now, ra.Wake, rt.Wake)
		}
		if ra.Err == nil && r.op == wire.OpActionInvoke && !slices.Contains(ids, string(ra.Body)) {
			ids = append(ids, string(ra.Body))
		}
		if ra.Err == nil && r.op == wire.OpWorkerAwait && !ra.Empty {
			if _, ok := r.opts.Uint(wire.TagCount); ok {
				tasks, _ := wire.DecodeTaskBatch(ra.Body)
				for _, tk := range tasks {
					claims = append(claims, claim{id: string(tk.TaskID), worker: r.key})
				}
			} else {
				tk, _ := wire.DecodeTaskAssignment(ra.Body)
				claims = append(claims, claim{id: string(tk.TaskID), worker: r.key})
			}
		}
		if da, db := a.m.NextDue(), b.m.NextDue(); da != db {
			t.Fatalf("step %d (%v at %d): NextDue %d vs %d after reload", i, r.op, now, da, db)
		}
		if full {
			later := now + int64(rng.IntN(3000))
			compareReads(t, i, "", a, b, sample, now)
			compareReads(t, i, "later", a, b, sample, later)
			compareReads(t, i, "pulsed", a, c, sample, now)
			compareReads(t, i, "pulsed later", a, c, sample, later)
		}
		checkIndexes(t, a.m)
		checkIndexes(t, b.m)
		checkIndexes(t, c.m)
	}
	if d := a.dump(); d != b.dump() || d != c.dump() || d != twin.dump() {
		t.Fatal("storage differs")
	}
}

// compareReads compares every read two machines answer at ms. A worker's
// last-seen time (and the health computed from it) may differ after a
// reload by design: an await that claims nothing refreshes it in memory
// only.
func compareReads(t *testing.T, step int, when string, a, b *harness, ids []string, ms int64) {
	t.Helper()
	for _, ns := range []string{"default", "other"} {
		for _, id := range ids {
			ra := a.read(ms, req{op: wire.OpActionStatus, ns: ns, key: id})
			rb := b.read(ms, req{op: wire.OpActionStatus, ns: ns, key: id})
			if x, y := fmt.Sprintf("%x|%v|%v", ra.Body, ra.Err, ra.Empty), fmt.Sprintf("%x|%v|%v", rb.Body, rb.Err, rb.Empty); x != y {
				sa, _ := wire.DecodeRunStatus(ra.Body)
				sb, _ := wire.DecodeRunStatus(rb.Body)
				t.Fatalf("step %d %s: status %s/%s at %d differs:\n%+v %v\n%+v %v", step, when, ns, id, ms, sa, ra.Err, sb, rb.Err)
			}
		}
		list := wire.AppendActionListRequest(nil, &wire.ActionListRequest{Limit: ListLimitMax})
		if x, y := a.read(ms, req{op: wire.OpActionList, ns: ns, value: list}), b.read(ms, req{op: wire.OpActionList, ns: ns, value: list}); string(x.Body) != string(y.Body) {
			t.Fatalf("step %d %s: action lists differ", step, when)
		}
		wa := workersSansLastSeen(t, a.read(ms, req{op: wire.OpWorkerList, ns: ns, value: list}).Body)
		wb := workersSansLastSeen(t, b.read(ms, req{op: wire.OpWorkerList, ns: ns, value: list}).Body)
		if !bytes.Equal(wa, wb) {
			t.Fatalf("step %d %s: worker lists at %d differ:\n%x\n%x", step, when, ms, wa, wb)
		}
	}
}

// TestMachine_InputsInEveryLayout: a small input rides in the run's live
// marker, a large one has a key of its own, and a marker written before
// inputs rode in it (empty, input under its own key) still loads. Each
// input reaches the worker after a reload, and a finished run leaves no
// marker or input behind.
func TestMachine_InputsInEveryLayout(t *testing.T) {
	t.Parallel()
	h := setupChurning(t, Limits{})
	h.ok(t0, registerReq("job", 30_000, 3))
	inputs := map[string]string{}
	for _, in := range []string{"small", strings.Repeat("L", inputCacheBytes+1), "legacy", ""} {
		id := string(h.ok(t0, invokeReq("job", in, 10, "")).Body)
		inputs[id] = in
	}
	hasKey := func(tag byte, id string) bool {
		seq, _ := parseRunID([]byte(id))
		_, err := h.db.Get(seqKey(tag, seq))
		return err == nil
	}
	for id, in := range inputs {
		if big := len(in) > inputCacheBytes; hasKey(tagInput, id) != big {
			t.Fatalf("input of %d bytes: own key %v", len(in), !big)
		}
		if !hasKey(tagLive, id) {
			t.Fatalf("run %s has no live marker", id)
		}
		if in == "legacy" {
			seq, _ := parseRunID([]byte(id))
			b := h.db.NewBatch()
			b.Set(seqKey(tagInput, seq), []byte(in))
			// Delete first: the marker must look set once, as an old
			// server wrote it, for the DeleteOnce that ends the run.
			b.Delete(seqKey(tagLive, seq))
			b.Set(seqKey(tagLive, seq), nil)
			if err := h.db.Commit(b, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.reload()
	for range inputs {
		a := claimed(t, h.ok(t0+1, awaitReq("w", "job")))
		if want := inputs[string(a.TaskID)]; string(a.Input) != want {
			t.Fatalf("run %s: input %q, want %q", a.TaskID, a.Input, want)
		}
		h.ok(t0+2, reportReq(wire.OpWorkerComplete, "w", string(a.TaskID), "out", false))
	}
	for id := range inputs {
		if hasKey(tagInput, id) || hasKey(tagLive, id) {
			t.Fatalf("finished run %s left its input or marker", id)
		}
		if s := h.status(t0+3, id); s.State != wire.RunCompleted {
			t.Fatalf("run %s: %v", id, s.State)
		}
	}
	// More runs, so that the memtable holding these is flushed and
	// compacted: a DeleteOnce of a key never written, or written twice,
	// is reported then (and fails the test at cleanup).
	for i := range 200 {
		id := string(h.ok(t0+4, invokeReq("job", strings.Repeat("f", 100), 10, "")).Body)
		h.ok(t0+4, awaitReq("w", "job"))
		h.ok(t0+4, reportReq(wire.OpWorkerComplete, "w", id, fmt.Sprint(i), false))
	}
	h.reload()
}
