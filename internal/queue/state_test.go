package queue

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMheap_TopAndDueByMatchSortedOrder checks the non-destructive heap
// walks against a full sort, and that removals keep the heap consistent.
func TestMheap_TopAndDueByMatchSortedOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		ready := mheap{}
		timers := mheap{byDue: true}
		var all []*message
		for i := range rng.IntN(300) {
			m := &message{seq: uint64(i + 1), pos: uint64(rng.IntN(1000)), prio: uint8(rng.IntN(4)), due: int64(rng.IntN(50))}
			all = append(all, m)
			ready.push(m)
		}
		for _, m := range all {
			c := *m
			timers.push(&c)
		}
		// Remove a few from the middle.
		for range min(len(ready.s), 10) {
			ready.remove(rng.IntN(len(ready.s)))
		}
		sorted := slices.Clone(ready.s)
		slices.SortFunc(sorted, func(a, b *message) int {
			if ready.less(a, b) {
				return -1
			}
			if ready.less(b, a) {
				return 1
			}
			return 0
		})
		for _, k := range []int{0, 1, 7, 100, 1000} {
			got := ready.top(k)
			want := sorted[:min(k, len(sorted))]
			if !slices.Equal(seqsOfMsgs(got), seqsOfMsgs(want)) && !samePrioPos(got, want) {
				t.Fatalf("round %d top(%d) = %v, want %v", round, k, seqsOfMsgs(got), seqsOfMsgs(want))
			}
		}
		for i, m := range ready.s {
			if m.idx != i {
				t.Fatalf("idx %d at %d", m.idx, i)
			}
		}
		now := int64(rng.IntN(60))
		got := timers.dueBy(now)
		var want []*message
		for _, m := range timers.s {
			if m.due <= now {
				want = append(want, m)
			}
		}
		slices.SortFunc(want, func(a, b *message) int {
			if timers.less(a, b) {
				return -1
			}
			return 1
		})
		if !slices.Equal(seqsOfMsgs(got), seqsOfMsgs(want)) {
			t.Fatalf("round %d dueBy(%d) = %v, want %v", round, now, seqsOfMsgs(got), seqsOfMsgs(want))
		}
	}
}

func seqsOfMsgs(ms []*message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.seq
	}
	return out
}

// samePrioPos accepts a different order only among equal keys (the test
// draws positions at random, so they may repeat; real positions never do).
func samePrioPos(a, b []*message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].prio != b[i].prio || a[i].pos != b[i].pos {
			return false
		}
	}
	return true
}
