package flo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/floruntime/flo/wire"
)

// Action registers actions, invokes them and reads their runs. Invoking an
// action creates a run that a worker awaiting the action's name executes
// (see Worker and TaskWorker).
type Action struct{ c *Client }

// ActionType is the kind of an action. Only ActionUser (executed by
// workers) is supported; the server rejects ActionWASM with ErrBadRequest.
type ActionType uint8

// Action types.
const (
	ActionUser ActionType = ActionType(wire.ActionUser)
	ActionWASM ActionType = ActionType(wire.ActionWASM)
)

// ActionRegisterOptions configures Action.Register. The zero value
// registers a user action with a 30 s timeout and 3 retries.
type ActionRegisterOptions struct {
	Namespace string
	Type      ActionType
	// Timeout is the lease a worker gets on each attempt (whole
	// milliseconds; 0 means 30 s; negative is ErrBadRequest). A worker
	// keeps a longer task alive with Worker.Touch.
	Timeout time.Duration
	// MaxRetries is the number of retries after the first attempt (nil
	// means 3, so 4 attempts in all).
	MaxRetries *int
	// Description is free text shown by List ("" means none).
	Description string
}

// Register creates the action or replaces its settings. Runs that already
// exist keep the settings they were invoked with.
func (a *Action) Register(ctx context.Context, name string, o *ActionRegisterOptions) error {
	if o == nil {
		o = &ActionRegisterOptions{}
	}
	reg := wire.ActionRegister{Type: wire.ActionType(o.Type), TimeoutMs: 30_000, MaxRetries: 3}
	if o.Timeout < 0 {
		return fmt.Errorf("%w: timeout %v is negative", ErrBadRequest, o.Timeout)
	}
	if o.Timeout > 0 {
		reg.TimeoutMs = uint32(min(max(o.Timeout.Milliseconds(), 1), 1<<32-1))
	}
	if o.MaxRetries != nil {
		if *o.MaxRetries < 0 || int64(*o.MaxRetries) > 1<<32-1 {
			return fmt.Errorf("%w: max retries %d out of range", ErrBadRequest, *o.MaxRetries)
		}
		reg.MaxRetries = uint32(*o.MaxRetries)
	}
	if o.Description != "" {
		if len(o.Description) > 1<<16-1 {
			return fmt.Errorf("%w: description is %d bytes", ErrBadRequest, len(o.Description))
		}
		reg.HasDescription, reg.Description = true, []byte(o.Description)
	}
	_, err := a.c.call(ctx, request{op: wire.OpActionRegister, namespace: o.Namespace, key: []byte(name), value: wire.AppendActionRegister(nil, &reg)})
	return err
}

// ActionInvokeOptions configures Action.Invoke. The zero value invokes with
// priority 10, no idempotency key and no delay.
type ActionInvokeOptions struct {
	Namespace string
	// Priority orders pending runs, higher first (nil means 10).
	Priority *uint8
	// IdempotencyKey, when set, makes repeated invokes with the same key
	// (for the same action and namespace) return the first run's ID for as
	// long as that run is retained (at least 24 h after it ends).
	IdempotencyKey string
	// Delay keeps the run from being claimed until this long after the
	// invoke (rounded up to whole milliseconds; 0 or negative: no delay,
	// as for queue delays).
	Delay time.Duration
}

// Invoke creates a run of the action with input and returns its run ID.
// An unregistered action returns an error matching ErrNotFound.
func (a *Action) Invoke(ctx context.Context, name string, input []byte, o *ActionInvokeOptions) (string, error) {
	if o == nil {
		o = &ActionInvokeOptions{}
	}
	r, err := invokeRequest(name, input, o)
	if err != nil {
		return "", err
	}
	body, err := a.c.call(ctx, r)
	if err != nil {
		return "", err
	}
	return string(body), nil
}

// invokeRequest is the ACTION_INVOKE request of Invoke and InvokeAndWait.
func invokeRequest(name string, input []byte, o *ActionInvokeOptions) (request, error) {
	inv := wire.ActionInvoke{Priority: 10, DelayMs: roundUpMs(max(o.Delay, 0)), Input: input}
	if o.Priority != nil {
		inv.Priority = *o.Priority
	}
	if o.IdempotencyKey != "" {
		if len(o.IdempotencyKey) > 1<<16-1 {
			return request{}, fmt.Errorf("%w: idempotency key is %d bytes", ErrBadRequest, len(o.IdempotencyKey))
		}
		inv.IdempotencyKey = []byte(o.IdempotencyKey)
	}
	return request{op: wire.OpActionInvoke, namespace: o.Namespace, key: []byte(name), value: wire.AppendActionInvoke(nil, &inv)}, nil
}

// RunState is the state of a run.
type RunState uint8

// Run states. RunCompleted, RunFailed, RunCancelled and RunTimedOut are
// terminal.
const (
	RunPending   RunState = RunState(wire.RunPending)
	RunRunning   RunState = RunState(wire.RunRunning)
	RunCompleted RunState = RunState(wire.RunCompleted)
	RunFailed    RunState = RunState(wire.RunFailed)
	RunCancelled RunState = RunState(wire.RunCancelled)
	RunTimedOut  RunState = RunState(wire.RunTimedOut)
)

// String returns the state's lowercase name ("pending", "timed_out", …).
func (s RunState) String() string { return wire.RunState(s).String() }

// Terminal reports whether the run has ended.
func (s RunState) Terminal() bool { return wire.RunState(s).Terminal() }

// RunStatus is a run as Action.Status reports it.
type RunStatus struct {
	RunID string
	State RunState
	// Attempt is the number of times the run was claimed by a worker.
	Attempt int
	// Result is what the worker completed the run with (RunCompleted only).
	Result []byte
	// Error is the last failure: set when failed or timed out, and kept
	// while a failed run waits for its retry.
	Error string
	// CreatedAt is when the run was invoked; StartedAt the latest claim
	// and CompletedAt the end (zero when it has not happened).
	CreatedAt   time.Time
	StartedAt   time.Time
	CompletedAt time.Time
}

// ActionStatusOptions configures Action.Status.
type ActionStatusOptions struct {
	Namespace string
	// Block, if set, makes the server wait up to Block (Forever: without a
	// limit) for the run to end before answering; a run still pending or
	// running then is returned as it is. An extension of flo (see
	// docs/protocol.md); upstream Flo servers answer at once.
	Block time.Duration
}

// Status returns the current state of a run. A run that does not exist in
// the namespace returns an error matching ErrNotFound.
func (a *Action) Status(ctx context.Context, runID string, o *ActionStatusOptions) (*RunStatus, error) {
	if o == nil {
		o = &ActionStatusOptions{}
	}
	body, err := a.c.call(ctx, request{op: wire.OpActionStatus, namespace: o.Namespace, key: []byte(runID), block: o.Block})
	if err != nil {
		return nil, err
	}
	s, err := wire.DecodeRunStatus(body)
	if err != nil {
		return nil, fmt.Errorf("flo: decode run status: %w", err)
	}
	return runStatus(&s), nil
}

// runStatus copies a decoded status out of its reply.
func runStatus(s *wire.RunStatus) *RunStatus {
	st := &RunStatus{
		RunID: string(s.RunID), State: RunState(s.State), Attempt: int(s.Attempt),
		CreatedAt: runTime(s.CreatedMs), StartedAt: runTime(s.StartedMs), CompletedAt: runTime(s.CompletedMs),
	}
	if s.HasOutput {
		st.Result = append([]byte{}, s.Output...)
	}
	if s.HasError {
		st.Error = string(s.Error)
	}
	return st
}

// runTime converts Unix milliseconds to a time; 0 is the zero time.
func runTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// ActionListOptions configures Action.List.
type ActionListOptions struct {
	Namespace string
	// Prefix keeps only actions whose names start with it.
	Prefix string
	// Limit is the page size: 0 means 100, at most 1000.
	Limit int
	// Cursor resumes after a previous page (ActionList.Cursor).
	Cursor []byte
}

// ActionInfo is one registered action.
type ActionInfo struct {
	Name        string
	Type        ActionType
	Version     uint32 // 1 on first register, +1 on each re-register
	Timeout     time.Duration
	MaxRetries  int
	Description string
}

// ActionList is one page of actions, sorted by name.
type ActionList struct {
	Actions []ActionInfo
	HasMore bool
	Cursor  []byte // resumes after the last action; nil when !HasMore
}

// List returns the namespace's actions, one page at a time.
func (a *Action) List(ctx context.Context, o *ActionListOptions) (*ActionList, error) {
	if o == nil {
		o = &ActionListOptions{}
	}
	req := wire.ActionListRequest{Limit: uint32(max(min(o.Limit, 1<<31), 0)), Cursor: o.Cursor}
	body, err := a.c.call(ctx, request{op: wire.OpActionList, namespace: o.Namespace, key: []byte(o.Prefix), value: wire.AppendActionListRequest(nil, &req)})
	if err != nil {
		return nil, err
	}
	l, err := wire.DecodeActionList(body)
	if err != nil {
		return nil, fmt.Errorf("flo: decode action list: %w", err)
	}
	out := &ActionList{HasMore: l.HasMore, Cursor: l.Cursor, Actions: make([]ActionInfo, len(l.Entries))}
	for i, e := range l.Entries {
		out.Actions[i] = ActionInfo{
			Name: string(e.Name), Type: ActionType(e.Type), Version: e.Version,
			Timeout: time.Duration(e.TimeoutMs) * time.Millisecond, MaxRetries: int(e.MaxRetries),
			Description: string(e.Description),
		}
	}
	return out, nil
}

// ActionDeleteOptions configures Action.Delete.
type ActionDeleteOptions struct {
	Namespace string
}

// Delete removes the action's registration; later invokes return
// ErrNotFound. Runs already invoked are not affected. Deleting an unknown
// action is not an error.
func (a *Action) Delete(ctx context.Context, name string, o *ActionDeleteOptions) error {
	if o == nil {
		o = &ActionDeleteOptions{}
	}
	_, err := a.c.call(ctx, request{op: wire.OpActionDelete, namespace: o.Namespace, key: []byte(name)})
	return err
}

// ActionWaitOptions configures Action.InvokeAndWait.
type ActionWaitOptions struct {
	ActionInvokeOptions
	// PollInterval caps the interval between status checks against a
	// server that answers a waiting status at once (default 100 ms);
	// polling starts at 1 ms and doubles up to it. A flo server answers
	// when the run ends, so no polling happens.
	PollInterval time.Duration
}

// statusWait is how long one waiting status call of InvokeAndWait lasts.
const statusWait = 30 * time.Second

// RunError is returned by InvokeAndWait when the run ended without
// completing (failed, timed out or cancelled).
type RunError struct {
	RunID   string
	State   RunState
	Message string // the run's last error
}

func (e *RunError) Error() string {
	return fmt.Sprintf("run %s %s: %s", e.RunID, e.State, e.Message)
}

// invokeWait is how long InvokeAndWait's invoke waits for the run's end:
// statusWait, or when ctx has a deadline the time left but a quarter (at
// least 250 ms) for the invoke's own write and the answer, so that the
// answer — which names the run — arrives before the deadline; when that
// leaves under 10 ms it does not wait.
func invokeWait(ctx context.Context) time.Duration {
	d, ok := ctx.Deadline()
	if !ok {
		return statusWait
	}
	left := time.Until(d)
	w := min(left-max(left/4, 250*time.Millisecond), statusWait)
	if w < 10*time.Millisecond {
		return 0
	}
	return w
}

// endStatus is InvokeAndWait's answer for a run that ended.
func endStatus(st *RunStatus) (*RunStatus, error) {
	if st.State != RunCompleted {
		return st, &RunError{RunID: st.RunID, State: st.State, Message: st.Error}
	}
	return st, nil
}

// InvokeAndWait invokes the action and waits until the run ends: the invoke
// itself waits and answers with the run's status when it ends (one round
// trip); a run that outlasts that wait is waited for with status calls the
// server answers when it ends (ActionStatusOptions.Block). The invoke's
// wait ends before ctx's deadline, so a deadline's error names the run; if
// ctx is cancelled during it, the run's ID is not known (invoke with an
// idempotency key to find it again).
// It returns the final status; if the run did not complete the error is a
// *RunError. ctx bounds the whole wait: without a deadline it waits as long
// as the run takes.
func (a *Action) InvokeAndWait(ctx context.Context, name string, input []byte, o *ActionWaitOptions) (*RunStatus, error) {
	if o == nil {
		o = &ActionWaitOptions{}
	}
	// The invoke itself waits for the run's end (INVOKE_WAIT_MS) and answers
	// with the run's status; a server that ignores the tag answers its ID.
	// A run still going after that wait is waited for with status calls.
	r, err := invokeRequest(name, input, &o.ActionInvokeOptions)
	if err != nil {
		return nil, err
	}
	if r.block = invokeWait(ctx); r.block != 0 {
		r.blockTag = wire.TagInvokeWaitMs
	}
	body, err := a.c.call(ctx, r)
	if err != nil {
		if ctx.Err() != nil && r.block != 0 {
			return nil, fmt.Errorf("invoke of %s ended while waiting; whether it ran is unknown (an idempotency key finds its run again): %w", name, err)
		}
		return nil, err
	}
	id := string(body)
	if s, err := wire.DecodeRunStatus(body); err == nil && len(s.RunID) > 0 {
		st := runStatus(&s)
		if st.State.Terminal() {
			return endStatus(st)
		}
		id = st.RunID
	}
	maxPoll := o.PollInterval
	if maxPoll <= 0 {
		maxPoll = 100 * time.Millisecond
	}
	poll := time.Millisecond
	overloaded := false // the server refused a waiting call: poll from then on
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for run %s: %w", id, ctx.Err())
		case <-timer.C:
		}
		asked := time.Now()
		block := statusWait
		if overloaded {
			block = 0
		}
		st, err := a.Status(ctx, id, &ActionStatusOptions{Namespace: o.Namespace, Block: block})
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil, fmt.Errorf("waiting for run %s: %w", id, ctx.Err())
		case errors.Is(err, ErrOverloaded) && !overloaded:
			// The server holds as many waiting calls as it allows: poll.
			overloaded = true
			timer.Reset(0)
			continue
		default:
			return nil, err
		}
		if st.State.Terminal() {
			return endStatus(st)
		}
		if !overloaded && time.Since(asked) >= statusWait/2 {
			timer.Reset(0) // the server waited: ask again at once
			continue
		}
		// The server did not wait (an upstream server) or could not: poll.
		timer.Reset(poll)
		poll = min(2*poll, maxPoll)
	}
}
