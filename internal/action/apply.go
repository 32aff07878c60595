package action

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// txn is the context of one Apply: the machine (locked), the batch, the
// command time in ms and the keys to wake once the batch is durable. A
// storage failure is kept in err and turns the reply into INTERNAL_ERROR;
// the node stops if the commit itself fails.
type txn struct {
	m    *Machine
	b    storage.Batch
	now  int64
	ns   string
	wake []string
	err  error
}

func badRequest(format string, args ...any) command.Result {
	return command.Fail(wire.Errorf(wire.StatusBadRequest, format, args...))
}

func checkName(what string, name []byte) *wire.Error {
	switch {
	case len(name) == 0:
		return wire.Errorf(wire.StatusBadRequest, "%s must not be empty", what)
	case len(name) > MaxNameBytes:
		return wire.Errorf(wire.StatusBadRequest, "%s is %d bytes, over the %d-byte limit", what, len(name), MaxNameBytes)
	}
	return nil
}

// advance applies every timer due at t.now, in due order: ended backoffs
// make runs claimable; expired leases are failed attempts (at their
// deadline, not at t.now).
func (t *txn) advance() {
	m := t.m
	for len(m.timers) > 0 && m.timers[0].due() <= t.now {
		r := m.timers[0]
		m.timers.Remove(r)
		if r.state == wire.RunRunning {
			t.expireLease(r)
		} else {
			t.makeReady(r)
		}
	}
}

// expireLease ends r's attempt as failed at its lease deadline.
func (t *txn) expireLease(r *run) {
	at := r.leaseMs
	t.release(r)
	r.hasErr, r.errMsg = true, []byte(TimedOutMessage)
	if r.attempt <= r.maxRetries {
		r.state = wire.RunPending
		r.readyMs = at + backoff(r.backoffMs, r.attempt)
		t.schedule(r)
		t.putRun(r)
		return
	}
	t.end(r, wire.RunTimedOut, at)
}

// schedule places a pending run: in its ready heap if claimable now,
// otherwise in the timer heap until it is.
func (t *txn) schedule(r *run) {
	if r.readyMs <= t.now {
		t.makeReady(r)
	} else {
		t.m.timers.Add(r)
	}
}

// makeReady puts a pending run in its ready heap and wakes its awaits.
func (t *txn) makeReady(r *run) {
	key := r.ns + "\x00" + r.action
	q := t.m.ready[key]
	if q == nil {
		q = &readyQueue{wake: WaitKey(r.ns, r.action)}
		t.m.ready[key] = q
	}
	q.push(r)
	t.wakeKey(q.wake)
}

func (t *txn) wakeKey(k string) {
	for _, w := range t.wake {
		if w == k {
			return
		}
	}
	t.wake = append(t.wake, k)
}

// unlink takes a live run out of whichever heap holds it.
func (t *txn) unlink(r *run) {
	if r.q != nil {
		q := r.q
		q.remove(r)
		if len(q.runs) == 0 {
			delete(t.m.ready, r.ns+"\x00"+r.action)
		}
	}
	if r.ti >= 0 {
		t.m.timers.Remove(r)
	}
}

// release drops the holder's claim on r.
func (t *txn) release(r *run) {
	if r.holder == "" {
		return
	}
	if w := t.m.workers[r.ns+"\x00"+r.holder]; w != nil {
		delete(w.held, r.seq)
	}
	r.holder = ""
}

// end makes a live run terminal at endedMs and moves it to storage only.
func (t *txn) end(r *run, state wire.RunState, endedMs int64) {
	t.unlink(r)
	t.release(r)
	r.state, r.endedMs = state, endedMs
	r.input = nil
	delete(t.m.runs, r.seq)
	t.putRun(r)
	t.b.DeleteOnce(seqKey(tagLive, r.seq))
	if r.inputKey {
		t.b.DeleteOnce(seqKey(tagInput, r.seq))
	}
	t.b.Set(retentionKey(endedMs, r.seq), nil)
	t.wakeKey(RunWaitKey(r.ns, r.seq))
	if t.m.terminalHead == 0 || endedMs < t.m.terminalHead {
		t.m.terminalHead = endedMs
	}
}

func (t *txn) putRun(r *run) { t.b.Set(seqKey(tagRun, r.seq), r.encode()) }

// purge deletes terminal runs (and their idempotency keys) retained for
// RetentionMs, at most purgeBatch per call.
func (t *txn) purge() {
	m := t.m
	if m.terminalHead == 0 || t.now < m.terminalHead+RetentionMs {
		return
	}
	lo := []byte{prefix, tagRetention}
	hi := retentionKey(t.now-RetentionMs+1, 0)
	var keys [][]byte
	if err := t.b.Iterate(lo, hi, false, func(k, _ []byte) bool {
		keys = append(keys, bytes.Clone(k))
		return len(keys) < purgeBatch
	}); err != nil {
		t.err = err
		return
	}
	// The newest run's record is what Load derives the run counter from;
	// before purging (possibly that run), persist the counter itself.
	t.b.Set(metaKey(), binary.LittleEndian.AppendUint64([]byte{recordFormat}, m.nextSeq))
	for _, k := range keys {
		t.b.Delete(k)
		if len(k) != 18 {
			continue
		}
		seq := binary.BigEndian.Uint64(k[10:])
		rk := seqKey(tagRun, seq)
		v, err := t.b.Get(rk)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			t.err = err
			return
		}
		t.b.Delete(rk)
		if r, err := decodeRun(seq, v); err == nil && r.idem != nil {
			ik := idemKey(r.ns, r.action, r.idem)
			if cur, err := t.b.Get(ik); err == nil && len(cur) == 8 && binary.LittleEndian.Uint64(cur) == seq {
				t.b.Delete(ik)
			}
		}
	}
	m.terminalHead = 0
	_ = t.b.Iterate(lo, storage.PrefixEnd(lo), false, func(k, _ []byte) bool {
		if len(k) == 18 {
			m.terminalHead = int64(binary.BigEndian.Uint64(k[2:10]))
		}
		return false
	})
}

func (t *txn) register(cmd *command.Command) command.Result {
	if err := checkName("action name", cmd.Key); err != nil {
		return command.Fail(err)
	}
	reg, err := wire.DecodeActionRegister(cmd.Value)
	switch {
	case err != nil:
		return badRequest("malformed action register value: %v", err)
	case reg.Type == wire.ActionWASM:
		return badRequest("WASM actions are not supported; register a USER action run by workers")
	case reg.Type != wire.ActionUser:
		return badRequest("unknown action type %d", reg.Type)
	case reg.HasWASMFields:
		return badRequest("WASM and trigger fields are not supported")
	case reg.TimeoutMs == 0:
		return badRequest("timeout_ms must be greater than 0")
	case reg.TimeoutMs > MaxLeaseMs:
		return badRequest("timeout_ms %d is over the limit of %d", reg.TimeoutMs, MaxLeaseMs)
	case reg.MaxRetries > MaxRetriesLimit:
		return badRequest("max_retries %d is over the limit of %d", reg.MaxRetries, MaxRetriesLimit)
	case len(reg.Description) > MaxDescriptionBytes:
		return badRequest("description is %d bytes, over the %d-byte limit", len(reg.Description), MaxDescriptionBytes)
	}
	name := string(cmd.Key)
	old := t.m.actions[t.ns][name]
	a := &actionRec{
		name: name, typ: reg.Type, timeoutMs: reg.TimeoutMs, maxRetries: reg.MaxRetries,
		version: 1, createdMs: t.now, updatedMs: t.now, hasDesc: reg.HasDescription,
	}
	if reg.HasDescription {
		a.desc = bytes.Clone(reg.Description)
		if a.desc == nil {
			a.desc = []byte{}
		}
	}
	if old != nil {
		a.version, a.createdMs = old.version+1, old.createdMs
	} else if t.m.nActions >= t.m.limits.MaxActions {
		return command.Fail(wire.Errorf(wire.StatusOverloaded, "too many actions (limit %d)", t.m.limits.MaxActions))
	}
	t.m.putAction(t.ns, a)
	t.b.Set(nsKey(tagAction, t.ns, cmd.Key), a.encode())
	return command.Result{}
}

func (t *txn) deleteAction(cmd *command.Command) command.Result {
	if err := checkName("action name", cmd.Key); err != nil {
		return command.Fail(err)
	}
	if byName := t.m.actions[t.ns]; byName[string(cmd.Key)] != nil {
		delete(byName, string(cmd.Key))
		if len(byName) == 0 {
			delete(t.m.actions, t.ns)
		}
		t.m.nActions--
		t.b.Delete(nsKey(tagAction, t.ns, cmd.Key))
	}
	return command.Result{}
}

func (t *txn) invoke(cmd *command.Command) command.Result {
	if err := checkName("action name", cmd.Key); err != nil {
		return command.Fail(err)
	}
	a := t.m.actions[t.ns][string(cmd.Key)]
	if a == nil {
		return command.Fail(wire.Errorf(wire.StatusNotFound, "action %q not found", cmd.Key))
	}
	inv, err := wire.DecodeActionInvoke(cmd.Value)
	switch {
	case err != nil:
		return badRequest("malformed action invoke value: %v", err)
	case inv.HasCaller:
		return badRequest("invoke with a caller is not supported")
	case inv.DelayMs < 0 || inv.DelayMs > MaxDelayMs:
		return badRequest("delay_ms %d is out of range 0..%d", inv.DelayMs, MaxDelayMs)
	case len(inv.Input) > MaxInputBytes:
		return badRequest("input is %d bytes, over the %d-byte limit", len(inv.Input), MaxInputBytes)
	}
	if inv.IdempotencyKey != nil {
		if err := checkName("idempotency key", inv.IdempotencyKey); err != nil {
			return command.Fail(err)
		}
		if seq, ok := t.idempotent(a.name, inv.IdempotencyKey); ok || t.err != nil {
			return command.Reply([]byte(RunID(seq)))
		}
	}
	if len(t.m.runs) >= t.m.limits.MaxLiveRuns {
		return command.Fail(wire.Errorf(wire.StatusOverloaded, "too many unfinished runs (limit %d)", t.m.limits.MaxLiveRuns))
	}
	t.m.nextSeq++
	seq := t.m.nextSeq
	r := &run{
		seq: seq, ns: t.ns, action: a.name, state: wire.RunPending, priority: inv.Priority,
		timeoutMs: a.timeoutMs, maxRetries: a.maxRetries, backoffMs: BackoffBaseMs,
		createdMs: t.now, readyMs: t.now + inv.DelayMs, inputLen: uint32(len(inv.Input)), ti: -1,
	}
	if inv.IdempotencyKey != nil {
		r.idem = bytes.Clone(inv.IdempotencyKey)
		t.b.Set(idemKey(t.ns, a.name, r.idem), binary.LittleEndian.AppendUint64(nil, seq))
	}
	t.m.runs[seq] = r
	t.putRun(r)
	// A small input rides in the live marker (and stays in memory, as the
	// marker's tail); a large one has a key of its own, read when the run
	// is claimed.
	live := []byte{recordFormat}
	if len(inv.Input) <= inputCacheBytes {
		live = append(live, inv.Input...)
		r.input = live[1:]
	} else {
		r.inputKey = true
		t.b.Set(seqKey(tagInput, seq), inv.Input)
	}
	t.b.Set(seqKey(tagLive, seq), live)
	t.schedule(r)
	return command.Reply([]byte(RunID(seq)))
}

// idempotent returns the run an idempotency key already maps to, if that
// run is still retained.
func (t *txn) idempotent(action string, key []byte) (uint64, bool) {
	v, err := t.b.Get(idemKey(t.ns, action, key))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, false
	}
	if err != nil {
		t.err = err
		return 0, false
	}
	if len(v) != 8 {
		t.err = errCorrupt
		return 0, false
	}
	seq := binary.LittleEndian.Uint64(v)
	if t.m.runs[seq] != nil {
		return seq, true
	}
	if _, err := t.b.Get(seqKey(tagRun, seq)); err == nil {
		return seq, true
	} else if !errors.Is(err, storage.ErrNotFound) {
		t.err = err
	}
	return 0, false
}

// worker returns the worker named by the command key. With create, an
// unknown worker is registered implicitly (nil and an error result when
// over the limit); without, nil for an unknown worker.
func (t *txn) worker(id []byte, create bool) (*worker, *wire.Error) {
	key := t.ns + "\x00" + string(id)
	w := t.m.workers[key]
	if w == nil && create {
		if len(t.m.workers) >= t.m.limits.MaxWorkers {
			return nil, wire.Errorf(wire.StatusOverloaded, "too many workers (limit %d)", t.m.limits.MaxWorkers)
		}
		w = &worker{ns: t.ns, id: string(id), registeredMs: t.now, held: map[uint64]*run{}}
		t.m.workers[key] = w
	}
	if w != nil {
		w.lastSeenMs = t.now
	}
	return w, nil
}

func (t *txn) putWorker(w *worker) {
	t.b.Set(nsKey(tagWorker, w.ns, []byte(w.id)), w.encode())
}

func checkTaskTypes(types []string) *wire.Error {
	if len(types) > MaxTaskTypes {
		return wire.Errorf(wire.StatusBadRequest, "%d task types, over the limit of %d", len(types), MaxTaskTypes)
	}
	for _, tt := range types {
		if err := checkName("task type", []byte(tt)); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) registerWorker(cmd *command.Command) command.Result {
	if err := checkName("worker id", cmd.Key); err != nil {
		return command.Fail(err)
	}
	reg, err := wire.DecodeWorkerRegister(cmd.Value)
	if err != nil {
		return badRequest("malformed worker register value: %v", err)
	}
	if len(reg.TaskTypes) == 0 {
		return badRequest("task_types must not be empty")
	}
	if err := checkTaskTypes(reg.TaskTypes); err != nil {
		return command.Fail(err)
	}
	w, werr := t.worker(cmd.Key, true)
	if werr != nil {
		return command.Fail(werr)
	}
	w.capacity = 0
	if reg.HasCaps {
		w.capacity = reg.Capacity
	}
	types := make([]typeStat, 0, len(reg.TaskTypes))
	for _, tt := range reg.TaskTypes {
		switch st := w.stat(tt); {
		case containsType(types, tt): // listed twice
		case st != nil:
			types = append(types, *st)
		default:
			types = append(types, typeStat{name: tt})
		}
	}
	w.types = types
	t.putWorker(w)
	return command.Result{}
}

func containsType(ts []typeStat, name string) bool {
	for _, t := range ts {
		if t.name == name {
			return true
		}
	}
	return false
}

func (t *txn) await(cmd *command.Command) command.Result {
	if err := checkName("worker id", cmd.Key); err != nil {
		return command.Fail(err)
	}
	// With TagCompletions (flo's extension) the value also carries
	// completions, applied before claiming; the reply then ends with a
	// status per completion.
	withCompletions := cmd.Options.Flag(wire.TagCompletions)
	var types []string
	var reports []wire.TaskReport
	var err error
	if withCompletions {
		types, reports, err = wire.DecodeAwaitCompletions(cmd.Value)
	} else {
		types, err = wire.DecodeTaskTypes(cmd.Value)
	}
	if err != nil {
		return badRequest("malformed await value: %v", err)
	}
	if len(reports) > MaxAwaitBatch {
		return badRequest("%d completions in one await, over the limit of %d", len(reports), MaxAwaitBatch)
	}
	if len(types) == 0 {
		return badRequest("task_types must not be empty")
	}
	if err := checkTaskTypes(types); err != nil {
		return command.Fail(err)
	}
	leaseMs, _ := cmd.Options.Uint(wire.TagTimeoutMs)
	if leaseMs > MaxLeaseMs {
		return badRequest("timeout_ms %d is over the limit of %d", leaseMs, MaxLeaseMs)
	}
	// COUNT (flo's extension) asks for up to that many tasks in the batch
	// layout; without it one task comes back in the v1 layout.
	n, batch := cmd.Options.Uint(wire.TagCount)
	if withCompletions && !batch {
		return badRequest("completions need COUNT (the batch layout)")
	}
	known := t.m.workers[t.ns+"\x00"+string(cmd.Key)] != nil
	w, werr := t.worker(cmd.Key, true)
	if werr != nil {
		return command.Fail(werr)
	}
	if !known {
		for _, tt := range types {
			if !containsType(w.types, tt) {
				w.types = append(w.types, typeStat{name: tt})
			}
		}
	}
	var claimed []wire.TaskAssignment
	defer func() {
		// One write of the worker's record covers the call: its
		// completions' counts (even refused ones keep its last-seen time)
		// and its claims.
		if len(reports) > 0 || len(claimed) > 0 || !known {
			t.putWorker(w)
		}
	}()
	var statuses []byte
	for _, rep := range reports {
		statuses = append(statuses, byte(wire.StatusOf(t.completeReport(w, rep).Err)))
	}
	if t.err != nil {
		return command.Result{}
	}
	n = min(max(n, 1), MaxAwaitBatch)
	if !batch {
		n = 1
	}
	size := 0
	for uint64(len(claimed)) < n && size < MaxAwaitBatchBytes {
		a, ok := t.claim(w, types, leaseMs)
		if !ok {
			break
		}
		claimed = append(claimed, a)
		size += len(a.Input) + len(a.TaskID) + len(a.TaskType) + 20
	}
	if t.err != nil {
		return command.Result{}
	}
	switch {
	case batch:
		body := wire.AppendTaskBatch(make([]byte, 0, 4+size+4*len(claimed)+4+len(statuses)), claimed)
		if withCompletions {
			body = append(binary.LittleEndian.AppendUint32(body, uint32(len(statuses))), statuses...)
		}
		return command.Result{Body: body, Empty: len(claimed) == 0}
	case len(claimed) == 0:
		return command.Result{Empty: true}
	}
	return command.Reply(wire.AppendTaskAssignment(make([]byte, 0, size), &claimed[0]))
}

// claim takes the best claimable run of types for w, leasing it for leaseMs
// (0: the run's own timeout). It returns false when there is none.
func (t *txn) claim(w *worker, types []string, leaseMs uint64) (wire.TaskAssignment, bool) {
	var best *readyQueue
	for _, tt := range types {
		if q := t.m.ready[t.ns+"\x00"+tt]; q != nil && (best == nil || before(q.runs[0], best.runs[0])) {
			best = q
		}
	}
	if best == nil {
		return wire.TaskAssignment{}, false
	}
	r := best.runs[0]
	t.unlink(r)
	if leaseMs == 0 {
		leaseMs = uint64(r.timeoutMs)
	}
	r.state = wire.RunRunning
	r.attempt++
	r.startedMs = t.now
	// The previous attempt's error is shown only while the run waits for
	// this retry (SEMANTICS §5.4); the new attempt sets its own on failure.
	r.hasErr, r.errMsg = false, nil
	r.leaseMs = t.now + int64(leaseMs)
	r.holder = w.id
	t.m.timers.Add(r)
	w.held[r.seq] = r
	if st := w.stat(r.action); st != nil {
		st.lastRunMs = t.now
	}
	t.putRun(r)
	input := r.input
	if r.inputLen > inputCacheBytes {
		var err error
		if input, err = t.b.Get(seqKey(tagInput, r.seq)); err != nil {
			t.err = err
			return wire.TaskAssignment{}, false
		}
	}
	return wire.TaskAssignment{
		TaskID: []byte(RunID(r.seq)), TaskType: []byte(r.action), CreatedMs: r.createdMs, Attempt: r.attempt, Input: input,
	}, true
}

// lookup finds the run a worker report names. A live run is returned from
// memory; a terminal one is decoded from storage (live = false). nil means
// NOT_FOUND (unknown, or in another namespace).
func (t *txn) lookup(taskID []byte) (r *run, live bool) {
	seq, ok := parseRunID(taskID)
	if !ok {
		return nil, false
	}
	if r := t.m.runs[seq]; r != nil {
		if r.ns != t.ns {
			return nil, false
		}
		return r, true
	}
	v, err := t.b.Get(seqKey(tagRun, seq))
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			t.err = err
		}
		return nil, false
	}
	r, err = decodeRun(seq, v)
	if err != nil {
		t.err = err
		return nil, false
	}
	if r.ns != t.ns {
		return nil, false
	}
	return r, false
}

func notFoundTask(id []byte) command.Result {
	return command.Fail(wire.Errorf(wire.StatusNotFound, "task %q not found", id))
}

func (t *txn) complete(cmd *command.Command) command.Result {
	if err := checkName("worker id", cmd.Key); err != nil {
		return command.Fail(err)
	}
	rep, err := wire.DecodeTaskReport(cmd.Value)
	if err != nil {
		return badRequest("malformed complete value: %v", err)
	}
	w, _ := t.worker(cmd.Key, false)
	if w != nil {
		// Even a refused report names the worker: keep its last-seen time.
		defer t.putWorker(w)
	}
	return t.completeReport(w, rep)
}

// completeReport completes the run rep names with rep's result, counting
// it for worker w (nil: not registered). The caller writes w's record, once
// per command however many reports it carries.
func (t *txn) completeReport(w *worker, rep wire.TaskReport) command.Result {
	if len(rep.Data) > MaxInputBytes {
		return badRequest("result is %d bytes, over the %d-byte limit", len(rep.Data), MaxInputBytes)
	}
	r, live := t.lookup(rep.TaskID)
	switch {
	case r == nil:
		return notFoundTask(rep.TaskID)
	case !live && r.state == wire.RunCompleted:
		return command.Result{} // first terminal report already won
	case !live:
		return command.Fail(wire.Errorf(wire.StatusConflict, "run %s already ended %s", rep.TaskID, r.state))
	}
	if w != nil {
		w.completed++
		if st := w.stat(r.action); st != nil {
			st.runs++
		}
	}
	r.hasErr, r.errMsg = false, nil
	r.hasResult, r.result = true, bytes.Clone(rep.Data)
	if r.result == nil {
		r.result = []byte{}
	}
	t.end(r, wire.RunCompleted, t.now)
	r.result = nil
	return command.Result{}
}

// held checks that the calling worker holds r's lease.
func (t *txn) held(r *run, live bool, worker []byte, taskID []byte) command.Result {
	switch {
	case r == nil:
		return notFoundTask(taskID)
	case !live:
		return command.Fail(wire.Errorf(wire.StatusConflict, "run %s already ended %s", taskID, r.state))
	case r.state != wire.RunRunning:
		return command.Fail(wire.Errorf(wire.StatusConflict, "run %s is not running (its lease expired)", taskID))
	case r.holder != string(worker):
		return command.Fail(wire.Errorf(wire.StatusConflict, "run %s is held by another worker", taskID))
	}
	return command.Result{}
}

func (t *txn) fail(cmd *command.Command) command.Result {
	if err := checkName("worker id", cmd.Key); err != nil {
		return command.Fail(err)
	}
	rep, err := wire.DecodeTaskReport(cmd.Value)
	if err != nil {
		return badRequest("malformed fail value: %v", err)
	}
	if len(rep.Data) > MaxErrorBytes {
		return badRequest("error message is %d bytes, over the %d-byte limit", len(rep.Data), MaxErrorBytes)
	}
	w, _ := t.worker(cmd.Key, false)
	if w != nil {
		defer t.putWorker(w) // even when refused (see complete)
	}
	r, live := t.lookup(rep.TaskID)
	if res := t.held(r, live, cmd.Key, rep.TaskID); res.Err != nil {
		return res
	}
	if w != nil {
		w.failed++
		if st := w.stat(r.action); st != nil {
			st.fails++
		}
	}
	r.hasErr, r.errMsg = true, bytes.Clone(rep.Data)
	if r.errMsg == nil {
		r.errMsg = []byte{}
	}
	if cmd.Options.Flag(wire.TagRetry) && r.attempt <= r.maxRetries {
		t.unlink(r)
		t.release(r)
		r.state = wire.RunPending
		r.readyMs = t.now + backoff(r.backoffMs, r.attempt)
		t.schedule(r)
		t.putRun(r)
		return command.Result{}
	}
	t.end(r, wire.RunFailed, t.now)
	return command.Result{}
}

func (t *txn) touch(cmd *command.Command) command.Result {
	if err := checkName("worker id", cmd.Key); err != nil {
		return command.Fail(err)
	}
	tc, err := wire.DecodeWorkerTouch(cmd.Value)
	switch {
	case err != nil:
		return badRequest("malformed touch value: %v", err)
	case tc.ExtendMs == 0:
		return badRequest("extend_ms must be greater than 0")
	case tc.ExtendMs > MaxLeaseMs:
		return badRequest("extend_ms %d is over the limit of %d", tc.ExtendMs, MaxLeaseMs)
	}
	w, _ := t.worker(cmd.Key, false)
	if w != nil {
		defer t.putWorker(w) // even when refused (see complete)
	}
	r, live := t.lookup(tc.TaskID)
	if res := t.held(r, live, cmd.Key, tc.TaskID); res.Err != nil {
		return res
	}
	r.leaseMs = t.now + int64(tc.ExtendMs)
	t.m.timers.Fix(r)
	t.putRun(r)
	return command.Result{}
}
