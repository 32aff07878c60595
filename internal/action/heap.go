package action

import "container/heap"

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
	heap.Push(&q.runs, r)
}

// remove takes r out of q.
func (q *readyQueue) remove(r *run) {
	heap.Remove(&q.runs, r.qi)
	r.q, r.qi = nil, 0
}

// readyRuns is the heap.Interface behind readyQueue.
type readyRuns []*run

func (s readyRuns) Len() int           { return len(s) }
func (s readyRuns) Less(i, j int) bool { return before(s[i], s[j]) }
func (s readyRuns) Swap(i, j int) {
	s[i], s[j] = s[j], s[i]
	s[i].qi, s[j].qi = i, j
}
func (s *readyRuns) Push(x any) {
	r := x.(*run)
	r.qi = len(*s)
	*s = append(*s, r)
}
func (s *readyRuns) Pop() any {
	old := *s
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*s = old[:len(old)-1]
	return r
}

// timerHeap orders runs by due time, then sequence; each run records its
// index (ti, -1 when absent).
type timerHeap []*run

func timerBefore(a, b *run) bool {
	if da, db := a.due(), b.due(); da != db {
		return da < db
	}
	return a.seq < b.seq
}

func (h *timerHeap) push(r *run) { heap.Push(h, r) }

// fix restores order after r's due time changed.
func (h *timerHeap) fix(r *run) { heap.Fix(h, r.ti) }

func (h *timerHeap) remove(r *run) {
	heap.Remove(h, r.ti)
	r.ti = -1
}

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return timerBefore(h[i], h[j]) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].ti, h[j].ti = i, j
}
func (h *timerHeap) Push(x any) {
	r := x.(*run)
	r.ti = len(*h)
	*h = append(*h, r)
}
func (h *timerHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
}
