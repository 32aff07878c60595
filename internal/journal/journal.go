// Package journal orders, logs and applies commands. The primitives never see
// it: they only implement Applier. The single-node journal (Local) makes the
// storage engine's write-ahead log the command log; a replicated journal
// (hashicorp/raft or etcd raft) implements the same Journal interface by
// logging encoded commands and calling the same Applier from its FSM.
package journal

import (
	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
)

// Applier applies one command to state. It must be deterministic: the same
// commands in the same order produce the same state and results. All of its
// writes go to b, which commits atomically with every other command of the
// same group.
type Applier interface {
	Apply(cmd *command.Command, b storage.Batch) command.Result
	// Committed is called on the applying goroutine once the batch of the
	// commands applied since the last call is committed: visible to
	// storage reads, not yet necessarily durable. An applier that keeps
	// in-memory views for readers publishes what the group wrote here, so
	// readers never see a change before storage has it.
	Committed()
}

// Journal is the ordered, durable command log.
type Journal interface {
	// Submit logs cmd. Commands are applied in the order of their Submit
	// calls. done runs once cmd is applied and durable under the journal's
	// policy, on the journal's own goroutine, in submit order; it must not
	// block. Submit blocks while the journal is saturated (backpressure) and
	// returns ErrClosed after Close.
	Submit(cmd *command.Command, done func(command.Result)) error
	// Close applies and syncs everything submitted so far, then stops.
	Close() error
}
