package flo_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/wire"
)

// actSetup starts a server and returns a client for it.
func actSetup(t *testing.T) (*flo.Client, context.Context) {
	t.Helper()
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	return srv.Client(t, flo.Options{}), context.Background()
}

// actRegister registers an action with a timeout and retry count.
func actRegister(t *testing.T, c *flo.Client, name string, timeout time.Duration, retries int) {
	t.Helper()
	if err := c.Action.Register(context.Background(), name, &flo.ActionRegisterOptions{Timeout: timeout, MaxRetries: &retries}); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
}

func actInvoke(t *testing.T, c *flo.Client, name, input string, o *flo.ActionInvokeOptions) string {
	t.Helper()
	id, err := c.Action.Invoke(context.Background(), name, []byte(input), o)
	if err != nil {
		t.Fatalf("invoke %s: %v", name, err)
	}
	return id
}

func actStatus(t *testing.T, c *flo.Client, id string) *flo.RunStatus {
	t.Helper()
	st, err := c.Action.Status(context.Background(), id, nil)
	if err != nil {
		t.Fatalf("status %s: %v", id, err)
	}
	return st
}

// actAwait claims a task, waiting up to block; it fails the test if none comes.
func actAwait(t *testing.T, c *flo.Client, worker string, types []string, block time.Duration) *flo.Task {
	t.Helper()
	task, err := c.Worker.Await(context.Background(), worker, types, &flo.WorkerAwaitOptions{Block: block})
	if err != nil {
		t.Fatalf("await: %v", err)
	}
	if task == nil {
		t.Fatalf("await %v: no task within %v", types, block)
	}
	return task
}

// actWaitState polls a run until it reaches want.
func actWaitState(t *testing.T, c *flo.Client, id string, want flo.RunState, within time.Duration) *flo.RunStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := actStatus(t, c, id)
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s (attempt %d, error %q); want %s", id, st.State, st.Attempt, st.Error, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAction_RegisterListDelete(t *testing.T) {
	c, ctx := actSetup(t)
	retries := 5
	if err := c.Action.Register(ctx, "process-image", &flo.ActionRegisterOptions{Timeout: time.Minute, MaxRetries: &retries, Description: "images"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"resize", "process-video"} {
		if err := c.Action.Register(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	l, err := c.Action.List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range l.Actions {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "process-image,process-video,resize" || l.HasMore {
		t.Fatalf("list = %v (more %v)", names, l.HasMore)
	}
	img := l.Actions[0]
	if img.Type != flo.ActionUser || img.Timeout != time.Minute || img.MaxRetries != 5 || img.Description != "images" || img.Version != 1 {
		t.Fatalf("process-image = %+v", img)
	}
	if v := l.Actions[1]; v.Timeout != 30*time.Second || v.MaxRetries != 3 || v.Description != "" {
		t.Fatalf("defaults = %+v", v)
	}
	// Prefix, then paging with a limit and the cursor.
	l, err = c.Action.List(ctx, &flo.ActionListOptions{Prefix: "process-"})
	if err != nil || len(l.Actions) != 2 {
		t.Fatalf("prefix list = %+v, %v", l, err)
	}
	l, err = c.Action.List(ctx, &flo.ActionListOptions{Limit: 2})
	if err != nil || len(l.Actions) != 2 || !l.HasMore || l.Cursor == nil {
		t.Fatalf("page 1 = %+v, %v", l, err)
	}
	l, err = c.Action.List(ctx, &flo.ActionListOptions{Limit: 2, Cursor: l.Cursor})
	if err != nil || len(l.Actions) != 1 || l.Actions[0].Name != "resize" || l.HasMore {
		t.Fatalf("page 2 = %+v, %v", l, err)
	}
	// Re-register overwrites and bumps the version.
	if err := c.Action.Register(ctx, "process-image", nil); err != nil {
		t.Fatal(err)
	}
	l, _ = c.Action.List(ctx, &flo.ActionListOptions{Prefix: "process-image"})
	if a := l.Actions[0]; a.Version != 2 || a.MaxRetries != 3 || a.Description != "" {
		t.Fatalf("after re-register = %+v", a)
	}
	// Delete is idempotent; a deleted action cannot be invoked.
	for range 2 {
		if err := c.Action.Delete(ctx, "process-image", nil); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	if _, err := c.Action.Invoke(ctx, "process-image", nil, nil); !errors.Is(err, flo.ErrNotFound) {
		t.Fatalf("invoke deleted action: %v", err)
	}
	if _, err := c.Action.Invoke(ctx, "never-registered", nil, nil); !errors.Is(err, flo.ErrNotFound) {
		t.Fatalf("invoke unknown action: %v", err)
	}
	l, _ = c.Action.List(ctx, nil)
	if len(l.Actions) != 2 {
		t.Fatalf("after delete: %+v", l.Actions)
	}
}

func TestAction_RegisterValidation(t *testing.T) {
	c, ctx := actSetup(t)
	bad := func(name string, o *flo.ActionRegisterOptions) {
		t.Helper()
		if err := c.Action.Register(ctx, name, o); !errors.Is(err, flo.ErrBadRequest) {
			t.Errorf("register %.20q %+v: err = %v, want bad request", name, o, err)
		}
	}
	bad("w", &flo.ActionRegisterOptions{Type: flo.ActionWASM})
	bad("", nil)
	bad(strings.Repeat("n", 257), nil)
	bad("d", &flo.ActionRegisterOptions{Description: strings.Repeat("d", 4097)})
	bad("t", &flo.ActionRegisterOptions{Timeout: 24*time.Hour + time.Millisecond})
	// timeout_ms must be > 0 (SEMANTICS §5.1): 0 is the zero value (30 s),
	// but a negative timeout is refused, as by the Python SDK, rather than
	// silently registered as 30 s.
	bad("t", &flo.ActionRegisterOptions{Timeout: -time.Second})
	if err := c.Action.Register(ctx, strings.Repeat("n", 256), &flo.ActionRegisterOptions{Timeout: 24 * time.Hour, Description: strings.Repeat("d", 4096)}); err != nil {
		t.Fatalf("register at the limits: %v", err)
	}
	zero := 0
	if err := c.Action.Register(ctx, "z", &flo.ActionRegisterOptions{MaxRetries: &zero}); err != nil {
		t.Fatalf("max retries 0: %v", err)
	}
	// Idempotency keys are 1–256 bytes; inputs up to 16 MiB.
	if _, err := c.Action.Invoke(ctx, "z", nil, &flo.ActionInvokeOptions{IdempotencyKey: strings.Repeat("k", 257)}); !errors.Is(err, flo.ErrBadRequest) {
		t.Errorf("257-byte idempotency key: %v", err)
	}
	if _, err := c.Action.Invoke(ctx, "z", nil, &flo.ActionInvokeOptions{IdempotencyKey: strings.Repeat("k", 256)}); err != nil {
		t.Errorf("256-byte idempotency key: %v", err)
	}
	if _, err := c.Action.Status(ctx, "run-999999", nil); !errors.Is(err, flo.ErrNotFound) {
		t.Errorf("status of unknown run: %v", err)
	}
	if _, err := c.Action.Status(ctx, "not-a-run", nil); !errors.Is(err, flo.ErrNotFound) {
		t.Errorf("status of malformed id: %v", err)
	}
	// Worker-side validation.
	if _, err := c.Worker.Await(ctx, "w", nil, nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Errorf("await with no task types: %v", err)
	}
	if _, err := c.Worker.Await(ctx, "", []string{"z"}, nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Errorf("await with empty worker id: %v", err)
	}
	if _, err := c.Worker.Await(ctx, strings.Repeat("w", 257), []string{"z"}, nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Errorf("await with 257-byte worker id: %v", err)
	}
	if _, err := c.Worker.Await(ctx, "w", []string{"z"}, &flo.WorkerAwaitOptions{Lease: 24*time.Hour + time.Millisecond}); !errors.Is(err, flo.ErrBadRequest) {
		t.Errorf("await with lease over 24h: %v", err)
	}
	if err := c.Worker.Complete(ctx, "w", "run-424242", nil, nil); !errors.Is(err, flo.ErrNotFound) {
		t.Errorf("complete unknown task: %v", err)
	}
	if err := c.Worker.Fail(ctx, "w", "run-424242", "x", nil); !errors.Is(err, flo.ErrNotFound) {
		t.Errorf("fail unknown task: %v", err)
	}
	if err := c.Worker.Touch(ctx, "w", "run-424242", nil); !errors.Is(err, flo.ErrNotFound) {
		t.Errorf("touch unknown task: %v", err)
	}
	// A negative extension is refused (the server refuses 0; Go's zero value
	// means 30 s), not turned into a 30 s lease.
	if err := c.Worker.Touch(ctx, "w", "run-424242", &flo.WorkerTouchOptions{Extend: -time.Second}); !errors.Is(err, flo.ErrBadRequest) {
		t.Errorf("touch with a negative extension: %v", err)
	}
}

func TestAction_InvokeAwaitCompleteStatus(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "job", 30*time.Second, 3)
	before := time.Now().Add(-time.Second)
	id := actInvoke(t, c, "job", `{"n":1}`, nil)
	st := actStatus(t, c, id)
	if st.RunID != id || st.State != flo.RunPending || st.Attempt != 0 || st.Result != nil || st.Error != "" ||
		st.CreatedAt.Before(before) || !st.StartedAt.IsZero() || !st.CompletedAt.IsZero() {
		t.Fatalf("pending status = %+v", st)
	}
	if err := c.Worker.Register(ctx, "w1", []string{"job"}, &flo.WorkerRegisterOptions{Capacity: 4}); err != nil {
		t.Fatal(err)
	}
	task := actAwait(t, c, "w1", []string{"job"}, 0)
	if task.ID != id || task.ActionName != "job" || string(task.Input) != `{"n":1}` || task.Attempt != 1 || !task.CreatedAt.Equal(st.CreatedAt) {
		t.Fatalf("task = %+v", task)
	}
	st = actStatus(t, c, id)
	if st.State != flo.RunRunning || st.Attempt != 1 || st.StartedAt.IsZero() {
		t.Fatalf("running status = %+v", st)
	}
	// The worker list shows the task in flight.
	wl, err := c.Worker.List(ctx, nil)
	if err != nil || len(wl.Workers) != 1 {
		t.Fatalf("worker list = %+v, %v", wl, err)
	}
	if w := wl.Workers[0]; w.ID != "w1" || w.Status != flo.WorkerActive || w.InFlight != 1 || w.Capacity != 4 ||
		len(w.TaskTypes) != 1 || w.TaskTypes[0].Name != "job" || w.LastSeen.Before(before) {
		t.Fatalf("worker = %+v", w)
	}
	if err := c.Worker.Complete(ctx, "w1", id, []byte("done!"), nil); err != nil {
		t.Fatal(err)
	}
	st = actStatus(t, c, id)
	if st.State != flo.RunCompleted || string(st.Result) != "done!" || st.Error != "" || st.Attempt != 1 || st.CompletedAt.IsZero() {
		t.Fatalf("completed status = %+v", st)
	}
	// Completing again is OK and keeps the first result.
	if err := c.Worker.Complete(ctx, "w1", id, []byte("again"), nil); err != nil {
		t.Fatalf("second complete: %v", err)
	}
	if st := actStatus(t, c, id); string(st.Result) != "done!" {
		t.Fatalf("result after second complete = %q", st.Result)
	}
	wl, _ = c.Worker.List(ctx, nil)
	if w := wl.Workers[0]; w.InFlight != 0 || w.Completed != 1 || w.TaskTypes[0].Completed != 1 {
		t.Fatalf("worker after complete = %+v", w)
	}
	// An empty result is a result.
	id2 := actInvoke(t, c, "job", "", nil)
	task = actAwait(t, c, "w1", []string{"job"}, 0)
	if task.ID != id2 || len(task.Input) != 0 {
		t.Fatalf("task 2 = %+v", task)
	}
	if err := c.Worker.Complete(ctx, "w1", id2, nil, nil); err != nil {
		t.Fatal(err)
	}
	if st := actStatus(t, c, id2); st.State != flo.RunCompleted || st.Result == nil || len(st.Result) != 0 {
		t.Fatalf("empty result status = %+v", st)
	}
}

func TestAction_InputOver1KiBRoundTrips(t *testing.T) {
	c, _ := actSetup(t)
	actRegister(t, c, "big", time.Minute, 0)
	input := strings.Repeat("x", 100_000)
	id := actInvoke(t, c, "big", input, nil)
	task := actAwait(t, c, "w", []string{"big"}, 0)
	if task.ID != id || string(task.Input) != input {
		t.Fatalf("task input %d bytes, want %d", len(task.Input), len(input))
	}
}

func TestAction_IdempotentInvoke(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "idem", time.Minute, 0)
	actRegister(t, c, "other", time.Minute, 0)
	r1 := actInvoke(t, c, "idem", "1", &flo.ActionInvokeOptions{IdempotencyKey: "order-123"})
	r2 := actInvoke(t, c, "idem", "2", &flo.ActionInvokeOptions{IdempotencyKey: "order-123"})
	if r1 != r2 {
		t.Fatalf("same key gave runs %s and %s", r1, r2)
	}
	// Scoped to (namespace, action).
	if r := actInvoke(t, c, "other", "", &flo.ActionInvokeOptions{IdempotencyKey: "order-123"}); r == r1 {
		t.Fatal("key shared across actions")
	}
	if r := actInvoke(t, c, "idem", "", &flo.ActionInvokeOptions{IdempotencyKey: "order-124"}); r == r1 {
		t.Fatal("different keys gave one run")
	}
	// The first input is kept; the duplicate created nothing.
	task := actAwait(t, c, "w", []string{"idem"}, 0)
	if task.ID != r1 || string(task.Input) != "1" {
		t.Fatalf("task = %+v", task)
	}
	// Holds in any state, including failed.
	if err := c.Worker.Fail(ctx, "w", r1, "boom", &flo.WorkerFailOptions{NoRetry: true}); err != nil {
		t.Fatal(err)
	}
	if r := actInvoke(t, c, "idem", "3", &flo.ActionInvokeOptions{IdempotencyKey: "order-123"}); r != r1 {
		t.Fatalf("key after failure gave %s, want %s", r, r1)
	}
	if st := actStatus(t, c, r1); st.State != flo.RunFailed {
		t.Fatalf("status = %+v", st)
	}
}

// TestAction_FailRetryThenFailed covers fail with retry (redelivered with
// attempt+1 after the 1 s backoff) and retries running out (failed with the
// last error).
func TestAction_FailRetryThenFailed(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "flaky", time.Minute, 1)
	id := actInvoke(t, c, "flaky", "in", nil)
	task := actAwait(t, c, "w", []string{"flaky"}, 0)
	failedAt := time.Now()
	if err := c.Worker.Fail(ctx, "w", task.ID, "boom", nil); err != nil {
		t.Fatal(err)
	}
	if st := actStatus(t, c, id); st.State != flo.RunPending || st.Error != "boom" || st.Attempt != 1 {
		t.Fatalf("after retryable fail = %+v", st)
	}
	// Not claimable during the backoff.
	if task, err := c.Worker.Await(ctx, "w", []string{"flaky"}, nil); err != nil || task != nil {
		t.Fatalf("claimed during backoff: %+v, %v", task, err)
	}
	task = actAwait(t, c, "w", []string{"flaky"}, 5*time.Second)
	if waited := time.Since(failedAt); waited < 900*time.Millisecond {
		t.Fatalf("redelivered after %v, before the 1 s backoff", waited)
	}
	if task.ID != id || task.Attempt != 2 || string(task.Input) != "in" {
		t.Fatalf("retry = %+v", task)
	}
	if err := c.Worker.Fail(ctx, "w", task.ID, "boom again", nil); err != nil {
		t.Fatal(err)
	}
	st := actStatus(t, c, id)
	if st.State != flo.RunFailed || st.Error != "boom again" || st.Attempt != 2 || st.CompletedAt.IsZero() || st.Result != nil {
		t.Fatalf("after last attempt = %+v", st)
	}
	if err := c.Worker.Complete(ctx, "w", id, []byte("late"), nil); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("complete of a failed run: %v", err)
	}
}

// TestAction_RetryClaimClearsTheError: a run's error is shown while it is
// failed or timed out and while a failed run waits in pending for its retry
// (SEMANTICS §5.4, docs/protocol.md ACTION_STATUS); once the retry is
// claimed the run is running again, with no error, until that attempt ends.
func TestAction_RetryClaimClearsTheError(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "flaky", time.Minute, 2)
	id := actInvoke(t, c, "flaky", "", nil)
	task := actAwait(t, c, "w", []string{"flaky"}, 0)
	if err := c.Worker.Fail(ctx, "w", task.ID, "boom", nil); err != nil {
		t.Fatal(err)
	}
	if st := actStatus(t, c, id); st.State != flo.RunPending || st.Error != "boom" {
		t.Fatalf("waiting for the retry = %+v", st)
	}
	task = actAwait(t, c, "w", []string{"flaky"}, 5*time.Second)
	if st := actStatus(t, c, id); st.State != flo.RunRunning || st.Attempt != 2 || st.Error != "" {
		t.Fatalf("retry running = %+v, want no error", st)
	}
	if err := c.Worker.Fail(ctx, "w", task.ID, "boom again", &flo.WorkerFailOptions{NoRetry: true}); err != nil {
		t.Fatal(err)
	}
	if st := actStatus(t, c, id); st.State != flo.RunFailed || st.Error != "boom again" {
		t.Fatalf("after the last attempt = %+v", st)
	}
}

func TestAction_FailWithoutRetry(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "once", time.Minute, 3)
	id := actInvoke(t, c, "once", "", nil)
	task := actAwait(t, c, "w", []string{"once"}, 0)
	if err := c.Worker.Fail(ctx, "w", task.ID, "fatal", &flo.WorkerFailOptions{NoRetry: true}); err != nil {
		t.Fatal(err)
	}
	if st := actStatus(t, c, id); st.State != flo.RunFailed || st.Error != "fatal" || st.Attempt != 1 {
		t.Fatalf("status = %+v", st)
	}
	wl, _ := c.Worker.List(ctx, nil)
	if w := wl.Workers[0]; w.Failed != 1 || w.TaskTypes[0].Failed != 1 {
		t.Fatalf("worker = %+v", w)
	}
}

// TestAction_LeaseExpiryRetriesThenTimesOut: a claim that is never
// touched expires, is retried after the backoff, and the final expiry ends
// the run timed_out.
func TestAction_LeaseExpiryRetriesThenTimesOut(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "slow", 100*time.Millisecond, 1)
	id := actInvoke(t, c, "slow", "", nil)
	first := actAwait(t, c, "w1", []string{"slow"}, 0)
	st := actWaitState(t, c, id, flo.RunPending, 5*time.Second)
	if st.Error != "timed out" || st.Attempt != 1 {
		t.Fatalf("after first expiry = %+v", st)
	}
	// The retry goes to whichever worker asks; the first holder is stale.
	second := actAwait(t, c, "w2", []string{"slow"}, 5*time.Second)
	if second.ID != id || second.Attempt != 2 {
		t.Fatalf("retry = %+v", second)
	}
	if err := c.Worker.Touch(ctx, "w1", first.ID, nil); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("stale touch: %v", err)
	}
	st = actWaitState(t, c, id, flo.RunTimedOut, 5*time.Second)
	if st.Error != "timed out" || st.Attempt != 2 || st.CompletedAt.IsZero() {
		t.Fatalf("after final expiry = %+v", st)
	}
	if err := c.Worker.Complete(ctx, "w2", id, nil, nil); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("complete of a timed-out run: %v", err)
	}
	wl, _ := c.Worker.List(ctx, nil)
	for _, w := range wl.Workers {
		if w.InFlight != 0 {
			t.Fatalf("worker %s still has %d in flight", w.ID, w.InFlight)
		}
	}
}

func TestAction_TouchKeepsTaskAlive(t *testing.T) {
	c, ctx := actSetup(t)
	// Timeouts of a second, touched every 200 ms: a loaded machine may
	// delay a touch or the status read by a few hundred ms.
	actRegister(t, c, "long", time.Second, 0)
	id := actInvoke(t, c, "long", "", nil)
	task := actAwait(t, c, "w", []string{"long"}, 0)
	end := time.Now().Add(3500 * time.Millisecond) // over three timeouts
	for time.Now().Before(end) {
		if err := c.Worker.Touch(ctx, "w", task.ID, &flo.WorkerTouchOptions{Extend: time.Second}); err != nil {
			t.Fatalf("touch: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st := actStatus(t, c, id); st.State != flo.RunRunning || st.Attempt != 1 {
		t.Fatalf("touched run = %+v", st)
	}
	if err := c.Worker.Complete(ctx, "w", task.ID, []byte("ok"), nil); err != nil {
		t.Fatal(err)
	}
	if st := actStatus(t, c, id); st.State != flo.RunCompleted || st.Attempt != 1 {
		t.Fatalf("status = %+v", st)
	}
	// A touch sets the deadline from now: a short extend lets it lapse.
	actRegister(t, c, "lapse", time.Minute, 0)
	id = actInvoke(t, c, "lapse", "", nil)
	task = actAwait(t, c, "w", []string{"lapse"}, 0)
	if err := c.Worker.Touch(ctx, "w", task.ID, &flo.WorkerTouchOptions{Extend: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	actWaitState(t, c, id, flo.RunTimedOut, 5*time.Second)
}

func TestAction_StaleReportsConflict(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "job", time.Minute, 3)
	id := actInvoke(t, c, "job", "", nil)
	task := actAwait(t, c, "w1", []string{"job"}, 0)
	if err := c.Worker.Fail(ctx, "w2", task.ID, "not mine", nil); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("fail by non-holder: %v", err)
	}
	if err := c.Worker.Touch(ctx, "w2", task.ID, nil); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("touch by non-holder: %v", err)
	}
	if st := actStatus(t, c, id); st.State != flo.RunRunning {
		t.Fatalf("stale reports changed the run: %+v", st)
	}
	// Complete is accepted from anyone: the first terminal report wins.
	if err := c.Worker.Complete(ctx, "w2", task.ID, []byte("by w2"), nil); err != nil {
		t.Fatalf("complete by non-holder: %v", err)
	}
	if err := c.Worker.Fail(ctx, "w1", task.ID, "late", nil); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("fail after complete: %v", err)
	}
	if err := c.Worker.Touch(ctx, "w1", task.ID, nil); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("touch after complete: %v", err)
	}
	if err := c.Worker.Complete(ctx, "w1", task.ID, []byte("by w1"), nil); err != nil {
		t.Fatalf("second complete: %v", err)
	}
	if st := actStatus(t, c, id); st.State != flo.RunCompleted || string(st.Result) != "by w2" {
		t.Fatalf("status = %+v", st)
	}
	// A pending run (never claimed) can be completed but not failed or touched.
	id2 := actInvoke(t, c, "job", "", nil)
	if err := c.Worker.Fail(ctx, "w1", id2, "x", nil); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("fail of a pending run: %v", err)
	}
	if err := c.Worker.Complete(ctx, "w1", id2, []byte("r"), nil); err != nil {
		t.Fatalf("complete of a pending run: %v", err)
	}
}

func TestAction_LateCompleteAfterLeaseExpiryWins(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "job", 50*time.Millisecond, 2)
	id := actInvoke(t, c, "job", "", nil)
	task := actAwait(t, c, "w", []string{"job"}, 0)
	actWaitState(t, c, id, flo.RunPending, 5*time.Second) // lease expired, waiting for its retry
	if err := c.Worker.Complete(ctx, "w", task.ID, []byte("late but done"), nil); err != nil {
		t.Fatalf("late complete: %v", err)
	}
	st := actStatus(t, c, id)
	if st.State != flo.RunCompleted || string(st.Result) != "late but done" || st.Error != "" {
		t.Fatalf("status = %+v", st)
	}
	// The retry was cancelled with the run: nothing to claim later.
	if task, _ := c.Worker.Await(ctx, "w", []string{"job"}, &flo.WorkerAwaitOptions{Block: 1200 * time.Millisecond}); task != nil {
		t.Fatalf("completed run was redelivered: %+v", task)
	}
}

func TestAction_PriorityOrder(t *testing.T) {
	c, _ := actSetup(t)
	actRegister(t, c, "p", time.Minute, 0)
	actRegister(t, c, "q", time.Minute, 0)
	prio := func(p uint8) *flo.ActionInvokeOptions { return &flo.ActionInvokeOptions{Priority: &p} }
	mid1 := actInvoke(t, c, "p", "", nil) // default priority 10
	low := actInvoke(t, c, "p", "", prio(1))
	high := actInvoke(t, c, "p", "", prio(200))
	mid2 := actInvoke(t, c, "p", "", nil)
	zero := actInvoke(t, c, "q", "", prio(0))
	top := actInvoke(t, c, "q", "", prio(255))
	want := []string{top, high, mid1, mid2, low, zero}
	for i, w := range want {
		task := actAwait(t, c, "w", []string{"p", "q"}, 0)
		if task.ID != w {
			t.Fatalf("claim %d = %s, want %s", i, task.ID, w)
		}
	}
}

func TestAction_AwaitBlocking(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "b", time.Minute, 0)
	// No block: no wait.
	if task, err := c.Worker.Await(ctx, "w", []string{"b"}, nil); err != nil || task != nil {
		t.Fatalf("await = %+v, %v", task, err)
	}
	// Block: empty after block_ms.
	start := time.Now()
	if task, err := c.Worker.Await(ctx, "w", []string{"b"}, &flo.WorkerAwaitOptions{Block: 150 * time.Millisecond}); err != nil || task != nil {
		t.Fatalf("blocking await = %+v, %v", task, err)
	}
	if waited := time.Since(start); waited < 140*time.Millisecond {
		t.Fatalf("returned after %v, before the block expired", waited)
	}
	// A parked await is woken by an invoke.
	got := make(chan *flo.Task, 1)
	go func() {
		task, err := c.Worker.Await(ctx, "w", []string{"a", "b"}, &flo.WorkerAwaitOptions{Block: flo.Forever})
		if err != nil {
			t.Error(err)
		}
		got <- task
	}()
	// Give the await time to park (the test passes either way: an invoke
	// that lands first is simply claimed at once).
	time.Sleep(50 * time.Millisecond)
	id := actInvoke(t, c, "b", "wake", nil)
	select {
	case task := <-got:
		if task == nil || task.ID != id {
			t.Fatalf("woken await = %+v", task)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("parked await was not woken by the invoke")
	}
}

func TestAction_DelayedInvoke(t *testing.T) {
	c, _ := actSetup(t)
	actRegister(t, c, "d", time.Minute, 0)
	start := time.Now()
	id := actInvoke(t, c, "d", "", &flo.ActionInvokeOptions{Delay: 200 * time.Millisecond})
	task := actAwait(t, c, "w", []string{"d"}, 5*time.Second)
	if task.ID != id || time.Since(start) < 190*time.Millisecond {
		t.Fatalf("delayed run claimed after %v", time.Since(start))
	}
	// A negative delay is no delay, as for queue delays.
	id = actInvoke(t, c, "d", "", &flo.ActionInvokeOptions{Delay: -time.Second})
	if task := actAwait(t, c, "w", []string{"d"}, 0); task == nil || task.ID != id {
		t.Fatalf("run invoked with a negative delay: claimable at once = %v", task)
	}
}

func TestAction_NamespacesIsolate(t *testing.T) {
	c, ctx := actSetup(t)
	a := &flo.ActionRegisterOptions{Namespace: "a"}
	if err := c.Action.Register(ctx, "iso", a); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Action.Invoke(ctx, "iso", nil, nil); !errors.Is(err, flo.ErrNotFound) {
		t.Fatalf("invoke in the default namespace: %v", err)
	}
	id := actInvoke(t, c, "iso", "x", &flo.ActionInvokeOptions{Namespace: "a", IdempotencyKey: "k"})
	if _, err := c.Action.Status(ctx, id, nil); !errors.Is(err, flo.ErrNotFound) {
		t.Fatalf("status from another namespace: %v", err)
	}
	if st, err := c.Action.Status(ctx, id, &flo.ActionStatusOptions{Namespace: "a"}); err != nil || st.State != flo.RunPending {
		t.Fatalf("status = %+v, %v", st, err)
	}
	// The same names in namespace b share nothing: action, key or runs.
	if err := c.Action.Register(ctx, "iso", &flo.ActionRegisterOptions{Namespace: "b"}); err != nil {
		t.Fatal(err)
	}
	idB := actInvoke(t, c, "iso", "y", &flo.ActionInvokeOptions{Namespace: "b", IdempotencyKey: "k"})
	if idB == id {
		t.Fatal("idempotency key shared across namespaces")
	}
	if task, err := c.Worker.Await(ctx, "w", []string{"iso"}, nil); err != nil || task != nil {
		t.Fatalf("default-namespace worker got %+v, %v", task, err)
	}
	task, err := c.Worker.Await(ctx, "w", []string{"iso"}, &flo.WorkerAwaitOptions{Namespace: "a"})
	if err != nil || task == nil || task.ID != id {
		t.Fatalf("namespace a await = %+v, %v", task, err)
	}
	// Reports must name the run's namespace.
	if err := c.Worker.Complete(ctx, "w", id, nil, nil); !errors.Is(err, flo.ErrNotFound) {
		t.Fatalf("complete from another namespace: %v", err)
	}
	if err := c.Worker.Complete(ctx, "w", id, nil, &flo.WorkerCompleteOptions{Namespace: "a"}); err != nil {
		t.Fatal(err)
	}
	// Workers and actions are listed per namespace.
	if wl, _ := c.Worker.List(ctx, nil); len(wl.Workers) != 1 || wl.Workers[0].InFlight != 0 {
		t.Fatalf("default-namespace workers = %+v", wl.Workers)
	}
	if wl, _ := c.Worker.List(ctx, &flo.WorkerListOptions{Namespace: "b"}); len(wl.Workers) != 0 {
		t.Fatalf("namespace b workers = %+v", wl.Workers)
	}
	if l, _ := c.Action.List(ctx, nil); len(l.Actions) != 0 {
		t.Fatalf("default-namespace actions = %+v", l.Actions)
	}
	if l, _ := c.Action.List(ctx, &flo.ActionListOptions{Namespace: "b"}); len(l.Actions) != 1 {
		t.Fatalf("namespace b actions = %+v", l.Actions)
	}
}

func TestAction_WorkerList(t *testing.T) {
	c, ctx := actSetup(t)
	for i := range 5 {
		if err := c.Worker.Register(ctx, fmt.Sprintf("w%d", i), []string{"x", "y"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Re-register replaces the task types.
	if err := c.Worker.Register(ctx, "w0", []string{"z"}, nil); err != nil {
		t.Fatal(err)
	}
	wl, err := c.Worker.List(ctx, &flo.WorkerListOptions{Limit: 3})
	if err != nil || len(wl.Workers) != 3 || !wl.HasMore || wl.Workers[0].ID != "w0" {
		t.Fatalf("page 1 = %+v, %v", wl, err)
	}
	if tt := wl.Workers[0].TaskTypes; len(tt) != 1 || tt[0].Name != "z" {
		t.Fatalf("w0 task types = %+v", tt)
	}
	if tt := wl.Workers[1].TaskTypes; len(tt) != 2 || tt[0].Name != "x" || tt[1].Name != "y" {
		t.Fatalf("w1 task types = %+v", tt)
	}
	wl, err = c.Worker.List(ctx, &flo.WorkerListOptions{Limit: 3, Cursor: wl.Cursor})
	if err != nil || len(wl.Workers) != 2 || wl.HasMore || wl.Workers[1].ID != "w4" {
		t.Fatalf("page 2 = %+v, %v", wl, err)
	}
	// An await registers an unknown worker implicitly.
	if _, err := c.Worker.Await(ctx, "implicit", []string{"t"}, nil); err != nil {
		t.Fatal(err)
	}
	wl, _ = c.Worker.List(ctx, nil)
	if len(wl.Workers) != 6 || wl.Workers[0].ID != "implicit" || wl.Workers[0].TaskTypes[0].Name != "t" {
		t.Fatalf("after implicit registration = %+v", wl.Workers)
	}
	// A prefix keeps only the workers whose IDs start with it, as Python's
	// WorkerListOptions(prefix=…) and Action.List's Prefix do.
	wl, err = c.Worker.List(ctx, &flo.WorkerListOptions{Prefix: "im"})
	if err != nil || len(wl.Workers) != 1 || wl.Workers[0].ID != "implicit" {
		t.Fatalf("prefix im = %+v, %v", wl, err)
	}
}

// TestAction_WorkerRegisterNeedsTaskTypes: an empty task_types is
// BadRequestError (SEMANTICS §8.1), on register as on await, and the
// refused register creates no worker.
func TestAction_WorkerRegisterNeedsTaskTypes(t *testing.T) {
	c, ctx := actSetup(t)
	if err := c.Worker.Register(ctx, "w", nil, nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("register with no task types: %v", err)
	}
	if _, err := c.Worker.Await(ctx, "w", nil, nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("await with no task types: %v", err)
	}
	if wl, err := c.Worker.List(ctx, nil); err != nil || len(wl.Workers) != 0 {
		t.Fatalf("workers after refused calls = %+v, %v", wl, err)
	}
}

func TestAction_InvokeAndWait(t *testing.T) {
	c, ctx := actSetup(t)
	w := flo.NewTaskWorker(c, "w", &flo.TaskWorkerOptions{Concurrency: 2, Block: time.Second})
	w.Handle("upper", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		return []byte(strings.ToUpper(string(t.Input))), nil
	}, &flo.ActionRegisterOptions{})
	zero := 0
	w.Handle("broken", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		return nil, errors.New("it broke")
	}, &flo.ActionRegisterOptions{MaxRetries: &zero})
	runWorker(t, w)
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	actWaitRegistered(t, c, "upper")
	st, err := c.Action.InvokeAndWait(waitCtx, "upper", []byte("hello"), nil)
	if err != nil || st.State != flo.RunCompleted || string(st.Result) != "HELLO" {
		t.Fatalf("InvokeAndWait = %+v, %v", st, err)
	}
	st, err = c.Action.InvokeAndWait(waitCtx, "broken", nil, nil)
	var re *flo.RunError
	if !errors.As(err, &re) || re.State != flo.RunFailed || re.Message != "it broke" || st.State != flo.RunFailed {
		t.Fatalf("InvokeAndWait of a failing action = %+v, %v", st, err)
	}
	if _, err := c.Action.InvokeAndWait(waitCtx, "missing", nil, nil); !errors.Is(err, flo.ErrNotFound) {
		t.Fatalf("InvokeAndWait of an unknown action: %v", err)
	}
}

// actWaitRegistered polls until the action exists (TaskWorker.Run registers
// its actions in the background).
func actWaitRegistered(t *testing.T, c *flo.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := c.Action.List(context.Background(), &flo.ActionListOptions{Prefix: name})
		if err == nil && len(l.Actions) > 0 && l.Actions[0].Name == name {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("action %s was not registered", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runWorker runs w until the test ends and checks that Run returned nil.
func runWorker(t *testing.T, w *flo.TaskWorker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker %s: Run = %v", w.ID(), err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestTaskWorker_RetriesPermanentAndPanics(t *testing.T) {
	c, _ := actSetup(t)
	var errs atomic.Int64
	var mu sync.Mutex
	outcomes := map[string][]string{} // run id -> outcome per attempt ("ok" or the error)
	w := flo.NewTaskWorker(c, "w", &flo.TaskWorkerOptions{Concurrency: 4, Block: time.Second, OnError: func(error) { errs.Add(1) },
		OnOutcome: func(t *flo.Task, err error) {
			o := "ok"
			if err != nil {
				o = err.Error()
			}
			mu.Lock()
			outcomes[t.ID] = append(outcomes[t.ID], o)
			mu.Unlock()
		}})
	two := 2
	w.Handle("flaky", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		if t.Attempt < 2 {
			return nil, errors.New("transient")
		}
		return []byte(fmt.Sprintf("ok on attempt %d", t.Attempt)), nil
	}, &flo.ActionRegisterOptions{MaxRetries: &two})
	five := 5
	w.Handle("fatal", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		return nil, flo.Permanent(fmt.Errorf("bad input %q", t.Input))
	}, &flo.ActionRegisterOptions{MaxRetries: &five})
	zero := 0
	w.Handle("panics", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		panic("kaboom")
	}, &flo.ActionRegisterOptions{MaxRetries: &zero})
	runWorker(t, w)
	actWaitRegistered(t, c, "panics")
	r1 := actInvoke(t, c, "flaky", "", nil)
	r2 := actInvoke(t, c, "fatal", "x", nil)
	r3 := actInvoke(t, c, "panics", "", nil)
	if st := actWaitState(t, c, r1, flo.RunCompleted, 10*time.Second); string(st.Result) != "ok on attempt 2" || st.Attempt != 2 {
		t.Fatalf("flaky = %+v", st)
	}
	if st := actWaitState(t, c, r2, flo.RunFailed, 5*time.Second); st.Error != `bad input "x"` || st.Attempt != 1 {
		t.Fatalf("fatal = %+v", st)
	}
	if st := actWaitState(t, c, r3, flo.RunFailed, 5*time.Second); st.Error != "panic: kaboom" {
		t.Fatalf("panics = %+v", st)
	}
	// The states above can be read before the worker has the answers to
	// its last reports; it counts a report, then tells its outcome.
	waitUntil(t, 10*time.Second, "an outcome for each of the four attempts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, o := range outcomes {
			n += len(o)
		}
		return n >= 4
	})
	if w.Completed() != 1 || w.Failed() != 3 || errs.Load() != 0 {
		t.Fatalf("completed %d, failed %d, errors %d", w.Completed(), w.Failed(), errs.Load())
	}
	// Each attempt's outcome was seen once, after the server had it.
	mu.Lock()
	defer mu.Unlock()
	want := map[string][]string{r1: {"transient", "ok"}, r2: {`bad input "x"`}, r3: {"panic: kaboom"}}
	for id, o := range want {
		if !slices.Equal(outcomes[id], o) {
			t.Fatalf("outcomes of %s: %q, want %q", id, outcomes[id], o)
		}
	}
}

func TestTaskWorker_ExtendsLeaseWhileRunning(t *testing.T) {
	c, _ := actSetup(t)
	// Leases long enough that a renewal is not late on a loaded machine.
	w := flo.NewTaskWorker(c, "w", &flo.TaskWorkerOptions{Concurrency: 1, Lease: time.Second, Block: time.Second})
	zero := 0
	w.Handle("slow", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		time.Sleep(2500 * time.Millisecond) // two and a half leases
		return []byte("finished"), nil
	}, &flo.ActionRegisterOptions{Timeout: time.Second, MaxRetries: &zero})
	runWorker(t, w)
	actWaitRegistered(t, c, "slow")
	id := actInvoke(t, c, "slow", "", nil)
	st := actWaitState(t, c, id, flo.RunCompleted, 10*time.Second)
	if string(st.Result) != "finished" || st.Attempt != 1 {
		t.Fatalf("status = %+v", st)
	}
}

func TestTaskWorker_DrainsOnShutdown(t *testing.T) {
	c, _ := actSetup(t)
	w := flo.NewTaskWorker(c, "w", &flo.TaskWorkerOptions{Concurrency: 2, Block: time.Second})
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	w.Handle("drain", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		started <- struct{}{}
		<-release // not ctx: a draining worker lets its handlers finish
		return []byte("drained"), nil
	}, &flo.ActionRegisterOptions{})
	stop := runWorker(t, w)
	var releaseOnce sync.Once
	releaseHandler := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseHandler) // before runWorker's cleanup stops the worker
	actWaitRegistered(t, c, "drain")
	id := actInvoke(t, c, "drain", "", nil)
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not start")
	}
	// The handler runs until released: Run must not return before that,
	// however long the machine takes to get there.
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned before the handler finished")
	case <-time.After(300 * time.Millisecond):
	}
	releaseHandler()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return once the handler finished")
	}
	if st := actStatus(t, c, id); st.State != flo.RunCompleted || string(st.Result) != "drained" {
		t.Fatalf("status after drain = %+v", st)
	}
	// Nothing is claimed after the worker stopped.
	id = actInvoke(t, c, "drain", "", nil)
	time.Sleep(100 * time.Millisecond)
	if st := actStatus(t, c, id); st.State != flo.RunPending {
		t.Fatalf("run after stop = %+v", st)
	}
}

func TestTaskWorker_DrainTimeoutFailsForRetry(t *testing.T) {
	c, _ := actSetup(t)
	w := flo.NewTaskWorker(c, "w", &flo.TaskWorkerOptions{Concurrency: 1, Block: time.Second, DrainTimeout: 100 * time.Millisecond})
	started := make(chan struct{}, 1)
	w.Handle("stuck", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}, &flo.ActionRegisterOptions{})
	stop := runWorker(t, w)
	actWaitRegistered(t, c, "stuck")
	id := actInvoke(t, c, "stuck", "", nil)
	<-started
	stop()
	st := actStatus(t, c, id)
	if st.State != flo.RunPending || !strings.Contains(st.Error, "worker stopped") {
		t.Fatalf("status = %+v", st)
	}
}

// TestTaskWorker_ManyWorkersExactlyOnce: 8 workers process 2,000 runs
// concurrently; every run ends completed, and is completed exactly once.
func TestTaskWorker_ManyWorkersExactlyOnce(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	ctx := context.Background()
	admin := srv.Client(t, flo.Options{})
	actRegister(t, admin, "square", 30*time.Second, 3)
	const runs, workers = 2000, 8
	var mu sync.Mutex
	executions := map[string]int{}
	var ws []*flo.TaskWorker
	for i := range workers {
		c := srv.Client(t, flo.Options{})
		w := flo.NewTaskWorker(c, fmt.Sprintf("w%d", i), &flo.TaskWorkerOptions{Concurrency: 8, Block: time.Second})
		w.Handle("square", func(ctx context.Context, t *flo.Task) ([]byte, error) {
			mu.Lock()
			executions[t.ID]++
			mu.Unlock()
			var n int
			fmt.Sscan(string(t.Input), &n)
			return []byte(fmt.Sprint(n * n)), nil
		}, nil)
		runWorker(t, w)
		ws = append(ws, w)
	}
	ids := make([]string, runs)
	var wg sync.WaitGroup
	for p := range 4 {
		c := srv.Client(t, flo.Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < runs; i += 4 {
				id, err := c.Action.Invoke(ctx, "square", []byte(fmt.Sprint(i)), nil)
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for i, id := range ids {
		for {
			st := actStatus(t, admin, id)
			if st.State == flo.RunCompleted {
				if string(st.Result) != fmt.Sprint(i*i) || st.Attempt != 1 {
					t.Fatalf("run %d = %+v", i, st)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d is %s", i, st.State)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var completed int64
	for _, w := range ws {
		completed += w.Completed()
	}
	mu.Lock()
	defer mu.Unlock()
	if completed != runs || len(executions) != runs {
		t.Fatalf("completed %d, distinct runs executed %d; want %d", completed, len(executions), runs)
	}
	for id, n := range executions {
		if n != 1 {
			t.Fatalf("run %s executed %d times", id, n)
		}
	}
}

// TestAction_SurvivesKill9: runs that were completed, running and pending
// when the server was killed are in the same states after a restart, the
// running one is retried once its lease has expired, and idempotency keys,
// actions and workers survive.
func TestAction_SurvivesKill9(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := flotest.StartProcess(t, "")
	c := flotest.Dial(t, p.Addr, flo.Options{})
	actRegister(t, c, "job", 500*time.Millisecond, 2)
	prio := func(p uint8) *flo.ActionInvokeOptions { return &flo.ActionInvokeOptions{Priority: &p} }
	done := actInvoke(t, c, "job", "a", prio(30))
	running := actInvoke(t, c, "job", "b", prio(20))
	pending := actInvoke(t, c, "job", "c", &flo.ActionInvokeOptions{IdempotencyKey: "key-c"})
	if task := actAwait(t, c, "w", []string{"job"}, 0); task.ID != done {
		t.Fatalf("claimed %s, want %s", task.ID, done)
	}
	if err := c.Worker.Complete(ctx, "w", done, []byte("result-a"), nil); err != nil {
		t.Fatal(err)
	}
	if task := actAwait(t, c, "w", []string{"job"}, 0); task.ID != running {
		t.Fatalf("claimed %s, want %s", task.ID, running)
	}
	p.Kill()
	c.Close()

	p = flotest.StartProcess(t, p.DataDir)
	c = flotest.Dial(t, p.Addr, flo.Options{})
	if st := actStatus(t, c, done); st.State != flo.RunCompleted || string(st.Result) != "result-a" || st.Attempt != 1 {
		t.Fatalf("completed run after restart = %+v", st)
	}
	if st := actStatus(t, c, pending); st.State != flo.RunPending || st.Attempt != 0 {
		t.Fatalf("pending run after restart = %+v", st)
	}
	if st := actStatus(t, c, running); st.Attempt != 1 || (st.State != flo.RunRunning && st.State != flo.RunPending) {
		t.Fatalf("running run after restart = %+v", st)
	}
	if id := actInvoke(t, c, "job", "c again", &flo.ActionInvokeOptions{IdempotencyKey: "key-c"}); id != pending {
		t.Fatalf("idempotency key after restart gave %s, want %s", id, pending)
	}
	fresh := actInvoke(t, c, "job", "d", nil)
	if fresh == done || fresh == running || fresh == pending {
		t.Fatalf("run id %s reused after restart", fresh)
	}
	// Pending runs are claimable at once, in order; the running one only
	// after its lease (and the 1 s backoff).
	for _, want := range []string{pending, fresh} {
		task := actAwait(t, c, "w", []string{"job"}, 0)
		if task.ID != want {
			t.Fatalf("claimed %s, want %s", task.ID, want)
		}
		if err := c.Worker.Complete(ctx, "w", task.ID, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	task := actAwait(t, c, "w2", []string{"job"}, 5*time.Second)
	if task.ID != running || task.Attempt != 2 || string(task.Input) != "b" {
		t.Fatalf("retry after restart = %+v", task)
	}
	// Running again: the expired attempt's "timed out" was shown only while
	// the run waited for this retry.
	if st := actStatus(t, c, running); st.State != flo.RunRunning || st.Attempt != 2 || st.Error != "" {
		t.Fatalf("retried run = %+v", st)
	}
	l, err := c.Action.List(ctx, nil)
	if err != nil || len(l.Actions) != 1 || l.Actions[0].Timeout != 500*time.Millisecond || l.Actions[0].MaxRetries != 2 {
		t.Fatalf("actions after restart = %+v, %v", l, err)
	}
	wl, err := c.Worker.List(ctx, nil)
	if err != nil || len(wl.Workers) != 2 || wl.Workers[0].ID != "w" || wl.Workers[0].Completed != 3 {
		t.Fatalf("workers after restart = %+v, %v", wl, err)
	}
}

func TestWorker_AwaitBatch(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "b", time.Minute, 0)
	// Nothing pending: empty, after the block.
	start := time.Now()
	tasks, err := c.Worker.AwaitBatch(ctx, "w", []string{"b"}, 10, &flo.WorkerAwaitOptions{Block: 100 * time.Millisecond})
	if err != nil || len(tasks) != 0 || time.Since(start) < 90*time.Millisecond {
		t.Fatalf("empty batch = %v, %v after %v", tasks, err, time.Since(start))
	}
	var ids []string
	for i := range 5 {
		p := uint8(i)
		ids = append(ids, actInvoke(t, c, "b", fmt.Sprint(i), &flo.ActionInvokeOptions{Priority: &p}))
	}
	tasks, err = c.Worker.AwaitBatch(ctx, "w", []string{"b"}, 3, nil)
	if err != nil || len(tasks) != 3 {
		t.Fatalf("batch = %v, %v", tasks, err)
	}
	// Highest priority first, each with its own lease.
	for i, task := range tasks {
		if task.ID != ids[4-i] || task.Attempt != 1 || string(task.Input) != fmt.Sprint(4-i) {
			t.Fatalf("task %d = %+v", i, task)
		}
	}
	tasks, err = c.Worker.AwaitBatch(ctx, "w", []string{"b"}, 100, &flo.WorkerAwaitOptions{Lease: 50 * time.Millisecond})
	if err != nil || len(tasks) != 2 {
		t.Fatalf("rest = %v, %v", tasks, err)
	}
	actWaitState(t, c, tasks[0].ID, flo.RunTimedOut, 5*time.Second) // the short lease applied
	if st := actStatus(t, c, ids[4]); st.State != flo.RunRunning {
		t.Fatalf("first batch run = %+v", st)
	}
	// A size below 1 means 1, as a dequeue count does (SEMANTICS D26,
	// docs/limits.md: clamped, never refused), and as in the Python SDK.
	actInvoke(t, c, "b", "x", nil)
	actInvoke(t, c, "b", "y", nil)
	for _, n := range []int{0, -3} {
		if tasks, err := c.Worker.AwaitBatch(ctx, "w", []string{"b"}, n, nil); err != nil || len(tasks) != 1 {
			t.Fatalf("batch of %d = %v, %v", n, tasks, err)
		}
	}
	// A parked batch await returns what is available when it is woken.
	got := make(chan []*flo.Task, 1)
	go func() {
		tasks, err := c.Worker.AwaitBatch(ctx, "w", []string{"b"}, 10, &flo.WorkerAwaitOptions{Block: 5 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- tasks
	}()
	time.Sleep(50 * time.Millisecond) // let it park; correct either way
	id := actInvoke(t, c, "b", "late", nil)
	if tasks := <-got; len(tasks) != 1 || tasks[0].ID != id {
		t.Fatalf("woken batch = %v", tasks)
	}
}

func TestWorker_CompleteAndAwait(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "b", time.Minute, 0)
	var ids []string
	for i := range 4 {
		ids = append(ids, actInvoke(t, c, "b", fmt.Sprint(i), nil))
	}
	first, err := c.Worker.AwaitBatch(ctx, "w", []string{"b"}, 2, nil)
	if err != nil || len(first) != 2 {
		t.Fatalf("first claim %v, %v", first, err)
	}
	// One failed for good, so its completion is refused; one unknown.
	if err := c.Worker.Fail(ctx, "w", first[1].ID, "boom", &flo.WorkerFailOptions{NoRetry: true}); err != nil {
		t.Fatal(err)
	}
	done := []flo.TaskCompletion{{TaskID: first[0].ID, Result: []byte("r0")}, {TaskID: first[1].ID, Result: []byte("r1")}, {TaskID: "run-424242"}}
	next, results, err := c.Worker.CompleteAndAwait(ctx, "w", done, []string{"b"}, 10, nil)
	if err != nil || len(next) != 2 || len(results) != 3 {
		t.Fatalf("CompleteAndAwait = %v, %v, %v", next, results, err)
	}
	if results[0] != nil || !errors.Is(results[1], flo.ErrConflict) || !errors.Is(results[2], flo.ErrNotFound) {
		t.Fatalf("results %v", results)
	}
	if st := actStatus(t, c, first[0].ID); st.State != flo.RunCompleted || string(st.Result) != "r0" {
		t.Fatalf("completed run = %+v", st)
	}
	if st := actStatus(t, c, first[1].ID); st.State != flo.RunFailed {
		t.Fatalf("refused completion changed the run: %+v", st)
	}
	if next[0].ID != ids[2] || next[1].ID != ids[3] {
		t.Fatalf("claimed %s, %s; want %s, %s", next[0].ID, next[1].ID, ids[2], ids[3])
	}
	// With nothing to claim it does not wait, whatever Block says, and the
	// completions still count.
	start := time.Now()
	more, results, err := c.Worker.CompleteAndAwait(ctx, "w", []flo.TaskCompletion{{TaskID: next[0].ID}, {TaskID: next[1].ID, Result: []byte("r3")}},
		[]string{"b"}, 10, &flo.WorkerAwaitOptions{Block: time.Minute})
	if err != nil || len(more) != 0 || results[0] != nil || results[1] != nil || time.Since(start) > 30*time.Second {
		t.Fatalf("empty CompleteAndAwait = %v, %v, %v after %v", more, results, err, time.Since(start))
	}
	if st := actStatus(t, c, ids[3]); st.State != flo.RunCompleted || string(st.Result) != "r3" {
		t.Fatalf("run completed with an empty claim = %+v", st)
	}
	// The limit: 100 completions per call; 101 is refused whole.
	id := actInvoke(t, c, "b", "x", nil)
	claimed, err := c.Worker.AwaitBatch(ctx, "w", []string{"b"}, 1, nil)
	if err != nil || len(claimed) != 1 || claimed[0].ID != id {
		t.Fatalf("claim %v, %v", claimed, err)
	}
	many := make([]flo.TaskCompletion, 101)
	for i := range many {
		many[i] = flo.TaskCompletion{TaskID: fmt.Sprint("run-", 900000+i)}
	}
	many[0].TaskID = id
	if _, _, err := c.Worker.CompleteAndAwait(ctx, "w", many, []string{"b"}, 1, nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("101 completions: %v", err)
	}
	if st := actStatus(t, c, id); st.State != flo.RunRunning {
		t.Fatalf("a refused call completed a run: %+v", st)
	}
	if _, results, err := c.Worker.CompleteAndAwait(ctx, "w", many[:100], []string{"b"}, 1, nil); err != nil || results[0] != nil || !errors.Is(results[99], flo.ErrNotFound) {
		t.Fatalf("100 completions: %v, %v", results, err)
	}
	if st := actStatus(t, c, id); st.State != flo.RunCompleted {
		t.Fatalf("run after 100 completions = %+v", st)
	}
}

func TestTaskWorker_CompletionsRideOnClaims(t *testing.T) {
	srv := flotest.Start(t, flotest.Options{})
	t.Parallel()
	c := srv.Client(t, flo.Options{})
	actRegister(t, c, "job", time.Minute, 0)
	const n = 200
	ids := make([]string, n)
	for i := range ids {
		ids[i] = actInvoke(t, c, "job", fmt.Sprint(i), nil)
	}
	oc := countOps(t, srv.Addr)
	wc := flotest.Dial(t, oc.addr, flo.Options{})
	var outcomes atomic.Int64
	w := flo.NewTaskWorker(wc, "w", &flo.TaskWorkerOptions{Concurrency: 8, Block: 200 * time.Millisecond,
		OnError:   func(err error) { t.Error(err) },
		OnOutcome: func(_ *flo.Task, err error) { outcomes.Add(1) }})
	w.Handle("job", func(_ context.Context, t *flo.Task) ([]byte, error) { return append([]byte("done "), t.Input...), nil }, nil)
	stop := runWorker(t, w)
	for i, id := range ids {
		if st := actWaitState(t, c, id, flo.RunCompleted, 10*time.Second); string(st.Result) != fmt.Sprint("done ", i) {
			t.Fatalf("run %d = %+v", i, st)
		}
	}
	stop()
	if w.Completed() != n || outcomes.Load() != n {
		t.Fatalf("completed %d, outcomes %d; want %d", w.Completed(), outcomes.Load(), n)
	}
	// Most results went out with the claims that followed them.
	if alone := oc.count(wire.OpWorkerComplete); alone > n/4 {
		t.Fatalf("%d of %d completions sent on their own", alone, n)
	}
}

// Results too big to travel together with a claim are sent on their own:
// eight 3 MiB results would not fit one frame.
func TestTaskWorker_BigResultsGoAlone(t *testing.T) {
	c, _ := actSetup(t)
	actRegister(t, c, "big", time.Minute, 0)
	const n = 8
	ids := make([]string, n)
	for i := range ids {
		ids[i] = actInvoke(t, c, "big", fmt.Sprint(i), nil)
	}
	w := flo.NewTaskWorker(c, "w", &flo.TaskWorkerOptions{Concurrency: n, Block: 200 * time.Millisecond,
		OnError: func(err error) { t.Error(err) }})
	w.Handle("big", func(_ context.Context, t *flo.Task) ([]byte, error) {
		return bytes.Repeat(t.Input, 3<<20), nil
	}, nil)
	runWorker(t, w)
	for i, id := range ids {
		st := actWaitState(t, c, id, flo.RunCompleted, 20*time.Second)
		if len(st.Result) != 3<<20 || st.Result[0] != byte('0'+i) {
			t.Fatalf("run %d: %d-byte result", i, len(st.Result))
		}
	}
}

// A result the server cannot take (over 16 MiB) fails the attempt at once,
// with the reason, as the Python Worker does; it used to be refused by
// Complete and left running, untouched, until its lease expired.
func TestTaskWorker_ResultOverTheLimitFailsTheTask(t *testing.T) {
	c, _ := actSetup(t)
	actRegister(t, c, "oversize", time.Minute, 0)
	id := actInvoke(t, c, "oversize", "", nil)
	w := flo.NewTaskWorker(c, "w", &flo.TaskWorkerOptions{Concurrency: 1, Block: 200 * time.Millisecond, Lease: time.Minute})
	w.Handle("oversize", func(_ context.Context, _ *flo.Task) ([]byte, error) {
		return make([]byte, 16<<20+1), nil
	}, nil)
	runWorker(t, w)
	st := actWaitState(t, c, id, flo.RunFailed, 10*time.Second)
	if !strings.Contains(st.Error, "16777217") || st.Attempt != 1 {
		t.Fatalf("run = %+v", st)
	}
	// The failed state can be read before the worker has the answer to its
	// fail, which it counts only then.
	waitUntil(t, 10*time.Second, "the worker to count its report", func() bool { return w.Completed()+w.Failed() >= 1 })
	if w.Completed() != 0 || w.Failed() != 1 {
		t.Fatalf("completed %d, failed %d", w.Completed(), w.Failed())
	}
}

// Completions sent with a claim are as durable as Complete: after kill -9
// the completed run keeps its result and the claimed one is retried.
func TestAction_Kill9KeepsCompletionsSentWithClaims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := flotest.StartProcess(t, "")
	c := flotest.Dial(t, p.Addr, flo.Options{})
	actRegister(t, c, "job", 500*time.Millisecond, 2)
	a := actInvoke(t, c, "job", "a", nil)
	b := actInvoke(t, c, "job", "b", nil)
	if task := actAwait(t, c, "w", []string{"job"}, 0); task.ID != a {
		t.Fatalf("claimed %s, want %s", task.ID, a)
	}
	next, results, err := c.Worker.CompleteAndAwait(ctx, "w", []flo.TaskCompletion{{TaskID: a, Result: []byte("result-a")}}, []string{"job"}, 1, nil)
	if err != nil || results[0] != nil || len(next) != 1 || next[0].ID != b {
		t.Fatalf("CompleteAndAwait = %v, %v, %v", next, results, err)
	}
	p.Kill()
	c.Close()

	p = flotest.StartProcess(t, p.DataDir)
	c = flotest.Dial(t, p.Addr, flo.Options{})
	if st := actStatus(t, c, a); st.State != flo.RunCompleted || string(st.Result) != "result-a" {
		t.Fatalf("completed run after restart = %+v", st)
	}
	task := actAwait(t, c, "w2", []string{"job"}, 5*time.Second)
	if task.ID != b || task.Attempt != 2 {
		t.Fatalf("retry after restart = %+v", task)
	}
}

// statusWait is a blocking status read on its own goroutine.
func statusWait(c *flo.Client, id string, block time.Duration) <-chan *flo.RunStatus {
	ch := make(chan *flo.RunStatus, 1)
	go func() {
		st, err := c.Action.Status(context.Background(), id, &flo.ActionStatusOptions{Block: block})
		if err != nil {
			st = &flo.RunStatus{Error: "status failed: " + err.Error()}
		}
		ch <- st
	}()
	return ch
}

func recvStatus(t *testing.T, ch <-chan *flo.RunStatus, what string) *flo.RunStatus {
	t.Helper()
	select {
	case st := <-ch:
		return st
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: the waiting status never returned", what)
		return nil
	}
}

func TestAction_StatusWaitsForTheRunToEnd(t *testing.T) {
	srv := flotest.Start(t, flotest.Options{})
	c := srv.Client(t, flo.Options{})
	ctx := context.Background()
	actRegister(t, c, "job", 5*time.Second, 0)
	actRegister(t, c, "short", 300*time.Millisecond, 0)

	// Nothing happens: the wait ends with the run as it is.
	id := actInvoke(t, c, "job", "in", nil)
	if st := recvStatus(t, statusWait(c, id, 200*time.Millisecond), "pending run"); st.State != flo.RunPending || st.Error != "" {
		t.Fatalf("status after waiting on a pending run = %+v", st)
	}

	// A wait that times out answers with the run as it is then, not as it
	// was when the wait began.
	early := statusWait(c, id, 1500*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	task, err := c.Worker.Await(ctx, "w", []string{"job"}, nil)
	if err != nil || task == nil {
		t.Fatalf("await = %v, %v", task, err)
	}
	if st := recvStatus(t, early, "claimed run"); st.State != flo.RunRunning || st.Attempt != 1 {
		t.Fatalf("a wait that began before the claim and timed out after it = %+v", st)
	}

	// Two waiters on other connections are both answered by the complete.
	w1 := statusWait(srv.Client(t, flo.Options{}), id, 15*time.Second)
	w2 := statusWait(srv.Client(t, flo.Options{}), id, flo.Forever)
	time.Sleep(100 * time.Millisecond) // the waiters park while the run is running
	if err := c.Worker.Complete(ctx, "w", task.ID, []byte("out"), nil); err != nil {
		t.Fatal(err)
	}
	for i, ch := range []<-chan *flo.RunStatus{w1, w2} {
		if st := recvStatus(t, ch, "complete"); st.State != flo.RunCompleted || string(st.Result) != "out" {
			t.Fatalf("waiter %d got %+v", i, st)
		}
	}
	// An ended run is answered at once, as is an unknown one.
	if st := recvStatus(t, statusWait(c, id, flo.Forever), "ended run"); st.State != flo.RunCompleted {
		t.Fatalf("status of an ended run = %+v", st)
	}
	if _, err := c.Action.Status(ctx, "no-such-run", &flo.ActionStatusOptions{Block: flo.Forever}); !errors.Is(err, flo.ErrNotFound) {
		t.Fatalf("waiting status of an unknown run: %v", err)
	}

	// A fail without retry ends the run too.
	id = actInvoke(t, c, "job", "", nil)
	waiter := statusWait(c, id, 15*time.Second)
	if task, err = c.Worker.Await(ctx, "w", []string{"job"}, nil); err != nil || task == nil {
		t.Fatalf("await = %v, %v", task, err)
	}
	if err := c.Worker.Fail(ctx, "w", task.ID, "no", &flo.WorkerFailOptions{NoRetry: true}); err != nil {
		t.Fatal(err)
	}
	if st := recvStatus(t, waiter, "fail"); st.State != flo.RunFailed || st.Error != "no" {
		t.Fatalf("after fail: %+v", st)
	}

	// So does a lease that expires on the last attempt (the server's pulse).
	id = actInvoke(t, c, "short", "", nil)
	if task, err = c.Worker.Await(ctx, "w", []string{"short"}, nil); err != nil || task == nil {
		t.Fatalf("await = %v, %v", task, err)
	}
	if st := recvStatus(t, statusWait(c, id, 15*time.Second), "lease expiry"); st.State != flo.RunTimedOut {
		t.Fatalf("after the lease expired: %+v", st)
	}
}

// TestAction_InvokeAndWaitDoesNotPoll: against a flo server InvokeAndWait
// sends one invoke, answered when the run ends, instead of polling.
func TestAction_InvokeAndWaitDoesNotPoll(t *testing.T) {
	srv := flotest.Start(t, flotest.Options{})
	c := srv.Client(t, flo.Options{})
	w := flo.NewTaskWorker(c, "w", &flo.TaskWorkerOptions{Block: time.Second})
	w.Handle("slow", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		time.Sleep(600 * time.Millisecond)
		return []byte("done"), nil
	}, &flo.ActionRegisterOptions{})
	runWorker(t, w)
	actWaitRegistered(t, c, "slow")
	oc := countOps(t, srv.Addr)
	invoker := flotest.Dial(t, oc.addr, flo.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := invoker.Action.InvokeAndWait(ctx, "slow", nil, nil)
	if err != nil || string(st.Result) != "done" {
		t.Fatalf("InvokeAndWait = %+v, %v", st, err)
	}
	// The invoke waited for the run's end and answered with its status.
	if n, m := oc.count(wire.OpActionInvoke), oc.count(wire.OpActionStatus); n != 1 || m != 0 {
		t.Fatalf("%d invokes and %d status calls for one 600 ms run; want 1 and 0 (polling would take ~10 status calls)", n, m)
	}
}

// TestAction_InvokeAndWaitWithAServerThatDoesNotWait: a server that knows
// neither INVOKE_WAIT_MS nor a waiting status (an upstream one) answers the
// invoke with the run's ID and every status at once; InvokeAndWait then
// polls until the run ends.
func TestAction_InvokeAndWaitWithAServerThatDoesNotWait(t *testing.T) {
	srv := flotest.Start(t, flotest.Options{})
	c := srv.Client(t, flo.Options{})
	actRegister(t, c, "job", time.Minute, 0)
	// The proxy renames both tags to one no server knows.
	unknown := map[wire.Tag]bool{wire.TagInvokeWaitMs: true, wire.TagBlockMs: true}
	addr := startProxy(t, srv.Addr, func(from io.Reader, to io.Writer) error {
		br := bufio.NewReader(from)
		for {
			f, _, err := wire.ReadFrame(br, nil, 64<<20)
			if err != nil {
				return err
			}
			if req, err := wire.DecodeRequest(f.Payload); err == nil {
				o := bytes.Clone(req.Options)
				for i := 0; i+2 <= len(o); i += 2 + int(o[i+1]) {
					if unknown[wire.Tag(o[i])] {
						o[i] = 0xfe
					}
				}
				req.Options = o
				f.Payload = wire.AppendRequest(nil, &req)
			}
			if _, err := to.Write(wire.AppendFrame(nil, f.RequestID, f.Code, f.Payload)); err != nil {
				return err
			}
		}
	})
	invoker := flotest.Dial(t, addr, flo.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type answer struct {
		st  *flo.RunStatus
		err error
	}
	done := make(chan answer, 1)
	go func() {
		st, err := invoker.Action.InvokeAndWait(ctx, "job", []byte("in"), &flo.ActionWaitOptions{PollInterval: 20 * time.Millisecond})
		done <- answer{st, err}
	}()
	task := actAwait(t, c, "w", []string{"job"}, 10*time.Second)
	if err := c.Worker.Complete(ctx, "w", task.ID, []byte("out"), nil); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil || a.st.RunID != task.ID || string(a.st.Result) != "out" {
		t.Fatalf("InvokeAndWait through a server that does not wait = %+v, %v; want run %s with out", a.st, a.err, task.ID)
	}
}

// TestAction_InvokeAndWaitTimesOutWithTheRunID: a wait that outlives its
// context says which run it was waiting for.
func TestAction_InvokeAndWaitTimesOutWithTheRunID(t *testing.T) {
	c, _ := actSetup(t)
	actRegister(t, c, "nobody", 5*time.Second, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Action.InvokeAndWait(ctx, "nobody", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for run run-") {
		t.Fatalf("InvokeAndWait past its deadline: %v", err)
	}
}

// TestAction_InvokeAndWaitPollsWhenWaitersAreFull: a server at its waiter
// limit refuses the waiting status (OVERLOADED); InvokeAndWait then polls.
func TestAction_InvokeAndWaitPollsWhenWaitersAreFull(t *testing.T) {
	c, ctx := configured(t, func(cfg *config.Config) { cfg.MaxWaiters = 1 })
	actRegister(t, c, "job", 10*time.Second, 0)
	// The one waiter slot is taken by a blocking dequeue.
	parked := make(chan error, 1)
	pctx, stopParked := context.WithCancel(ctx)
	defer func() { stopParked(); <-parked }()
	go func() {
		_, err := c.Queue.Dequeue(pctx, "empty", 1, &flo.QueueDequeueOptions{Block: flo.Forever})
		parked <- err
	}()
	time.Sleep(200 * time.Millisecond)
	go func() {
		task, err := c.Worker.Await(ctx, "w", []string{"job"}, &flo.WorkerAwaitOptions{})
		for err == nil && task == nil {
			time.Sleep(20 * time.Millisecond)
			task, err = c.Worker.Await(ctx, "w", []string{"job"}, nil)
		}
		if err == nil {
			time.Sleep(200 * time.Millisecond)
			err = c.Worker.Complete(ctx, "w", task.ID, []byte("done"), nil)
		}
		if err != nil {
			t.Error(err)
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := c.Action.InvokeAndWait(wctx, "job", nil, nil)
	if err != nil || string(st.Result) != "done" {
		t.Fatalf("InvokeAndWait with no waiter slot free = %+v, %v", st, err)
	}
}

// TaskWorker.Run refuses a nil handler before it claims anything: it used
// to claim the action's runs and fail each attempt ("no handler") until
// they ended failed.
func TestTaskWorker_RunRefusesANilHandler(t *testing.T) {
	c, ctx := actSetup(t)
	actRegister(t, c, "job", 30*time.Second, 0)
	id := actInvoke(t, c, "job", "x", nil)
	w := flo.NewTaskWorker(c, "w1", &flo.TaskWorkerOptions{Block: 100 * time.Millisecond})
	w.Handle("job", nil, nil)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := w.Run(rctx); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("Run with a nil handler = %v, want ErrBadRequest", err)
	}
	st, err := c.Action.Status(ctx, id, nil)
	if err != nil || st.State != flo.RunPending || st.Attempt != 0 {
		t.Fatalf("run after the refused Run = %+v, %v; want pending, never claimed", st, err)
	}
}

// TestTaskWorker_StopsWhenClientCloses: like Queue.Consume, a worker whose
// client is closed under it returns ErrClosed instead of retrying forever.
func TestTaskWorker_StopsWhenClientCloses(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	c, ctx := srv.Client(t, flo.Options{}), context.Background()
	cl, err := flo.Dial(ctx, srv.Addr, flo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := flo.NewTaskWorker(cl, "w", &flo.TaskWorkerOptions{Block: 50 * time.Millisecond})
	handled := make(chan struct{}, 1)
	w.Handle("closing", func(context.Context, *flo.Task) ([]byte, error) {
		handled <- struct{}{}
		return nil, nil
	}, &flo.ActionRegisterOptions{})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	actWaitRegistered(t, c, "closing")
	actInvoke(t, c, "closing", "", nil)
	select {
	case <-handled: // the loop is running
	case <-time.After(5 * time.Second):
		t.Fatal("the worker never ran its handler")
	}
	cl.Close()
	select {
	case err := <-done:
		if !errors.Is(err, flo.ErrClosed) {
			t.Fatalf("Run returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept going on a closed client")
	}
}

// TestAction_LimitsAtTheEdge: the action and worker limits over TCP that
// TestAction_RegisterValidation leaves out, each at its largest allowed
// value and one past; a refused report leaves the run as it was.
func TestAction_LimitsAtTheEdge(t *testing.T) {
	c, ctx := actSetup(t)
	bad := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, flo.ErrBadRequest) {
			t.Errorf("%s: err = %v, want BAD_REQUEST", what, err)
		}
	}
	retries := 100_000
	if err := c.Action.Register(ctx, "job", &flo.ActionRegisterOptions{MaxRetries: &retries, Timeout: time.Minute}); err != nil {
		t.Fatalf("max retries 100000: %v", err)
	}
	retries++
	bad("max retries 100001", c.Action.Register(ctx, "job", &flo.ActionRegisterOptions{MaxRetries: &retries}))
	const month = 30 * 24 * time.Hour
	if _, err := c.Action.Invoke(ctx, "job", nil, &flo.ActionInvokeOptions{Delay: month}); err != nil {
		t.Fatalf("delay of 30 days: %v", err)
	}
	_, err := c.Action.Invoke(ctx, "job", nil, &flo.ActionInvokeOptions{Delay: month + time.Millisecond})
	bad("delay of 30 days + 1 ms", err)
	// Worker IDs and task types are names (1–256 bytes), 256 types a call.
	types := make([]string, 257)
	for i := range types {
		types[i] = fmt.Sprintf("t%03d", i)
	}
	types[0] = "job"
	if err := c.Worker.Register(ctx, strings.Repeat("w", 256), types[:256], nil); err != nil {
		t.Fatalf("256-byte worker id with 256 task types: %v", err)
	}
	bad("257 task types", c.Worker.Register(ctx, "w", types, nil))
	bad("257-byte task type", c.Worker.Register(ctx, "w", []string{strings.Repeat("t", 257)}, nil))
	// A 16 MiB input and a 16 MiB result fit a default frame with their envelopes.
	id, err := c.Action.Invoke(ctx, "job", make([]byte, 16<<20), &flo.ActionInvokeOptions{IdempotencyKey: strings.Repeat("k", 256)})
	if err != nil {
		t.Fatalf("16 MiB input: %v", err)
	}
	_, err = c.Action.Invoke(ctx, "job", make([]byte, 16<<20+1), nil)
	bad("16 MiB + 1 input", err)
	task, err := c.Worker.Await(ctx, "w", []string{"job"}, nil)
	if err != nil || task == nil || task.ID != id || len(task.Input) != 16<<20 {
		t.Fatalf("claim of the 16 MiB run: %v", err)
	}
	if err := c.Worker.Touch(ctx, "w", id, &flo.WorkerTouchOptions{Extend: 24 * time.Hour}); err != nil {
		t.Fatalf("touch extending 24 h: %v", err)
	}
	bad("touch extending 24 h + 1 ms", c.Worker.Touch(ctx, "w", id, &flo.WorkerTouchOptions{Extend: 24*time.Hour + time.Millisecond}))
	bad("fail message of 64 KiB + 1", c.Worker.Fail(ctx, "w", id, strings.Repeat("e", 64<<10+1), nil))
	bad("16 MiB + 1 result", c.Worker.Complete(ctx, "w", id, make([]byte, 16<<20+1), nil))
	if st := actStatus(t, c, id); st.State != flo.RunRunning || st.Error != "" || st.Attempt != 1 {
		t.Fatalf("run after the refused reports: %+v", st)
	}
	if err := c.Worker.Complete(ctx, "w", id, make([]byte, 16<<20), nil); err != nil {
		t.Fatalf("16 MiB result: %v", err)
	}
	if st := actStatus(t, c, id); st.State != flo.RunCompleted || len(st.Result) != 16<<20 {
		t.Fatalf("run after a 16 MiB result: status %v, %d bytes", st.State, len(st.Result))
	}
	// A fail message of exactly 64 KiB is kept whole.
	id2 := actInvoke(t, c, "job", "", nil)
	if task := actAwait(t, c, "w", []string{"job"}, 0); task == nil || task.ID != id2 {
		t.Fatalf("claim: %+v", task)
	}
	msg := strings.Repeat("e", 64<<10)
	if err := c.Worker.Fail(ctx, "w", id2, msg, &flo.WorkerFailOptions{NoRetry: true}); err != nil {
		t.Fatalf("fail message of 64 KiB: %v", err)
	}
	if st := actStatus(t, c, id2); st.State != flo.RunFailed || st.Error != msg {
		t.Fatalf("run failed with a 64 KiB message: status %v, %d-byte error", st.State, len(st.Error))
	}
}
