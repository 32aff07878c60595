//go:build invariants

package queue

import "fmt"

// checkQueue checks q after an operation in -tags invariants builds. The
// caller holds m.mu. A full check is O(messages), so on large queues only a
// sample of operations is checked, keeping the amortised cost per operation
// near a check of 256 messages.
func checkQueue(m *Machine, q *queue) {
	m.checks++
	if n := len(q.msgs); n > 256 && m.checks%(n/256+1) != 0 {
		return
	}
	if errs := m.checkQueue(q); len(errs) > 0 {
		panic(fmt.Sprintf("queue: invariant violated: %v", errs))
	}
}
