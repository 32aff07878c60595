// Package fsm routes each command to the primitive that owns its opcode and
// gathers the primitives' time-driven work. It is the Applier every journal
// drives.
package fsm

import (
	"fmt"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// Machine is one primitive's deterministic state machine.
type Machine interface {
	// Handlers lists the opcodes the machine serves and how.
	Handlers() map[wire.Op]command.Handler
	// Apply applies a Write command, or OpPulse, writing through b. It reads
	// no clock: cmd.Time is the only time it may use.
	Apply(cmd *command.Command, b storage.Batch) command.Result
	// Load rebuilds in-memory indexes from committed state at start.
	Load(r storage.Reader) error
	// NextDue returns the Unix-nanosecond time of the machine's earliest
	// time-driven change, or 0 when nothing is scheduled.
	NextDue() int64
}

// FSM dispatches commands to machines.
type FSM struct {
	machines   []Machine
	committers []Committer
	owner      [256]Machine
	handlers   [256]command.Handler
}

// Committer is a Machine that keeps in-memory views of what it writes and
// publishes them once the journal has committed a group (see
// journal.Applier.Committed).
type Committer interface {
	Committed()
}

// New builds an FSM. Two machines claiming one opcode is a programming error.
func New(machines ...Machine) (*FSM, error) {
	f := &FSM{machines: machines}
	for _, m := range machines {
		if c, ok := m.(Committer); ok {
			f.committers = append(f.committers, c)
		}
		for op, h := range m.Handlers() {
			if f.owner[op] != nil {
				return nil, fmt.Errorf("fsm: opcode 0x%02x claimed twice", uint8(op))
			}
			f.owner[op] = m
			f.handlers[op] = h
		}
	}
	return f, nil
}

// Handler returns how op is executed.
func (f *FSM) Handler(op wire.Op) (command.Handler, bool) {
	h := f.handlers[op]
	return h, h.Kind != 0
}

// Apply implements journal.Applier.
func (f *FSM) Apply(cmd *command.Command, b storage.Batch) command.Result {
	if cmd.Op == command.OpPulse {
		var r command.Result
		for _, m := range f.machines {
			r.Wake = append(r.Wake, m.Apply(cmd, b).Wake...)
		}
		return r
	}
	m := f.owner[cmd.Op]
	if m == nil {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "unknown opcode 0x%02x", uint8(cmd.Op)))
	}
	return m.Apply(cmd, b)
}

// Committed implements journal.Applier.
func (f *FSM) Committed() {
	for _, c := range f.committers {
		c.Committed()
	}
}

// Load rebuilds every machine's in-memory indexes.
func (f *FSM) Load(r storage.Reader) error {
	for _, m := range f.machines {
		if err := m.Load(r); err != nil {
			return err
		}
	}
	return nil
}

// NextDue returns the earliest time-driven change across machines, or 0.
func (f *FSM) NextDue() int64 {
	var due int64
	for _, m := range f.machines {
		if d := m.NextDue(); d != 0 && (due == 0 || d < due) {
			due = d
		}
	}
	return due
}
