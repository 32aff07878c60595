package flo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/floruntime/flo/wire"
)

// TaskHandler executes one task and returns the run's result. A returned
// error fails the attempt: it is retried (while the action has retries
// left) unless the error is wrapped with Permanent. A panic, or a result
// over 16 MiB (the server's limit), fails the attempt like an error. ctx is
// cancelled only when the worker stops and its drain timeout has passed;
// the handler should then return promptly.
// Handlers must be idempotent: a run executes at least once, and a retry
// carries Task.Attempt > 1.
type TaskHandler func(ctx context.Context, t *Task) ([]byte, error)

// permanentError marks an error that must not be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that a TaskWorker fails the run at once instead of
// retrying it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) came from Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// TaskWorkerOptions configures a TaskWorker. The zero value is the default.
type TaskWorkerOptions struct {
	Namespace string
	// Concurrency is the number of handlers that run at once (default 10).
	// The worker claims a task only when a handler slot is free.
	Concurrency int
	// Pollers is the number of await calls in flight at once (default 1).
	// Each claims as many tasks as there are free handler slots, so one
	// is usually enough.
	Pollers int
	// Lease is the lease taken on each claimed task, in place of the
	// action's timeout (default 30 s). While a handler runs the lease is
	// renewed about every third of it (normally at most 5/12 apart), so a
	// crashed worker's tasks are retried about Lease after its last
	// renewal.
	Lease time.Duration
	// Block is how long one await call waits for work (default 30 s).
	Block time.Duration
	// DrainTimeout bounds how long Run waits, once its context ends, for
	// running handlers before cancelling their contexts (default 30 s).
	DrainTimeout time.Duration
	// OnError, if set, receives errors the worker cannot return: failed
	// awaits, touches and reports. It must not block.
	OnError func(error)
	// OnOutcome, if set, is called once per claimed task after its outcome
	// has been reported: err is nil when the server accepted the handler's
	// result (the run is completed), otherwise the handler's error or the
	// reason the report failed. It must not block.
	OnOutcome func(t *Task, err error)
}

// TaskWorker runs handlers for actions: it registers as a worker, claims
// tasks with long polls, runs up to Concurrency handlers at once, renews
// their leases while they run, and reports each outcome exactly once
// (complete on success; fail with retry on an error or panic; fail without
// retry on a Permanent error). A result usually travels with the next claim,
// which follows at once (Worker.CompleteAndAwait). Cancelling Run's context
// stops claiming and drains the running handlers.
type TaskWorker struct {
	c  *Client
	id string
	o  TaskWorkerOptions

	mu       sync.Mutex
	handlers map[string]TaskHandler
	register map[string]*ActionRegisterOptions

	completed atomic.Int64
	failed    atomic.Int64
}

// heldResult is a handler's result waiting to ride on the next claim.
type heldResult struct {
	t      *Task
	result []byte
}

// NewTaskWorker returns a worker with ID workerID using c. Add handlers
// with Handle, then call Run.
func NewTaskWorker(c *Client, workerID string, o *TaskWorkerOptions) *TaskWorker {
	w := &TaskWorker{c: c, id: workerID, handlers: map[string]TaskHandler{}, register: map[string]*ActionRegisterOptions{}}
	if o != nil {
		w.o = *o
	}
	if w.o.Concurrency <= 0 {
		w.o.Concurrency = 10
	}
	if w.o.Pollers <= 0 {
		w.o.Pollers = 1
	}
	w.o.Pollers = min(w.o.Pollers, w.o.Concurrency)
	if w.o.Lease <= 0 {
		w.o.Lease = 30 * time.Second
	}
	if w.o.Block <= 0 {
		w.o.Block = 30 * time.Second
	}
	if w.o.DrainTimeout <= 0 {
		w.o.DrainTimeout = 30 * time.Second
	}
	return w
}

// Handle runs h for tasks of the action named action. If register is
// non-nil, Run registers the action with those settings before it starts
// (replacing any existing settings); with nil the action is left as it is.
// Handle must be called before Run.
func (w *TaskWorker) Handle(action string, h TaskHandler, register *ActionRegisterOptions) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handlers[action] = h
	if register != nil {
		r := *register
		r.Namespace = w.o.Namespace
		w.register[action] = &r
	} else {
		delete(w.register, action)
	}
}

// ID returns the worker ID.
func (w *TaskWorker) ID() string { return w.id }

// Completed returns the number of tasks this worker completed.
func (w *TaskWorker) Completed() int64 { return w.completed.Load() }

// Failed returns the number of task attempts this worker reported failed.
func (w *TaskWorker) Failed() int64 { return w.failed.Load() }

// Run registers the actions given to Handle with settings, then the worker,
// then claims and executes tasks until ctx ends. It then stops claiming,
// waits up to DrainTimeout for running handlers (cancelling their contexts
// after that, and failing their tasks for retry if they return an error),
// and returns nil. It returns an error if it could not start, and — after
// the same drain — ErrClosed when the client is closed under it.
func (w *TaskWorker) Run(ctx context.Context) error {
	w.mu.Lock()
	handlers := make(map[string]TaskHandler, len(w.handlers))
	for name, h := range w.handlers {
		handlers[name] = h
	}
	register := make(map[string]*ActionRegisterOptions, len(w.register))
	for name, o := range w.register {
		register[name] = o
	}
	w.mu.Unlock()
	if len(handlers) == 0 {
		return errors.New("flo: TaskWorker.Run: no handlers")
	}
	types := make([]string, 0, len(handlers))
	for name, h := range handlers {
		if h == nil {
			return fmt.Errorf("%w: flo: TaskWorker.Run: nil handler for action %q", ErrBadRequest, name)
		}
		types = append(types, name)
	}
	slices.Sort(types)
	for _, name := range types {
		if o := register[name]; o != nil {
			if err := w.c.Action.Register(ctx, name, o); err != nil {
				return fmt.Errorf("flo: register action %q: %w", name, err)
			}
		}
	}
	if err := w.c.Worker.Register(ctx, w.id, types, &WorkerRegisterOptions{Namespace: w.o.Namespace, Capacity: w.o.Concurrency}); err != nil {
		return fmt.Errorf("flo: register worker %q: %w", w.id, err)
	}

	// Handlers run under their own context, which outlives ctx by the
	// drain timeout.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	r := &taskRun{loop: ctx, handlers: hctx, types: types, handle: handlers,
		results: &rider[heldResult]{maxItems: maxAwaitBatch, maxBytes: maxHeldBytes},
		leases:  startLeaseKeeper(w.o.Lease/3, w.renewLeases)}
	defer r.leases.close()
	slots := make(chan struct{}, w.o.Concurrency)
	var running, pollers sync.WaitGroup
	for range w.o.Pollers {
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			w.poll(r, slots, &running)
		}()
	}
	pollers.Wait()
	// Nothing claims any more: send what is held now, and after the drain
	// whatever a handler held while the loop was stopping.
	w.completeEach(r.results.drain())
	drained := make(chan struct{})
	go func() { running.Wait(); close(drained) }()
	timer := time.NewTimer(w.o.DrainTimeout)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
		hcancel()
		<-drained
	}
	w.completeEach(r.results.drain())
	if r.closed.Load() {
		return ErrClosed
	}
	return nil
}

// taskRun is what one Run's poll loops and handlers share.
type taskRun struct {
	loop     context.Context // Run's: claiming stops when it ends
	handlers context.Context // outlives loop by the drain timeout
	types    []string
	handle   map[string]TaskHandler
	// results ride on the next claim when one is about to happen (rider),
	// which then does not wait for work (Worker.CompleteAndAwait).
	results *rider[heldResult]
	// leases renews running tasks' leases every third of the lease.
	leases *leaseKeeper[string]
	// closed is set when a poll loop stopped because the client was closed.
	closed atomic.Bool
}

// poll claims tasks while the run lasts, as many per await as there are
// free handler slots.
func (w *TaskWorker) poll(r *taskRun, slots chan struct{}, running *sync.WaitGroup) {
	pullLoop(r.loop, slots, maxAwaitBatch, 5*time.Second,
		func(n int) ([]*Task, error) { return w.claim(r, n) },
		func(t *Task) { w.execute(r, t) },
		func(err error) bool {
			if errors.Is(err, ErrClosed) {
				r.closed.Store(true)
				return true
			}
			w.report(fmt.Errorf("flo: worker %s: await: %w", w.id, err))
			return false
		}, running)
}

// maxAwaitBatch is the server's limit on tasks (and completions) per await.
const maxAwaitBatch = 100

// claim awaits up to n tasks, sending the held results with the call.
func (w *TaskWorker) claim(r *taskRun, n int) ([]*Task, error) {
	held, waits := r.results.take(false)
	o := &WorkerAwaitOptions{Namespace: w.o.Namespace, Block: w.o.Block, Lease: w.o.Lease}
	var tasks []*Task
	var errs []error
	var err error
	if len(held) == 0 {
		tasks, err = w.c.Worker.AwaitBatch(r.loop, w.id, r.types, n, o)
	} else {
		done := make([]TaskCompletion, len(held))
		for i, h := range held {
			done[i] = TaskCompletion{TaskID: h.t.ID, Result: h.result}
		}
		tasks, errs, err = w.c.Worker.CompleteAndAwait(r.loop, w.id, done, r.types, n, o)
	}
	r.results.fetched(waits, err)
	if err != nil {
		// Whether they were applied is unknown; completing again is
		// harmless (the first terminal report wins).
		w.completeEach(held)
		return nil, err
	}
	for i, h := range held {
		if errs[i] != nil {
			errs[i] = fmt.Errorf("flo: worker %s: complete %s: %w", w.id, h.t.ID, errs[i])
			w.report(errs[i])
		}
		w.settled(h.t, errs[i])
	}
	return tasks, nil
}

// maxHeldBytes bounds the results one claim carries, far below the
// server's frame limit: a big result goes on its own.
const maxHeldBytes = 1 << 20

// completeEach reports each result with its own Complete call.
func (w *TaskWorker) completeEach(held []heldResult) {
	for _, h := range held {
		err := w.reportCall(func(ctx context.Context) error {
			return w.c.Worker.Complete(ctx, w.id, h.t.ID, h.result, &WorkerCompleteOptions{Namespace: w.o.Namespace})
		}, "complete", h.t)
		w.settled(h.t, err)
	}
}

// settled counts a completion the server answered (err nil: accepted) and
// reports the task's outcome.
func (w *TaskWorker) settled(t *Task, err error) {
	if err == nil {
		w.completed.Add(1)
	}
	w.outcome(t, err)
}

// execute runs one task and reports its outcome.
func (w *TaskWorker) execute(r *taskRun, t *Task) {
	h := r.handle[t.ActionName]
	var result []byte
	var err error
	if h == nil {
		err = fmt.Errorf("worker %s has no handler for action %q", w.id, t.ActionName)
	} else {
		r.leases.add(t.ID)
		result, err = runHandler(r.handlers, h, t)
		r.leases.remove(t.ID)
		if err == nil && len(result) > wire.MaxTaskDataBytes {
			// The server would refuse the complete and the run would stay
			// running until its lease expired: fail the attempt now, with
			// the reason (as the Python Worker does).
			err = fmt.Errorf("result is %d bytes; at most %d allowed", len(result), wire.MaxTaskDataBytes)
		}
	}
	switch {
	case err == nil:
		if held := (heldResult{t, result}); !r.results.hold(r.loop, held, len(result)) {
			w.completeEach([]heldResult{held})
		}
		return
	case r.handlers.Err() != nil:
		err = fmt.Errorf("worker stopped: %w", err)
	}
	msg := cutUTF8(err.Error(), wire.MaxFailMessageBytes)
	noRetry := IsPermanent(err) && r.handlers.Err() == nil
	if rerr := w.reportCall(func(ctx context.Context) error {
		return w.c.Worker.Fail(ctx, w.id, t.ID, msg, &WorkerFailOptions{Namespace: w.o.Namespace, NoRetry: noRetry})
	}, "fail", t); rerr == nil {
		w.failed.Add(1)
	}
	w.outcome(t, err)
}

func (w *TaskWorker) outcome(t *Task, err error) {
	if w.o.OnOutcome != nil {
		w.o.OnOutcome(t, err)
	}
}

// runHandler runs h, turning a panic into an error.
func runHandler(ctx context.Context, h TaskHandler, t *Task) (result []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			result, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return h(ctx, t)
}

// renewLeases touches each due task; a task this worker no longer holds
// (CONFLICT or NOT_FOUND) is lost and not renewed again, and one whose
// touch failed otherwise is tried again soon.
func (w *TaskWorker) renewLeases(ctx context.Context, ids []string) (lost, failed []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.c.Worker.Touch(ctx, w.id, id, &WorkerTouchOptions{Namespace: w.o.Namespace, Extend: w.o.Lease})
			switch {
			case errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound):
				mu.Lock()
				lost = append(lost, id)
				mu.Unlock()
			case err != nil:
				w.report(fmt.Errorf("flo: worker %s: touch %s: %w", w.id, id, err))
				mu.Lock()
				failed = append(failed, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lost, failed
}

// reportCall sends a complete or fail, retrying connection failures a few
// times; a server verdict (OK or an error status) is final. It returns nil
// if the server accepted the report, else the (reported) error.
func (w *TaskWorker) reportCall(call func(context.Context) error, what string, t *Task) error {
	delay := 50 * time.Millisecond
	for try := 0; ; try++ {
		err := call(context.Background())
		if err == nil {
			return nil
		}
		if try >= 4 || !(errors.Is(err, ErrConnection) || errors.Is(err, context.DeadlineExceeded)) {
			err = fmt.Errorf("flo: worker %s: %s %s: %w", w.id, what, t.ID, err)
			w.report(err)
			return err
		}
		time.Sleep(delay)
		delay *= 2
	}
}

func (w *TaskWorker) report(err error) {
	if w.o.OnError != nil {
		w.o.OnError(err)
	}
}

// cutUTF8 cuts s to at most n bytes without splitting a character: for
// failure texts (fail messages, nack reasons), where a cut text beats a
// refused call.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
