// Package fuzzprog turns a fuzzer's bytes into a program of commands for one
// of the primitives' state machines, so that each primitive's FuzzMachine
// target shares one encoding, one set of names and one check of the
// statuses a command may answer.
package fuzzprog

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/internal/storage/storagetest"
	"github.com/floruntime/flo/wire"
)

// Step is one fuzzed command decoded from a program.
type Step struct {
	Op      int    // index into the target's opcode list
	Pulse   bool   // apply a pulse before the command
	Advance int64  // ns to advance the clock by first
	Key     []byte // key (name) of the command
	Value   []byte
	Opts    []byte
}

// Keys are the names a program picks from: two valid ones that share state
// across steps, an empty one and an oversized one.
var Keys = [][]byte{[]byte("a"), []byte("b"), nil, bytes.Repeat([]byte("x"), 300)}

// Decode splits data into at most 24 steps, each
//
//	[op:u8][time:u8][key:u8][vlen:u8][value][olen:u8][opts]
//
// time's top bit asks for a pulse, its low 7 bits advance the clock by that
// many 100 ms; lengths are clamped to what is left.
func Decode(data []byte) []Step {
	var steps []Step
	take := func(n int) []byte {
		n = min(n, len(data))
		b := data[:n]
		data = data[n:]
		return b
	}
	for len(data) >= 3 && len(steps) < 24 {
		h := take(3)
		s := Step{Op: int(h[0]), Pulse: h[1]&0x80 != 0, Advance: int64(h[1]&0x7F) * 100e6, Key: Keys[int(h[2])%len(Keys)]}
		if l := take(1); len(l) == 1 {
			s.Value = bytes.Clone(take(int(l[0])))
		}
		if l := take(1); len(l) == 1 {
			s.Opts = bytes.Clone(take(int(l[0])))
		}
		steps = append(steps, s)
	}
	return steps
}

// AppendStep is Decode's inverse for one step, for seeds.
func AppendStep(dst []byte, op int, time uint8, key uint8, value, opts []byte) []byte {
	dst = append(dst, byte(op), time, key, byte(len(value)))
	dst = append(dst, value...)
	dst = append(dst, byte(len(opts)))
	return append(dst, opts...)
}

// CheckStatus fails unless err is nil or a *wire.Error with a status the
// protocol documents for a domain outcome (never INTERNAL: storage is in
// memory and cannot fail).
func CheckStatus(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var we *wire.Error
	if !errors.As(err, &we) {
		t.Fatalf("%s: error without a status: %v", what, err)
	}
	switch we.Status {
	case wire.StatusNotFound, wire.StatusBadRequest, wire.StatusConflict, wire.StatusOverloaded:
	default:
		t.Fatalf("%s: unexpected status %v: %v", what, we.Status, err)
	}
}

// CheckReads fails unless each of rs answered OK or NOT_FOUND: reads of
// valid names keep working whatever the program did before them.
func CheckReads(t testing.TB, what string, rs []command.Result) {
	t.Helper()
	for i, r := range rs {
		if r.Err != nil && !errors.Is(r.Err, wire.ErrNotFound) {
			t.Fatalf("%s: read %d: %v", what, i, r.Err)
		}
	}
}

// CheckSame fails unless got and want, the same reads of two machines,
// answered alike: the same bodies, errors and emptiness.
func CheckSame(t testing.TB, what string, got, want []command.Result) {
	t.Helper()
	for i := range got {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Body, w.Body) || fmt.Sprint(g.Err) != fmt.Sprint(w.Err) || g.Empty != w.Empty {
			t.Fatalf("%s: read %d differs:\n%+v\n%+v", what, i, g, w)
		}
	}
}

// Machine is a primitive's state machine, as a target drives it.
type Machine interface {
	Handlers() map[wire.Op]command.Handler
	Apply(*command.Command, storage.Batch) command.Result
	Committed()
}

// Runner runs commands on machines over DB at a clock the program moves.
type Runner struct {
	T         testing.TB
	DB        *storage.DB
	Namespace string
	Now       int64 // ns since the epoch
}

// NewRunner returns a runner over a new in-memory database (closed when t
// ends, failing t if Pebble reported a misuse: storagetest.Open), with the
// clock at now (ns since the epoch).
func NewRunner(t testing.TB, namespace string, now int64) *Runner {
	db := storagetest.Open(t, "", storage.Options{FS: vfs.NewMem()})
	return &Runner{T: t, DB: db, Namespace: namespace, Now: now}
}

// Run answers a read, or applies a write in a batch of its own, commits
// it and tells m, as the journal does. op command.OpPulse is a pulse.
func (r *Runner) Run(m Machine, op wire.Op, key, value, opts []byte) command.Result {
	cmd := &command.Command{Op: command.Op(op), Time: r.Now, Namespace: r.Namespace, Key: key, Value: value, Options: opts}
	if op == wire.Op(command.OpPulse) {
		cmd = &command.Command{Op: command.OpPulse, Time: r.Now}
	}
	if hd := m.Handlers()[op]; hd.Kind == command.Read {
		return hd.Read(cmd)
	}
	b := r.DB.NewBatch()
	res := m.Apply(cmd, b)
	if err := r.DB.Commit(b, false); err != nil {
		r.T.Fatal(err)
	}
	m.Committed()
	return res
}

// Step runs s on m: it moves the clock, pulses if asked, runs the step's
// command (its opcode picked from ops) and checks the answer's status. It
// returns the opcode run.
func (r *Runner) Step(m Machine, s Step, ops []wire.Op) wire.Op {
	r.T.Helper()
	r.Now += s.Advance
	if s.Pulse {
		r.Run(m, wire.Op(command.OpPulse), nil, nil, nil)
	}
	op := ops[s.Op%len(ops)]
	CheckStatus(r.T, "step", r.Run(m, op, s.Key, s.Value, s.Opts).Err)
	return op
}
