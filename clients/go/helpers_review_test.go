package flo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
)

// Stream.Consume refuses a nil handler, as Queue.Consume does, before it
// joins or reads: it used to read records and nack each one (the nil call
// panicked), running them down to the dead-letter list.
func TestStream_ConsumeRefusesANilHandler(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "jobs", 3)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.Stream.Consume(cctx, "jobs", "g", "w1", nil, &flo.StreamConsumeOptions{MaxDeliver: 1, Poll: 100 * time.Millisecond})
	if !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("Consume with a nil handler = %v, want ErrBadRequest", err)
	}
	rs, err := c.Stream.GroupRead(ctx, "jobs", "g", "w2", &flo.StreamGroupReadOptions{Count: 10})
	if err != nil || len(rs) != 3 {
		t.Fatalf("group read after the refused Consume = %d records, %v; want all 3", len(rs), err)
	}
	for _, r := range rs {
		if r.Redelivered {
			t.Fatalf("record %d was delivered before", r.Offset)
		}
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
