package flo

import (
	"context"
	"fmt"
	"time"

	"github.com/floruntime/flo/wire"
)

// Worker is the raw worker protocol: register, claim tasks (runs of
// actions), keep their leases alive and report how they ended. TaskWorker
// builds a complete worker loop on top of it.
//
// A worker is identified by its ID within a namespace. Every call naming a
// worker counts as a sign of life.
type Worker struct{ c *Client }

// WorkerRegisterOptions configures Worker.Register.
type WorkerRegisterOptions struct {
	Namespace string
	// Capacity is the number of tasks the worker runs at once, shown by
	// List (0 = unspecified). It is informational: the server does not
	// enforce it.
	Capacity int
}

// Register creates or replaces the worker's record: its task types (action
// names) and capacity. Awaiting also registers an unknown worker, so
// calling Register is optional.
func (w *Worker) Register(ctx context.Context, workerID string, taskTypes []string, o *WorkerRegisterOptions) error {
	if o == nil {
		o = &WorkerRegisterOptions{}
	}
	reg := wire.WorkerRegister{TaskTypes: taskTypes}
	if o.Capacity > 0 {
		reg.HasCaps, reg.Capacity = true, uint32(min(o.Capacity, 1<<32-1))
	}
	_, err := w.c.call(ctx, request{op: wire.OpWorkerRegister, namespace: o.Namespace, key: []byte(workerID), value: wire.AppendWorkerRegister(nil, &reg)})
	return err
}

// WorkerAwaitOptions configures Worker.Await. The zero value does not wait
// and leases a claimed task for its action's timeout.
type WorkerAwaitOptions struct {
	Namespace string
	// Block waits up to this long for a task; Forever waits without limit;
	// 0 does not wait.
	Block time.Duration
	// Lease, when > 0, is the lease on a claimed task instead of its
	// action's timeout (whole milliseconds).
	Lease time.Duration
}

// Task is one attempt at a run, claimed by a worker.
type Task struct {
	// ID is the run ID; pass it to Complete, Fail and Touch.
	ID string
	// ActionName is the task type the run belongs to.
	ActionName string
	Input      []byte
	// Attempt counts claims of this run, from 1; above 1 it is a retry.
	Attempt   int
	CreatedAt time.Time
}

// Await claims the best pending task of the given types (highest priority,
// then oldest), waiting as o.Block says. It returns nil and no error when
// there is none. The claimed task is leased to this worker until the lease
// runs out; complete, fail or touch it before then.
func (w *Worker) Await(ctx context.Context, workerID string, taskTypes []string, o *WorkerAwaitOptions) (*Task, error) {
	if o == nil {
		o = &WorkerAwaitOptions{}
	}
	var opts wire.Options
	if o.Lease > 0 {
		opts = wire.AppendU32(opts, wire.TagTimeoutMs, uint32(min(max(o.Lease.Milliseconds(), 1), 1<<32-1)))
	}
	body, err := w.c.call(ctx, request{
		op: wire.OpWorkerAwait, namespace: o.Namespace, key: []byte(workerID),
		value: wire.AppendTaskTypes(nil, taskTypes), options: opts, block: o.Block,
	})
	if err != nil || len(body) == 0 {
		return nil, err
	}
	a, err := wire.DecodeTaskAssignment(body)
	if err != nil {
		return nil, fmt.Errorf("flo: decode task assignment: %w", err)
	}
	return &Task{
		ID: string(a.TaskID), ActionName: string(a.TaskType), Input: a.Input,
		Attempt: int(a.Attempt), CreatedAt: time.UnixMilli(a.CreatedMs),
	}, nil
}

// AwaitBatch is Await for up to maxTasks tasks at once (1–100: a smaller
// value means 1, and the server clamps larger values). It waits, as
// o.Block says, only while there is none; then it claims every task
// available at that instant, up to maxTasks.
// It returns an empty slice and no error when there is none.
func (w *Worker) AwaitBatch(ctx context.Context, workerID string, taskTypes []string, maxTasks int, o *WorkerAwaitOptions) ([]*Task, error) {
	tasks, _, err := w.awaitBatch(ctx, workerID, taskTypes, maxTasks, nil, o)
	return tasks, err
}

// TaskCompletion is a task's result for CompleteAndAwait.
type TaskCompletion struct {
	TaskID string
	Result []byte
}

// CompleteAndAwait completes done, each as Complete would, and then claims
// up to maxTasks tasks like AwaitBatch — in one request and one durable
// write (a flo extension). It never waits for tasks, whatever o.Block
// says, so the results of done come back at once. results[i] is nil when
// done[i] was accepted, else the error Complete would have returned. err is
// for the call as a whole: with a server error nothing was applied; with a
// connection error either all of done were applied or none, and sending
// them again is harmless (the first terminal report wins). At most 100
// completions per call.
func (w *Worker) CompleteAndAwait(ctx context.Context, workerID string, done []TaskCompletion, taskTypes []string, maxTasks int, o *WorkerAwaitOptions) (tasks []*Task, results []error, err error) {
	reports := make([]wire.TaskReport, len(done))
	for i, d := range done {
		reports[i] = wire.TaskReport{TaskID: []byte(d.TaskID), Data: d.Result}
	}
	var noWait WorkerAwaitOptions
	if o != nil {
		noWait = *o
	}
	noWait.Block = 0
	tasks, statuses, err := w.awaitBatch(ctx, workerID, taskTypes, maxTasks, reports, &noWait)
	if err != nil {
		return nil, nil, err
	}
	if len(statuses) != len(done) {
		return nil, nil, fmt.Errorf("flo: %d completion statuses for %d completions", len(statuses), len(done))
	}
	results = make([]error, len(done))
	for i, st := range statuses {
		if st != wire.StatusOK {
			results[i] = &wire.Error{Status: st, Message: fmt.Sprintf("complete %s: %s", done[i].TaskID, st)}
		}
	}
	return tasks, results, nil
}

// awaitBatch sends a batch await, with completions when reports is not
// nil, and decodes the tasks (and the completions' statuses).
func (w *Worker) awaitBatch(ctx context.Context, workerID string, taskTypes []string, maxTasks int, reports []wire.TaskReport, o *WorkerAwaitOptions) ([]*Task, []wire.Status, error) {
	if o == nil {
		o = &WorkerAwaitOptions{}
	}
	// Like a dequeue count, the size is clamped, never refused: below 1
	// means 1 (SEMANTICS D26); the server clamps it to 100.
	opts := wire.AppendU32(nil, wire.TagCount, uint32(min(max(maxTasks, 1), 1<<31)))
	if o.Lease > 0 {
		opts = wire.AppendU32(opts, wire.TagTimeoutMs, uint32(min(max(o.Lease.Milliseconds(), 1), 1<<32-1)))
	}
	value := wire.AppendTaskTypes(nil, taskTypes)
	if reports != nil {
		opts = wire.AppendFlag(opts, wire.TagCompletions)
		value = wire.AppendAwaitCompletions(value, reports)
	}
	body, err := w.c.call(ctx, request{
		op: wire.OpWorkerAwait, namespace: o.Namespace, key: []byte(workerID),
		value: value, options: opts, block: o.Block,
	})
	if err != nil {
		return nil, nil, err
	}
	var as []wire.TaskAssignment
	var statuses []wire.Status
	if reports != nil {
		as, statuses, err = wire.DecodeTaskBatchStatuses(body)
	} else {
		as, err = wire.DecodeTaskBatch(body)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("flo: decode task batch: %w", err)
	}
	tasks := make([]*Task, len(as))
	for i, a := range as {
		tasks[i] = &Task{
			ID: string(a.TaskID), ActionName: string(a.TaskType), Input: a.Input,
			Attempt: int(a.Attempt), CreatedAt: time.UnixMilli(a.CreatedMs),
		}
	}
	return tasks, statuses, nil
}

// WorkerCompleteOptions configures Worker.Complete.
type WorkerCompleteOptions struct {
	Namespace string
}

// Complete records result and ends the run as completed. The first
// terminal report wins: completing a run that already completed is a no-op;
// one that failed or timed out returns ErrConflict. A complete arriving
// after the lease expired still counts if the run has not ended.
func (w *Worker) Complete(ctx context.Context, workerID, taskID string, result []byte, o *WorkerCompleteOptions) error {
	if o == nil {
		o = &WorkerCompleteOptions{}
	}
	_, err := w.c.call(ctx, request{
		op: wire.OpWorkerComplete, namespace: o.Namespace, key: []byte(workerID),
		value: wire.AppendTaskReport(nil, &wire.TaskReport{TaskID: []byte(taskID), Data: result}),
	})
	return err
}

// WorkerFailOptions configures Worker.Fail. The zero value retries.
type WorkerFailOptions struct {
	Namespace string
	// NoRetry ends the run as failed even if it has attempts left.
	NoRetry bool
}

// Fail records message as the attempt's error. The run is retried after a
// backoff (1 s doubling, capped at 5 min) while it has attempts left and
// NoRetry is false; otherwise it ends as failed. Only the worker holding
// the run's lease may fail it: anyone else gets ErrConflict.
func (w *Worker) Fail(ctx context.Context, workerID, taskID, message string, o *WorkerFailOptions) error {
	if o == nil {
		o = &WorkerFailOptions{}
	}
	var opts wire.Options
	if !o.NoRetry {
		opts = wire.AppendFlag(opts, wire.TagRetry)
	}
	_, err := w.c.call(ctx, request{
		op: wire.OpWorkerFail, namespace: o.Namespace, key: []byte(workerID),
		value:   wire.AppendTaskReport(nil, &wire.TaskReport{TaskID: []byte(taskID), Data: []byte(message)}),
		options: opts,
	})
	return err
}

// WorkerTouchOptions configures Worker.Touch.
type WorkerTouchOptions struct {
	Namespace string
	// Extend sets the lease to end this long from now (0 means 30 s;
	// negative is ErrBadRequest).
	Extend time.Duration
}

// Touch resets the lease of a task this worker holds to now + o.Extend.
// It returns ErrConflict if the worker no longer holds the task (its lease
// expired, it was reassigned, or it ended) and ErrNotFound for an unknown
// task.
func (w *Worker) Touch(ctx context.Context, workerID, taskID string, o *WorkerTouchOptions) error {
	if o == nil {
		o = &WorkerTouchOptions{}
	}
	t := wire.WorkerTouch{TaskID: []byte(taskID), ExtendMs: wire.DefaultExtendMs}
	if o.Extend < 0 {
		return fmt.Errorf("%w: extension %v is negative", ErrBadRequest, o.Extend)
	}
	if o.Extend > 0 {
		t.ExtendMs = uint32(min(max(o.Extend.Milliseconds(), 1), 1<<32-1))
	}
	_, err := w.c.call(ctx, request{op: wire.OpWorkerTouch, namespace: o.Namespace, key: []byte(workerID), value: wire.AppendWorkerTouch(nil, &t)})
	return err
}

// WorkerListOptions configures Worker.List.
type WorkerListOptions struct {
	Namespace string
	// Prefix keeps only workers whose IDs start with it.
	Prefix string
	// Limit is the page size: 0 means 100, at most 1000.
	Limit int
	// Cursor resumes after a previous page (WorkerList.Cursor).
	Cursor []byte
}

// WorkerStatus is a worker's liveness as List reports it.
type WorkerStatus uint8

// Worker statuses: a worker is unhealthy after 90 s without a call.
const (
	WorkerActive    WorkerStatus = WorkerStatus(wire.WorkerActive)
	WorkerUnhealthy WorkerStatus = WorkerStatus(wire.WorkerUnhealthy)
)

// String returns "active", "unhealthy", ….
func (s WorkerStatus) String() string { return wire.WorkerState(s).String() }

// WorkerTaskType is one task type of a worker with its counts.
type WorkerTaskType struct {
	Name      string
	Completed uint64
	Failed    uint64
	LastRunAt time.Time // latest claim of this type; zero if none
}

// WorkerInfo is one worker as List reports it.
type WorkerInfo struct {
	ID     string
	Status WorkerStatus
	// TaskTypes are the worker's registered types, with counts.
	TaskTypes []WorkerTaskType
	// InFlight is the number of tasks it holds a live lease on.
	InFlight     int
	Capacity     int
	Completed    uint64
	Failed       uint64
	RegisteredAt time.Time
	LastSeen     time.Time
}

// WorkerList is one page of workers, sorted by ID.
type WorkerList struct {
	Workers []WorkerInfo
	HasMore bool
	Cursor  []byte
}

// List returns the namespace's workers, one page at a time.
func (w *Worker) List(ctx context.Context, o *WorkerListOptions) (*WorkerList, error) {
	if o == nil {
		o = &WorkerListOptions{}
	}
	req := wire.ActionListRequest{Limit: uint32(max(min(o.Limit, 1<<31), 0)), Cursor: o.Cursor}
	body, err := w.c.call(ctx, request{op: wire.OpWorkerList, namespace: o.Namespace, key: []byte(o.Prefix), value: wire.AppendActionListRequest(nil, &req)})
	if err != nil {
		return nil, err
	}
	l, err := wire.DecodeWorkerList(body)
	if err != nil {
		return nil, fmt.Errorf("flo: decode worker list: %w", err)
	}
	out := &WorkerList{HasMore: l.HasMore, Cursor: l.Cursor, Workers: make([]WorkerInfo, len(l.Workers))}
	for i, r := range l.Workers {
		info := WorkerInfo{
			ID: string(r.ID), Status: WorkerStatus(r.State), InFlight: int(r.CurrentLoad), Capacity: int(r.MaxConcurrency),
			Completed: r.TasksCompleted, Failed: r.TasksFailed,
			RegisteredAt: runTime(r.RegisteredMs), LastSeen: runTime(r.LastSeenMs),
		}
		for _, p := range r.Processes {
			info.TaskTypes = append(info.TaskTypes, WorkerTaskType{
				Name: string(p.Name), Completed: p.RunCount, Failed: p.FailCount, LastRunAt: runTime(p.LastRunMs),
			})
		}
		out.Workers[i] = info
	}
	return out, nil
}
