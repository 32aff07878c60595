package action

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/internal/storage/storagetest"
	"github.com/floruntime/flo/wire"
)

// t0 is the base command time of these tests, in Unix ms.
const t0 = 1_700_000_000_000

// harness drives a Machine by hand: each write is applied into its own
// batch and committed, as the journal would.
type harness struct {
	t  testing.TB
	db *storage.DB
	m  *Machine
}

func setup(t testing.TB, l Limits) *harness {
	t.Helper()
	return setupOn(t, l, storagetest.Open(t, "", storage.Options{FS: vfs.NewMem()}))
}

// setupChurning is setup on a memtable of a few KiB, so that a short test
// goes through many flushes and compactions.
func setupChurning(t testing.TB, l Limits) *harness {
	t.Helper()
	return setupOn(t, l, storagetest.Open(t, "", storage.Options{FS: vfs.NewMem(), MemTableBytes: storagetest.ChurningMemTableBytes}))
}

func setupOn(t testing.TB, l Limits, db *storage.DB) *harness {
	t.Helper()
	m := NewWithLimits(db, l)
	if err := m.Load(db); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, db: db, m: m}
}

// reload builds a fresh machine from the committed state, as a restart does.
func (h *harness) reload() {
	h.t.Helper()
	m := NewWithLimits(h.db, h.m.limits)
	if err := m.Load(h.db); err != nil {
		h.t.Fatal(err)
	}
	h.m = m
}

type req struct {
	op    wire.Op
	ns    string
	key   string
	value []byte
	opts  wire.Options
}

func (h *harness) apply(ms int64, r req) command.Result {
	h.t.Helper()
	op := command.Op(r.op)
	if r.op == 0 {
		op = command.OpPulse
	}
	ns := r.ns
	if ns == "" {
		ns = "default"
	}
	cmd := &command.Command{Op: op, Time: ms * 1e6, Namespace: ns, Key: []byte(r.key), Value: r.value, Options: r.opts}
	b := h.db.NewBatch()
	res := h.m.Apply(cmd, b)
	if err := h.db.Commit(b, false); err != nil {
		h.t.Fatal(err)
	}
	h.m.Committed()
	return res
}

func (h *harness) read(ms int64, r req) command.Result {
	h.t.Helper()
	ns := r.ns
	if ns == "" {
		ns = "default"
	}
	cmd := &command.Command{Op: command.Op(r.op), Time: ms * 1e6, Namespace: ns, Key: []byte(r.key), Value: r.value}
	return h.m.Handlers()[r.op].Read(cmd)
}

func (h *harness) ok(ms int64, r req) command.Result {
	h.t.Helper()
	res := h.apply(ms, r)
	if res.Err != nil {
		h.t.Fatalf("%v at %d: %v", r.op, ms, res.Err)
	}
	return res
}

func registerReq(name string, timeoutMs, retries uint32) req {
	return req{op: wire.OpActionRegister, key: name, value: wire.AppendActionRegister(nil, &wire.ActionRegister{TimeoutMs: timeoutMs, MaxRetries: retries})}
}

func invokeReq(name, input string, priority uint8, idem string) req {
	inv := wire.ActionInvoke{Priority: priority, Input: []byte(input)}
	if idem != "" {
		inv.IdempotencyKey = []byte(idem)
	}
	return req{op: wire.OpActionInvoke, key: name, value: wire.AppendActionInvoke(nil, &inv)}
}

func awaitReq(worker string, types ...string) req {
	return req{op: wire.OpWorkerAwait, key: worker, value: wire.AppendTaskTypes(nil, types)}
}

func reportReq(op wire.Op, worker, id, data string, retry bool) req {
	r := req{op: op, key: worker, value: wire.AppendTaskReport(nil, &wire.TaskReport{TaskID: []byte(id), Data: []byte(data)})}
	if retry {
		r.opts = wire.AppendFlag(nil, wire.TagRetry)
	}
	return r
}

func touchReq(worker, id string, extendMs uint32) req {
	return req{op: wire.OpWorkerTouch, key: worker, value: wire.AppendWorkerTouch(nil, &wire.WorkerTouch{TaskID: []byte(id), ExtendMs: extendMs})}
}

func (h *harness) status(ms int64, id string) wire.RunStatus {
	h.t.Helper()
	res := h.read(ms, req{op: wire.OpActionStatus, key: id})
	if res.Err != nil {
		h.t.Fatalf("status %s: %v", id, res.Err)
	}
	s, err := wire.DecodeRunStatus(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func claimed(t testing.TB, res command.Result) wire.TaskAssignment {
	t.Helper()
	if res.Err != nil || res.Empty {
		t.Fatalf("await: err %v, empty %v", res.Err, res.Empty)
	}
	a, err := wire.DecodeTaskAssignment(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// dump returns every key and value under the action prefix.
func (h *harness) dump() string {
	var sb strings.Builder
	_ = h.db.Iterate([]byte{prefix}, []byte{prefix + 1}, false, func(k, v []byte) bool {
		fmt.Fprintf(&sb, "%x=%x\n", k, v)
		return true
	})
	return sb.String()
}

func statusOf(err error) wire.Status {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Status
	}
	return wire.StatusOK
}

func TestBackoff_DoublesAndCaps(t *testing.T) {
	t.Parallel()
	cases := []struct {
		attempt uint32
		want    int64
	}{{1, 1000}, {2, 2000}, {3, 4000}, {9, 256_000}, {10, 300_000}, {1000, 300_000}}
	for _, c := range cases {
		if got := backoff(BackoffBaseMs, c.attempt); got != c.want {
			t.Errorf("backoff(%d) = %d, want %d", c.attempt, got, c.want)
		}
	}
}

func TestRunID_Parse(t *testing.T) {
	t.Parallel()
	if seq, ok := parseRunID([]byte(RunID(42))); !ok || seq != 42 {
		t.Fatalf("parse %s = %d %v", RunID(42), seq, ok)
	}
	for _, bad := range []string{"", "run-", "run-0", "run-01", "run-x", "42", "run-99999999999999999999999", "run--1"} {
		if _, ok := parseRunID([]byte(bad)); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestMachine_LeaseExpiresAtDeadlineWhetherPulsedOrNot(t *testing.T) {
	t.Parallel()
	// Two machines see the same writes; only one gets a pulse when the
	// lease expires. After the next write both hold identical state.
	var dumps []string
	for _, pulse := range []bool{true, false} {
		h := setup(t, Limits{})
		h.ok(t0, registerReq("job", 100, 2))
		id := string(h.ok(t0, invokeReq("job", "in", 10, "")).Body)
		claimed(t, h.apply(t0+1, awaitReq("w", "job")))
		if pulse {
			res := h.ok(t0+150, req{})
			if len(res.Wake) != 0 {
				t.Fatalf("expiry woke %v before the backoff ended", res.Wake)
			}
		}
		// A read shows the expiry whether or not it was applied.
		s := h.status(t0+120, id)
		if s.State != wire.RunPending || string(s.Error) != TimedOutMessage || s.Attempt != 1 {
			t.Fatalf("status after expiry (pulse %v) = %+v", pulse, s)
		}
		// Claimable at deadline (t0+101) + backoff 1000.
		if res := h.apply(t0+1100, awaitReq("w", "job")); !res.Empty {
			t.Fatalf("claimed during the backoff (pulse %v)", pulse)
		}
		a := claimed(t, h.apply(t0+1101, awaitReq("w2", "job")))
		if a.Attempt != 2 {
			t.Fatalf("retry attempt = %d", a.Attempt)
		}
		dumps = append(dumps, h.dump())
	}
	if dumps[0] != dumps[1] {
		t.Fatalf("pulsed and lazy machines differ:\n%s\nvs\n%s", dumps[0], dumps[1])
	}
}

func TestMachine_FinalExpiryTimesOutAtDeadline(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	h.ok(t0, registerReq("job", 100, 0))
	id := string(h.ok(t0, invokeReq("job", "", 10, "")).Body)
	claimed(t, h.apply(t0+5, awaitReq("w", "job")))
	if due := h.m.NextDue(); due != (t0+105)*1e6 {
		t.Fatalf("NextDue = %d, want lease deadline", due)
	}
	h.ok(t0+500, req{})
	s := h.status(t0+500, id)
	if s.State != wire.RunTimedOut || s.CompletedMs != t0+105 || string(s.Error) != TimedOutMessage {
		t.Fatalf("status = %+v", s)
	}
	if res := h.apply(t0+501, touchReq("w", id, 1000)); statusOf(res.Err) != wire.StatusConflict {
		t.Fatalf("touch after timeout: %v", res.Err)
	}
	// The retention purge is now what is due.
	if due := h.m.NextDue(); due != (t0+105+RetentionMs)*1e6 {
		t.Fatalf("NextDue = %d, want retention", due)
	}
}

func TestMachine_PurgesTerminalRunsAfterRetention(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	h.ok(t0, registerReq("job", 1000, 0))
	id := string(h.ok(t0, invokeReq("job", "in", 10, "key")).Body)
	claimed(t, h.apply(t0, awaitReq("w", "job")))
	h.ok(t0+10, reportReq(wire.OpWorkerComplete, "w", id, "out", false))
	live := string(h.ok(t0+20, invokeReq("job", "", 10, "live-key")).Body)
	// One ms before the retention ends: kept, and the key still maps to it.
	h.ok(t0+10+RetentionMs-1, req{})
	if s := h.status(t0+10+RetentionMs-1, id); s.State != wire.RunCompleted || string(s.Output) != "out" {
		t.Fatalf("status = %+v", s)
	}
	if got := string(h.ok(t0+10+RetentionMs-1, invokeReq("job", "", 10, "key")).Body); got != id {
		t.Fatalf("idempotent invoke = %s, want %s", got, id)
	}
	h.ok(t0+10+RetentionMs, req{})
	if res := h.read(t0+10+RetentionMs, req{op: wire.OpActionStatus, key: id}); statusOf(res.Err) != wire.StatusNotFound {
		t.Fatalf("purged run status: %v", res.Err)
	}
	// The key is free again; the live run and its key are untouched.
	if got := string(h.ok(t0+10+RetentionMs, invokeReq("job", "", 10, "key")).Body); got == id {
		t.Fatal("purged key still maps to the old run")
	}
	if got := string(h.ok(t0+10+RetentionMs, invokeReq("job", "", 10, "live-key")).Body); got != live {
		t.Fatalf("live key = %s, want %s", got, live)
	}
	if h.m.terminalHead != 0 {
		t.Fatalf("terminal head = %d after purging everything", h.m.terminalHead)
	}
	// Nothing of the purged run is left in storage.
	for _, tag := range []byte{tagRun, tagInput, tagLive} {
		seq, _ := parseRunID([]byte(id))
		if _, err := h.db.Get(seqKey(tag, seq)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("key %c of the purged run: %v", tag, err)
		}
	}
}

func TestMachine_CapacityLimits(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{MaxActions: 2, MaxWorkers: 2, MaxLiveRuns: 2})
	h.ok(t0, registerReq("a", 1000, 0))
	h.ok(t0, registerReq("b", 1000, 0))
	if res := h.apply(t0, registerReq("c", 1000, 0)); statusOf(res.Err) != wire.StatusOverloaded {
		t.Fatalf("third action: %v", res.Err)
	}
	h.ok(t0, registerReq("a", 2000, 1)) // re-register at the limit is fine
	h.ok(t0, req{op: wire.OpActionDelete, key: "b"})
	h.ok(t0, registerReq("c", 1000, 0))

	h.ok(t0, req{op: wire.OpWorkerRegister, key: "w1", value: wire.AppendWorkerRegister(nil, &wire.WorkerRegister{TaskTypes: []string{"a"}})})
	h.apply(t0, awaitReq("w2", "a"))
	if res := h.apply(t0, awaitReq("w3", "a")); statusOf(res.Err) != wire.StatusOverloaded {
		t.Fatalf("third worker: %v", res.Err)
	}

	r1 := string(h.ok(t0, invokeReq("a", "", 10, "")).Body)
	h.ok(t0, invokeReq("a", "", 10, ""))
	if res := h.apply(t0, invokeReq("a", "", 10, "")); statusOf(res.Err) != wire.StatusOverloaded {
		t.Fatalf("third live run: %v", res.Err)
	}
	// Ending a run makes room.
	h.ok(t0, reportReq(wire.OpWorkerComplete, "w1", r1, "", false))
	h.ok(t0, invokeReq("a", "", 10, ""))
}

func TestMachine_ValidationEdges(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	bad := func(r req) {
		t.Helper()
		if res := h.apply(t0, r); statusOf(res.Err) != wire.StatusBadRequest {
			t.Errorf("%v %.20q: %v, want bad request", r.op, r.key, res.Err)
		}
	}
	good := func(r req) {
		t.Helper()
		if res := h.apply(t0, r); res.Err != nil {
			t.Errorf("%v %.20q: %v", r.op, r.key, res.Err)
		}
	}
	good(registerReq(strings.Repeat("a", MaxNameBytes), MaxLeaseMs, MaxRetriesLimit))
	bad(registerReq(strings.Repeat("a", MaxNameBytes+1), 1000, 0))
	bad(registerReq("t", MaxLeaseMs+1, 0))
	bad(registerReq("t", 0, 0))
	bad(registerReq("t", 1000, MaxRetriesLimit+1))
	bad(req{op: wire.OpActionRegister, key: "t", value: []byte{0, 1}})
	bad(req{op: wire.OpActionRegister, key: "w", value: wire.AppendActionRegister(nil, &wire.ActionRegister{Type: wire.ActionWASM, TimeoutMs: 1})})
	desc := func(n int) req {
		return req{op: wire.OpActionRegister, key: "d", value: wire.AppendActionRegister(nil, &wire.ActionRegister{TimeoutMs: 1, HasDescription: true, Description: make([]byte, n)})}
	}
	good(desc(MaxDescriptionBytes))
	bad(desc(MaxDescriptionBytes + 1))
	good(registerReq("job", 1000, 0))
	good(invokeReq("job", strings.Repeat("x", MaxInputBytes), 10, ""))
	bad(invokeReq("job", strings.Repeat("x", MaxInputBytes+1), 10, ""))
	good(invokeReq("job", "", 10, strings.Repeat("k", MaxNameBytes)))
	bad(invokeReq("job", "", 10, strings.Repeat("k", MaxNameBytes+1)))
	bad(req{op: wire.OpActionInvoke, key: "job", value: wire.AppendActionInvoke(nil, &wire.ActionInvoke{IdempotencyKey: []byte{}})})
	bad(req{op: wire.OpActionInvoke, key: "job", value: wire.AppendActionInvoke(nil, &wire.ActionInvoke{DelayMs: -1})})
	bad(req{op: wire.OpActionInvoke, key: "job", value: wire.AppendActionInvoke(nil, &wire.ActionInvoke{DelayMs: MaxDelayMs + 1})})
	bad(req{op: wire.OpActionInvoke, key: "job", value: wire.AppendActionInvoke(nil, &wire.ActionInvoke{HasCaller: true})})
	many := make([]string, MaxTaskTypes+1)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	good(awaitReq("w", many[:MaxTaskTypes]...))
	bad(awaitReq("w", many...))
	bad(awaitReq("w"))
	bad(req{op: wire.OpWorkerRegister, key: "w", value: wire.AppendWorkerRegister(nil, &wire.WorkerRegister{})})
	bad(awaitReq("w", ""))
	bad(awaitReq("w", strings.Repeat("t", MaxNameBytes+1)))
	lease := func(ms uint64) req {
		r := awaitReq("w", "job")
		r.opts = wire.AppendU64(nil, wire.TagTimeoutMs, ms)
		return r
	}
	bad(lease(MaxLeaseMs + 1))
	id := string(claimed(t, h.apply(t0, lease(MaxLeaseMs))).TaskID)
	bad(touchReq("w", id, 0))
	bad(touchReq("w", id, MaxLeaseMs+1))
	good(touchReq("w", id, MaxLeaseMs))
	bad(reportReq(wire.OpWorkerFail, "w", id, strings.Repeat("e", MaxErrorBytes+1), true))
	bad(reportReq(wire.OpWorkerComplete, "w", id, strings.Repeat("r", MaxInputBytes+1), true))
	good(reportReq(wire.OpWorkerFail, "w", id, strings.Repeat("e", MaxErrorBytes), false))
}

func TestMachine_WorkerUnhealthyAfterSilence(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	h.ok(t0, req{op: wire.OpWorkerRegister, key: "w", value: wire.AppendWorkerRegister(nil, &wire.WorkerRegister{TaskTypes: []string{"a"}})})
	state := func(ms int64) wire.WorkerState {
		res := h.read(ms, req{op: wire.OpWorkerList})
		l, err := wire.DecodeWorkerList(res.Body)
		if err != nil || len(l.Workers) != 1 {
			t.Fatalf("list = %+v, %v", l, err)
		}
		return l.Workers[0].State
	}
	if s := state(t0 + UnhealthyAfterMs - 1); s != wire.WorkerActive {
		t.Fatalf("state just before the limit = %v", s)
	}
	if s := state(t0 + UnhealthyAfterMs); s != wire.WorkerUnhealthy {
		t.Fatalf("state at the limit = %v", s)
	}
	h.apply(t0+UnhealthyAfterMs, awaitReq("w", "a")) // any call is a sign of life
	if s := state(t0 + UnhealthyAfterMs + 1); s != wire.WorkerActive {
		t.Fatalf("state after a call = %v", s)
	}
}

func TestMachine_ListLimitsClamp(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	for i := range ListLimitMax + 1 {
		h.ok(t0, registerReq(fmt.Sprintf("a%04d", i), 1000, 0))
	}
	count := func(limit uint32) (int, bool) {
		res := h.read(t0, req{op: wire.OpActionList, value: wire.AppendActionListRequest(nil, &wire.ActionListRequest{Limit: limit})})
		l, err := wire.DecodeActionList(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Entries), l.HasMore
	}
	for _, c := range []struct {
		limit uint32
		want  int
	}{{0, ListLimitDefault}, {1, 1}, {ListLimitMax, ListLimitMax}, {ListLimitMax + 1, ListLimitMax}} {
		if n, more := count(c.limit); n != c.want || !more {
			t.Errorf("limit %d: %d entries (more %v), want %d", c.limit, n, more, c.want)
		}
	}
}

// checkIndexes verifies invariant 2 of the package doc.
func checkIndexes(t *testing.T, m *Machine) {
	t.Helper()
	inReady := map[uint64]bool{}
	for _, q := range m.ready {
		for _, r := range q.runs {
			inReady[r.seq] = true
		}
	}
	inTimers := map[uint64]bool{}
	for _, r := range m.timers {
		inTimers[r.seq] = true
	}
	for seq, r := range m.runs {
		if inReady[seq] == inTimers[seq] {
			t.Fatalf("run %d (%v) in ready %v, in timers %v", seq, r.state, inReady[seq], inTimers[seq])
		}
		if r.state == wire.RunRunning && !inTimers[seq] {
			t.Fatalf("running run %d not in the timer heap", seq)
		}
	}
	if len(inReady)+len(inTimers) != len(m.runs) {
		t.Fatalf("indexes hold %d runs, %d are live", len(inReady)+len(inTimers), len(m.runs))
	}
}

func TestMachine_AwaitBatchLimits(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	h.ok(t0, registerReq("job", 1000, 0))
	for range MaxAwaitBatch + 5 {
		h.ok(t0, invokeReq("job", "", 10, ""))
	}
	batch := func(count uint32) []wire.TaskAssignment {
		r := awaitReq("w", "job")
		r.opts = wire.AppendU32(nil, wire.TagCount, count)
		res := h.ok(t0, r)
		tasks, err := wire.DecodeTaskBatch(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return tasks
	}
	if n := len(batch(MaxAwaitBatch + 1)); n != MaxAwaitBatch {
		t.Fatalf("COUNT over the limit claimed %d", n)
	}
	if n := len(batch(0)); n != 1 {
		t.Fatalf("COUNT 0 claimed %d", n)
	}
	if n := len(batch(10)); n != 4 {
		t.Fatalf("claimed %d of the 4 left", n)
	}
	res := h.apply(t0, func() req { r := awaitReq("w", "job"); r.opts = wire.AppendU32(nil, wire.TagCount, 5); return r }())
	if !res.Empty || string(res.Body) != "\x00\x00\x00\x00" {
		t.Fatalf("empty batch = %+v", res)
	}
	// A batch stops once its inputs pass MaxAwaitBatchBytes.
	big := strings.Repeat("x", MaxAwaitBatchBytes/2)
	for range 3 {
		h.ok(t0, invokeReq("job", big, 10, ""))
	}
	if n := len(batch(3)); n != 2 {
		t.Fatalf("claimed %d large tasks, want 2", n)
	}
}

// An await with completions is refused whole when it is malformed or lacks
// COUNT: nothing is completed.
func TestMachine_AwaitCompletionsRefusedWhole(t *testing.T) {
	t.Parallel()
	h := setup(t, Limits{})
	h.ok(t0, registerReq("job", 60_000, 0))
	id := string(h.ok(t0, invokeReq("job", "in", 0, "")).Body)
	claimedID := string(claimed(t, h.ok(t0, awaitReq("w", "job"))).TaskID)
	if claimedID != id {
		t.Fatalf("claimed %s, invoked %s", claimedID, id)
	}
	withCompletions := func(count bool, value []byte) req {
		r := req{op: wire.OpWorkerAwait, key: "w", value: value, opts: wire.AppendFlag(nil, wire.TagCompletions)}
		if count {
			r.opts = wire.AppendU32(r.opts, wire.TagCount, 10)
		}
		return r
	}
	value := wire.AppendAwaitCompletions(wire.AppendTaskTypes(nil, []string{"job"}), []wire.TaskReport{{TaskID: []byte(id), Data: []byte("out")}})
	for name, r := range map[string]req{
		"no COUNT":  withCompletions(false, value),
		"truncated": withCompletions(true, value[:len(value)-1]),
	} {
		if res := h.apply(t0+1, r); wire.StatusOf(res.Err) != wire.StatusBadRequest {
			t.Fatalf("%s: %v", name, res.Err)
		}
		if st := h.status(t0+1, id); st.State != wire.RunRunning {
			t.Fatalf("%s: the run is %v", name, st.State)
		}
	}
	res := h.ok(t0+2, withCompletions(true, value))
	if tasks, statuses, err := wire.DecodeTaskBatchStatuses(res.Body); err != nil || len(tasks) != 0 || len(statuses) != 1 || statuses[0] != wire.StatusOK {
		t.Fatalf("await with completions = %v %v, %v", tasks, statuses, err)
	}
	if st := h.status(t0+2, id); st.State != wire.RunCompleted || string(st.Output) != "out" {
		t.Fatalf("after the completion: %+v", st)
	}
}

// TestAwait_WithCompletionsNeverWaits: an await carrying completions gets
// no wait keys, so the node answers its first attempt even with BLOCK_MS
// (a retry would apply the completions again).
func TestAwait_WithCompletionsNeverWaits(t *testing.T) {
	plain := &command.Command{Namespace: "ns", Value: wire.AppendTaskTypes(nil, []string{"t"})}
	if keys := awaitWaitKeys(plain); len(keys) != 1 {
		t.Fatalf("plain await keys %v", keys)
	}
	with := &command.Command{Namespace: "ns", Value: plain.Value, Options: wire.AppendFlag(nil, wire.TagCompletions)}
	if keys := awaitWaitKeys(with); len(keys) != 0 {
		t.Fatalf("await with completions waits on %v", keys)
	}
}

// TestMachine_ReadsWaitForTheGroupToCommit: a status read that arrives
// while a group with an invoke is applied but not committed answers after
// the commit, never with the run storage does not have yet.
func TestMachine_ReadsWaitForTheGroupToCommit(t *testing.T) {
	h := setup(t, Limits{})
	h.ok(1, registerReq("a", 1000, 0))
	b := h.db.NewBatch() // a group in progress
	inv := invokeReq("a", "", 10, "")
	res := h.m.Apply(&command.Command{Op: command.Op(inv.op), Time: 2e6, Namespace: "default", Key: []byte(inv.key), Value: inv.value}, b)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	answered := make(chan command.Result, 1)
	go func() { answered <- h.read(3, req{op: wire.OpActionStatus, key: "run-1"}) }()
	select {
	case r := <-answered:
		t.Fatalf("status answered (err %v) while the invoke was not committed", r.Err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := h.db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	h.m.Committed()
	if r := <-answered; r.Err != nil {
		t.Fatalf("status after the commit: %v", r.Err)
	}
}

// TestMachine_ReregisterWithATypeListedTwiceKeepsItOnce: a known worker
// registered again with ["a", "a"] lists a once.
func TestMachine_ReregisterWithATypeListedTwiceKeepsItOnce(t *testing.T) {
	h := setup(t, Limits{})
	reg := func(types ...string) {
		h.ok(1, req{op: wire.OpWorkerRegister, key: "w", value: wire.AppendWorkerRegister(nil, &wire.WorkerRegister{TaskTypes: types})})
	}
	reg("a")
	reg("a", "a")
	for _, check := range []func(){func() {}, h.reload} {
		check()
		if w := h.m.workers["default\x00w"]; w == nil || len(w.types) != 1 {
			t.Fatalf("worker types after re-registering [a a]: %+v", w)
		}
	}
}

// TestMachine_RefusedReportStillRefreshesLastSeenDurably: a complete, fail
// or touch that is refused (unknown or ended task, another holder) still
// names the worker, so its last-seen time is refreshed, and in storage: a
// restart shows the same last-seen time as before it.
func TestMachine_RefusedReportStillRefreshesLastSeenDurably(t *testing.T) {
	for _, r := range []req{
		reportReq(wire.OpWorkerComplete, "w", "run-99", "", false),
		reportReq(wire.OpWorkerFail, "w", "run-99", "", true),
		touchReq("w", "run-99", 1000),
	} {
		h := setup(t, Limits{})
		h.ok(t0, req{op: wire.OpWorkerRegister, key: "w", value: wire.AppendWorkerRegister(nil, &wire.WorkerRegister{TaskTypes: []string{"a"}})})
		if res := h.apply(t0+60_000, r); statusOf(res.Err) != wire.StatusNotFound {
			t.Fatalf("%v of an unknown task: %v", r.op, res.Err)
		}
		for _, check := range []func(){func() {}, h.reload} {
			check()
			res := h.read(t0+100_000, req{op: wire.OpWorkerList})
			l, err := wire.DecodeWorkerList(res.Body)
			if err != nil || len(l.Workers) != 1 {
				t.Fatalf("list = %+v, %v", l, err)
			}
			if w := l.Workers[0]; w.LastSeenMs != t0+60_000 || w.State != wire.WorkerActive {
				t.Fatalf("%v: worker after a refused report = last seen %d, %v", r.op, w.LastSeenMs-t0, w.State)
			}
		}
	}
}
