package fsm

import (
	"sync"

	"github.com/floruntime/flo/internal/command"
)

// ReadGate keeps a machine's reads off a group that is half applied. A
// machine whose reads serve in-memory state that Apply changes before the
// group commits calls Applying at the start of Apply (the group's first
// Apply takes the gate exclusively) and Committed from its own Committed,
// and wraps its read handlers with Read. A read then never sees a change
// storage does not have yet, and waits at most for one group's apply.
// Applying and Committed run on the journal goroutine only.
type ReadGate struct {
	mu      sync.RWMutex
	holding bool // Applying took mu; journal goroutine only
}

// Applying holds reads off until the group is committed.
func (g *ReadGate) Applying() {
	if !g.holding {
		g.mu.Lock()
		g.holding = true
	}
}

// Committed lets reads in again.
func (g *ReadGate) Committed() {
	if g.holding {
		g.holding = false
		g.mu.Unlock()
	}
}

// Read wraps a read handler so it runs only while no group is half applied.
func (g *ReadGate) Read(read func(*command.Command) command.Result) func(*command.Command) command.Result {
	return func(cmd *command.Command) command.Result {
		g.mu.RLock()
		defer g.mu.RUnlock()
		return read(cmd)
	}
}
