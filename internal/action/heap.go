package action

// readyQueue holds the claimable runs of one (namespace, task type) in
// dispatch order: highest priority first, then the earliest time the run
// became claimable, then creation, then sequence (a total order, so ties
// never depend on heap history).
type readyQueue struct {
	wake string // the wait key parked awaits use for this queue
	runs []*run
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
	r.q, r.qi = q, len(q.runs)
	q.runs = append(q.runs, r)
	q.up(r.qi)
}

// remove takes r out of q.
func (q *readyQueue) remove(r *run) {
	i, last := r.qi, len(q.runs)-1
	if i != last {
		q.swap(i, last)
	}
	q.runs[last] = nil
	q.runs = q.runs[:last]
	if i != last {
		if !q.down(i) {
			q.up(i)
		}
	}
	r.q, r.qi = nil, 0
}

func (q *readyQueue) swap(i, j int) {
	q.runs[i], q.runs[j] = q.runs[j], q.runs[i]
	q.runs[i].qi, q.runs[j].qi = i, j
}

func (q *readyQueue) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !before(q.runs[i], q.runs[p]) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

func (q *readyQueue) down(i int) bool {
	start, n := i, len(q.runs)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && before(q.runs[r], q.runs[l]) {
			c = r
		}
		if !before(q.runs[c], q.runs[i]) {
			break
		}
		q.swap(i, c)
		i = c
	}
	return i > start
}

// timerHeap orders runs by due time, then sequence.
type timerHeap []*run

func timerBefore(a, b *run) bool {
	if da, db := a.due(), b.due(); da != db {
		return da < db
	}
	return a.seq < b.seq
}

func (h *timerHeap) push(r *run) {
	r.ti = len(*h)
	*h = append(*h, r)
	h.up(r.ti)
}

// fix restores order after r's due time changed.
func (h *timerHeap) fix(r *run) {
	if !h.down(r.ti) {
		h.up(r.ti)
	}
}

func (h *timerHeap) remove(r *run) {
	s := *h
	i, last := r.ti, len(s)-1
	if i != last {
		h.swap(i, last)
	}
	s[last] = nil
	*h = s[:last]
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
	r.ti = -1
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].ti, h[j].ti = i, j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !timerBefore(h[i], h[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) bool {
	start, n := i, len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && timerBefore(h[r], h[l]) {
			c = r
		}
		if !timerBefore(h[c], h[i]) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}
