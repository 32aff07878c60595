//go:build !invariants

package queue

// checkQueue is a no-op outside -tags invariants builds.
func checkQueue(*Machine, *queue) {}
