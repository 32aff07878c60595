package action

import "github.com/floruntime/flo/internal/indexheap"

// readyQueue holds the claimable runs of one (namespace, task type) in
// dispatch order: highest priority first, then the earliest time the run
// became claimable, then creation, then sequence (a total order, so ties
// never depend on heap history). Each run records its index (qi) so it can
// be removed in O(log n).
type readyQueue struct {
	wake string // the wait key parked awaits use for this queue
	runs readyRuns
}

// before reports whether a is dispatched before b.
func before(a, b *run) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if a.readyMs != b.readyMs {
		return a.readyMs < b.readyMs
	}
	if a.createdMs != b.createdMs {
		return a.createdMs < b.createdMs
	}
	return a.seq < b.seq
}

func (q *readyQueue) push(r *run) {
	r.q = q
	q.runs.Add(r)
}

// remove takes r out of q.
func (q *readyQueue) remove(r *run) {
	q.runs.Remove(r)
	r.q = nil
}

// readyRuns holds a ready queue's runs in dispatch order; each run records
// its index (qi).
type readyRuns = indexheap.Heap[*run, dispatchOrder]

type dispatchOrder struct{}

func (dispatchOrder) Less(a, b *run) bool { return before(a, b) }
func (dispatchOrder) Index(r *run) *int   { return &r.qi }

// timerHeap orders runs by due time, then sequence; each run records its
// index (ti, -1 when absent).
type timerHeap = indexheap.Heap[*run, dueOrder]

type dueOrder struct{}

func (dueOrder) Less(a, b *run) bool {
	if da, db := a.due(), b.due(); da != db {
		return da < db
	}
	return a.seq < b.seq
}
func (dueOrder) Index(r *run) *int { return &r.ti }
