package server_test

import (
	"context"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/wire"
)

// invokeWait sends ACTION_INVOKE of action with INVOKE_WAIT_MS = ms (and an
// idempotency key when key is not empty).
func (r *rawConn) invokeWait(id uint64, action, key string, ms uint32) {
	r.t.Helper()
	inv := wire.ActionInvoke{Priority: 10, Input: []byte("in")}
	if key != "" {
		inv.IdempotencyKey = []byte(key)
	}
	r.request(id, wire.OpActionInvoke, wire.Request{Key: []byte(action), Value: wire.AppendActionInvoke(nil, &inv),
		Options: wire.AppendU32(nil, wire.TagInvokeWaitMs, ms)})
}

// statusReply reads a reply that must be an OK ACTION_STATUS payload.
func (r *rawConn) statusReply(id uint64) wire.RunStatus {
	r.t.Helper()
	f := r.reply()
	if f.RequestID != id || wire.Status(f.Code) != wire.StatusOK {
		r.t.Fatalf("reply %d: status %d %q", f.RequestID, f.Code, f.Payload)
	}
	st, err := wire.DecodeRunStatus(f.Payload)
	if err != nil {
		r.t.Fatalf("reply %d is not a run status (%v): %q", id, err, f.Payload)
	}
	return st
}

// ACTION_INVOKE with INVOKE_WAIT_MS (docs/protocol.md) answers with the
// run's status: when the run ends, or at the end of the wait with the state
// it is in; a refused invoke is answered as usual, and an idempotent one
// waits for the run its key names.
func TestServer_InvokeWaitAnswersWithTheRunsStatus(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	c := srv.Client(t, flo.Options{})
	ctx := context.Background()
	if err := c.Action.Register(ctx, "job", &flo.ActionRegisterOptions{Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, srv.Addr)

	// Nobody works on it: the wait ends and the status says pending.
	start := time.Now()
	rc.invokeWait(1, "job", "", 300)
	st := rc.statusReply(1)
	if st.State != wire.RunPending || len(st.RunID) == 0 || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("after the wait: %+v after %v", st, time.Since(start))
	}
	first := string(st.RunID)

	// A worker completes the next one while the invoke waits.
	rc.invokeWait(2, "job", "k", 0) // 0: without limit
	claim := func() string {
		t.Helper()
		task, err := c.Worker.Await(ctx, "w", []string{"job"}, &flo.WorkerAwaitOptions{Block: 10 * time.Second})
		if err != nil || task == nil {
			t.Fatalf("await: %v, %v", task, err)
		}
		return task.ID
	}
	if id := claim(); id != first {
		t.Fatalf("claimed %s, want the first run %s", id, first)
	}
	keyed := claim()
	if err := c.Worker.Complete(ctx, "w", keyed, []byte("out"), nil); err != nil {
		t.Fatal(err)
	}
	st = rc.statusReply(2)
	if string(st.RunID) != keyed || st.State != wire.RunCompleted || string(st.Output) != "out" {
		t.Fatalf("waited invoke answered %+v, want run %s completed with out", st, keyed)
	}
	// The same idempotency key names the ended run: answered at once.
	rc.invokeWait(3, "job", "k", 60_000)
	if st = rc.statusReply(3); string(st.RunID) != keyed || st.State != wire.RunCompleted {
		t.Fatalf("idempotent waited invoke answered %+v", st)
	}

	// A refused invoke is refused as without the wait.
	rc.invokeWait(4, "nope", "", 60_000)
	if f := rc.reply(); f.RequestID != 4 || wire.Status(f.Code) != wire.StatusNotFound {
		t.Fatalf("unknown action: reply %d status %d", f.RequestID, f.Code)
	}
	// Replies stay in request order behind a waiting invoke.
	rc.invokeWait(5, "job", "", 200)
	rc.request(6, wire.OpPing, wire.Request{})
	if st = rc.statusReply(5); st.State != wire.RunPending {
		t.Fatalf("second wait: %+v", st)
	}
	if f := rc.reply(); f.RequestID != 6 || string(f.Payload) != "PONG" {
		t.Fatalf("after the waiting invoke: reply %d %q", f.RequestID, f.Payload)
	}
}

// A waited invoke on a server that holds as many waiting calls as it
// allows is not refused — the run exists once the invoke is applied — but
// answered with the run's status at once.
func TestServer_InvokeWaitAtTheWaiterLimitAnswersAtOnce(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{Config: func(cfg *config.Config) { cfg.MaxWaiters = 1 }})
	c := srv.Client(t, flo.Options{})
	ctx := context.Background()
	if err := c.Action.Register(ctx, "job", nil); err != nil {
		t.Fatal(err)
	}
	// The one waiter slot: a parked dequeue.
	parked := dialRaw(t, srv.Addr)
	parked.request(1, wire.OpQueueDequeue, wire.Request{Key: []byte("q"), Options: wire.AppendU32(wire.AppendU32(nil, wire.TagCount, 1), wire.TagBlockMs, 0)})
	rc := dialRaw(t, srv.Addr)
	waitUntil(t, func() bool {
		rc.request(9, wire.OpActionStatus, wire.Request{Key: []byte("run-424242"), Options: wire.AppendU32(nil, wire.TagBlockMs, 60_000)})
		return wire.Status(rc.reply().Code) == wire.StatusOverloaded
	})
	start := time.Now()
	rc.invokeWait(1, "job", "", 60_000)
	st := rc.statusReply(1)
	if st.State != wire.RunPending || time.Since(start) > 30*time.Second {
		t.Fatalf("at the waiter limit: %+v after %v", st, time.Since(start))
	}
	if got, err := c.Action.Status(ctx, string(st.RunID), nil); err != nil || got.State != flo.RunPending {
		t.Fatalf("the run the answer names: %+v, %v", got, err)
	}
}
