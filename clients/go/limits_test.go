package flo_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
	"github.com/floruntime/flo/internal/config"
)

// The primitive limits are server flags (config fields); these tests set
// each one low through the config and check it over TCP at its edge: the
// last item allowed succeeds, the next one is refused with OVERLOADED (or,
// for a DLQ, evicts the oldest), and what exists keeps working.

// configured starts a server whose config set changes and returns a client.
func configured(t *testing.T, set func(*config.Config)) (*flo.Client, context.Context) {
	t.Helper()
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{Config: set})
	return srv.Client(t, flo.Options{}), context.Background()
}

func TestLimits_StreamMaxStreamsFromConfig(t *testing.T) {
	c, ctx := configured(t, func(c *config.Config) { c.StreamMaxStreams = 2 })
	for _, s := range []string{"a", "b"} {
		if _, err := c.Stream.Append(ctx, s, []byte("x"), nil); err != nil {
			t.Fatalf("stream %s (within the limit): %v", s, err)
		}
	}
	if _, err := c.Stream.Append(ctx, "c", []byte("x"), nil); !errors.Is(err, flo.ErrOverloaded) {
		t.Fatalf("third stream: err = %v, want OVERLOADED", err)
	}
	if _, err := c.Stream.Append(ctx, "a", []byte("y"), nil); err != nil {
		t.Fatalf("existing stream after the refusal: %v", err)
	}
}

func TestLimits_StreamMaxGroupsFromConfig(t *testing.T) {
	c, ctx := configured(t, func(c *config.Config) { c.StreamMaxGroups = 1 })
	if err := c.Stream.GroupJoin(ctx, "ev", "g1", "w", nil); err != nil {
		t.Fatalf("first group: %v", err)
	}
	if err := c.Stream.GroupJoin(ctx, "ev", "g2", "w", nil); !errors.Is(err, flo.ErrOverloaded) {
		t.Fatalf("second group: err = %v, want OVERLOADED", err)
	}
	if err := c.Stream.GroupJoin(ctx, "ev", "g1", "w2", nil); err != nil {
		t.Fatalf("joining the existing group: %v", err)
	}
}

func TestLimits_ActionMaxActionsFromConfig(t *testing.T) {
	c, ctx := configured(t, func(c *config.Config) { c.ActionMaxActions = 1 })
	if err := c.Action.Register(ctx, "a", nil); err != nil {
		t.Fatalf("first action: %v", err)
	}
	if err := c.Action.Register(ctx, "b", nil); !errors.Is(err, flo.ErrOverloaded) {
		t.Fatalf("second action: err = %v, want OVERLOADED", err)
	}
	if err := c.Action.Register(ctx, "a", &flo.ActionRegisterOptions{Description: "again"}); err != nil {
		t.Fatalf("re-registering the existing action: %v", err)
	}
}

func TestLimits_QueueDLQMaxFromConfig(t *testing.T) {
	c, ctx := configured(t, func(c *config.Config) { c.QueueDLQMax = 2 })
	seqs := enqueueAll(t, c, "jobs", "m1", "m2", "m3")
	for i, seq := range seqs {
		if err := c.Queue.Nack(ctx, "jobs", []uint64{seq}, &flo.QueueNackOptions{ToDLQ: true}); err != nil {
			t.Fatal(err)
		}
		dlq, err := c.Queue.DLQList(ctx, "jobs", nil)
		if err != nil {
			t.Fatal(err)
		}
		// Up to the cap every entry stays; past it the oldest is evicted.
		want := seqs[max(0, i-1) : i+1]
		if len(dlq) != len(want) {
			t.Fatalf("after %d dead letters: dlq = %+v, want seqs %v", i+1, dlq, want)
		}
		for j := range want {
			if dlq[j].Seq != want[j] {
				t.Fatalf("after %d dead letters: dlq = %+v, want seqs %v", i+1, dlq, want)
			}
		}
	}
}

func TestLimits_StreamMaxPendingFromConfig(t *testing.T) {
	c, ctx := configured(t, func(c *config.Config) { c.StreamMaxPending = 2 })
	for _, p := range []string{"a", "b", "c"} {
		if _, err := c.Stream.Append(ctx, "ev", []byte(p), nil); err != nil {
			t.Fatal(err)
		}
	}
	read := func() []uint64 {
		t.Helper()
		rs, err := c.Stream.GroupRead(ctx, "ev", "g", "w", &flo.StreamGroupReadOptions{Count: 10})
		if err != nil {
			t.Fatal(err)
		}
		var offs []uint64
		for _, r := range rs {
			offs = append(offs, r.Offset)
		}
		return offs
	}
	// The PEL takes up to the limit, then nothing more (empty, not an error).
	if got := read(); !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Fatalf("group read up to the pending limit: %v", got)
	}
	if got := read(); got != nil {
		t.Fatalf("group read with a full PEL: %v", got)
	}
	if err := c.Stream.GroupAck(ctx, "ev", "g", []uint64{1}, nil); err != nil {
		t.Fatal(err)
	}
	if got := read(); !reflect.DeepEqual(got, []uint64{3}) {
		t.Fatalf("group read after an ack made room: %v", got)
	}
}

func TestLimits_StreamMaxDeadLettersFromConfig(t *testing.T) {
	c, ctx := configured(t, func(c *config.Config) { c.StreamMaxDeadLetters = 2 })
	if err := c.Stream.GroupJoin(ctx, "ev", "g", "w", &flo.StreamGroupJoinOptions{MaxDeliver: 1}); err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{"a", "b", "c"} {
		if _, err := c.Stream.Append(ctx, "ev", []byte(p), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Stream.GroupRead(ctx, "ev", "g", "w", &flo.StreamGroupReadOptions{Count: 1}); err != nil {
			t.Fatal(err)
		}
		if err := c.Stream.GroupNack(ctx, "ev", "g", []uint64{uint64(i + 1)}, nil); err != nil {
			t.Fatal(err)
		}
		dead, err := c.Stream.GroupDLQList(ctx, "ev", "g", nil)
		if err != nil {
			t.Fatal(err)
		}
		// Up to the cap every dead letter stays; past it the lowest offset goes.
		var got []uint64
		for _, d := range dead {
			got = append(got, d.Offset)
		}
		want := []uint64{1, 2, 3}[max(0, i-1) : i+1]
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after %d dead letters: %v, want %v", i+1, got, want)
		}
	}
}

func TestLimits_ActionMaxWorkersFromConfig(t *testing.T) {
	c, ctx := configured(t, func(c *config.Config) { c.ActionMaxWorkers = 1 })
	if err := c.Worker.Register(ctx, "w1", []string{"job"}, nil); err != nil {
		t.Fatalf("first worker: %v", err)
	}
	if err := c.Worker.Register(ctx, "w2", []string{"job"}, nil); !errors.Is(err, flo.ErrOverloaded) {
		t.Fatalf("second worker: err = %v, want OVERLOADED", err)
	}
	if _, err := c.Worker.Await(ctx, "w3", []string{"job"}, nil); !errors.Is(err, flo.ErrOverloaded) {
		t.Fatalf("await of a third worker (implicit register): err = %v, want OVERLOADED", err)
	}
	if err := c.Worker.Register(ctx, "w1", []string{"job", "other"}, nil); err != nil {
		t.Fatalf("re-registering the existing worker: %v", err)
	}
	if wl, err := c.Worker.List(ctx, nil); err != nil || len(wl.Workers) != 1 || wl.Workers[0].ID != "w1" {
		t.Fatalf("workers after the refusals = %+v, %v", wl, err)
	}
}

func TestLimits_ActionMaxLiveRunsFromConfig(t *testing.T) {
	c, ctx := configured(t, func(c *config.Config) { c.ActionMaxLiveRuns = 1 })
	if err := c.Action.Register(ctx, "job", nil); err != nil {
		t.Fatal(err)
	}
	first, err := c.Action.Invoke(ctx, "job", []byte("1"), nil)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	if _, err := c.Action.Invoke(ctx, "job", []byte("2"), nil); !errors.Is(err, flo.ErrOverloaded) {
		t.Fatalf("second unfinished run: err = %v, want OVERLOADED", err)
	}
	task, err := c.Worker.Await(ctx, "w", []string{"job"}, nil)
	if err != nil || task == nil || task.ID != first {
		t.Fatalf("the refused invoke left a run behind, or lost the first: %+v, %v", task, err)
	}
	if err := c.Worker.Complete(ctx, "w", task.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	// A run that ended makes room.
	if _, err := c.Action.Invoke(ctx, "job", []byte("3"), nil); err != nil {
		t.Fatalf("run after the first ended: %v", err)
	}
}

func TestLimits_QueueDedupHoldFromConfig(t *testing.T) {
	const hold = 300 * time.Millisecond
	c, ctx := configured(t, func(c *config.Config) { c.QueueDedupHold = hold })
	dedup := &flo.QueueEnqueueOptions{DedupKey: "once"}
	start := time.Now()
	first, err := c.Queue.Enqueue(ctx, "jobs", []byte("a"), dedup)
	if err != nil {
		t.Fatal(err)
	}
	ms := mustDequeue(t, c, "jobs", 1, nil)
	if err := c.Queue.Ack(ctx, "jobs", queueSeqs(ms), nil); err != nil {
		t.Fatal(err)
	}
	// Acked, but still inside the hold: a duplicate gets the first seq.
	again, err := c.Queue.Enqueue(ctx, "jobs", []byte("b"), dedup)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < hold && again != first {
		t.Fatalf("duplicate inside the %v hold got seq %d, want %d", hold, again, first)
	}
	time.Sleep(time.Until(start.Add(hold + 50*time.Millisecond)))
	if later, err := c.Queue.Enqueue(ctx, "jobs", []byte("c"), dedup); err != nil || later == first {
		t.Fatalf("enqueue after the hold: seq %d, %v; want a new message", later, err)
	}
}
