package action

import (
	"bytes"
	"errors"
	"slices"
	"strings"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// view is what a read shows for a live run at nowMs: a lease that expired
// is shown as the failed attempt it already is (invariant 3).
func (r *run) view(nowMs int64) wire.RunStatus {
	s := wire.RunStatus{
		State: r.state, CreatedMs: r.createdMs, StartedMs: r.startedMs, CompletedMs: r.endedMs,
		HasError: r.hasErr, Error: r.errMsg, Attempt: r.attempt,
		HasOutput: r.hasResult, Output: r.result,
	}
	if r.state == wire.RunRunning && r.leaseMs <= nowMs {
		s.HasError, s.Error = true, []byte(TimedOutMessage)
		if r.attempt <= r.maxRetries {
			s.State = wire.RunPending
		} else {
			s.State, s.CompletedMs = wire.RunTimedOut, r.leaseMs
		}
	}
	return s
}

func (m *Machine) status(cmd *command.Command) command.Result {
	seq, ok := parseRunID(cmd.Key)
	notFound := command.Fail(wire.Errorf(wire.StatusNotFound, "run %q not found", cmd.Key))
	if !ok {
		return notFound
	}
	m.mu.RLock()
	var s wire.RunStatus
	r := m.runs[seq]
	if r != nil {
		if r.ns != cmd.Namespace {
			m.mu.RUnlock()
			return notFound
		}
		s = r.view(cmd.TimeMs())
		s.Error = bytes.Clone(s.Error)
	}
	m.mu.RUnlock()
	if r == nil {
		v, err := m.db.Get(seqKey(tagRun, seq))
		if errors.Is(err, storage.ErrNotFound) {
			return notFound
		}
		if err != nil {
			return command.Fail(wire.Errorf(wire.StatusInternal, "action: read run: %v", err))
		}
		if r, err = decodeRun(seq, v); err != nil {
			return command.Fail(wire.Errorf(wire.StatusInternal, "action: read run %d: %v", seq, err))
		}
		if r.ns != cmd.Namespace {
			return notFound
		}
		s = r.view(cmd.TimeMs())
	}
	s.RunID = cmd.Key
	// A status with BLOCK_MS waits for the run to end (RunWaitKey); on
	// timeout it answers with the state the run is in.
	return command.Result{Body: wire.AppendRunStatus(nil, &s), Empty: !s.State.Terminal()}
}

// listLimit reads a list request's limit, clamped.
func listLimit(req wire.ActionListRequest) int {
	if req.Limit == 0 {
		return ListLimitDefault
	}
	return int(min(req.Limit, ListLimitMax))
}

// page sorts names, keeps those after cursor, and cuts at limit.
func page(names []string, cursor []byte, limit int) (out []string, more bool) {
	slices.Sort(names)
	if cursor != nil {
		i, found := slices.BinarySearch(names, string(cursor))
		if found {
			i++
		}
		names = names[i:]
	}
	if len(names) > limit {
		return names[:limit], true
	}
	return names, false
}

func (m *Machine) listActions(cmd *command.Command) command.Result {
	req, err := wire.DecodeActionListRequest(cmd.Value)
	if err != nil {
		return badRequest("malformed list value: %v", err)
	}
	prefix := string(cmd.Key)
	m.mu.RLock()
	defer m.mu.RUnlock()
	byName := m.actions[cmd.Namespace]
	names := make([]string, 0, len(byName))
	for name := range byName {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	names, more := page(names, req.Cursor, listLimit(req))
	l := wire.ActionList{Entries: make([]wire.ActionEntry, len(names)), HasMore: more}
	for i, name := range names {
		a := byName[name]
		l.Entries[i] = wire.ActionEntry{
			Name: []byte(name), Type: a.typ, Version: a.version, Enabled: true,
			HasSettings: true, TimeoutMs: a.timeoutMs, MaxRetries: a.maxRetries,
			HasDescription: a.hasDesc, Description: a.desc,
		}
	}
	if more {
		l.Cursor = []byte(names[len(names)-1])
	}
	return command.Reply(wire.AppendActionList(nil, &l))
}

func (m *Machine) listWorkers(cmd *command.Command) command.Result {
	req, err := wire.DecodeActionListRequest(cmd.Value)
	if err != nil {
		return badRequest("malformed list value: %v", err)
	}
	now := cmd.TimeMs()
	m.mu.RLock()
	defer m.mu.RUnlock()
	pre := cmd.Namespace + "\x00"
	var ids []string
	for key := range m.workers {
		if id, ok := strings.CutPrefix(key, pre); ok && strings.HasPrefix(id, string(cmd.Key)) {
			ids = append(ids, id)
		}
	}
	ids, more := page(ids, req.Cursor, listLimit(req))
	l := wire.WorkerList{Workers: make([]wire.WorkerRecord, len(ids)), HasMore: more}
	for i, id := range ids {
		w := m.workers[pre+id]
		rec := wire.WorkerRecord{
			ID: []byte(id), Type: 0, State: wire.WorkerActive,
			TasksCompleted: w.completed, TasksFailed: w.failed, MaxConcurrency: w.capacity,
			RegisteredMs: w.registeredMs, LastSeenMs: w.lastSeenMs,
		}
		if now-w.lastSeenMs >= UnhealthyAfterMs {
			rec.State = wire.WorkerUnhealthy
		}
		for _, r := range w.held {
			if r.leaseMs > now {
				rec.CurrentLoad++
			}
		}
		for _, st := range w.types {
			rec.Processes = append(rec.Processes, wire.WorkerProcess{
				Name: []byte(st.name), RunCount: st.runs, FailCount: st.fails, LastRunMs: st.lastRunMs,
			})
		}
		l.Workers[i] = rec
	}
	if more {
		l.Cursor = []byte(ids[len(ids)-1])
	}
	return command.Reply(wire.AppendWorkerList(nil, &l))
}
