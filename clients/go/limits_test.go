package flo_test

import (
	"context"
	"errors"
	"testing"

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
