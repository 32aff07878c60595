package kv

import (
	"fmt"
	"testing"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/fuzzprog"
	"github.com/floruntime/flo/wire"
)

var fuzzOps = []wire.Op{wire.OpKVPut, wire.OpKVGet, wire.OpKVDelete, wire.OpKVScan, wire.OpKVHistory}

// FuzzMachine applies a fuzzed program of KV commands to a machine over an
// in-memory Pebble. Every command must answer OK or a documented error
// status without panicking, and after each one the machine (with its cache)
// must answer get, scan and history as a fresh machine over the same
// storage does.
func FuzzMachine(f *testing.F) {
	var p []byte
	p = fuzzprog.AppendStep(p, 0, 0, 0, []byte("v1"), nil)
	p = fuzzprog.AppendStep(p, 0, 1, 0, []byte("v2"), wire.AppendU64(nil, wire.TagCASVersion, 1))
	p = fuzzprog.AppendStep(p, 0, 1, 1, []byte("v3"), wire.AppendU32(nil, wire.TagTTLSeconds, 1))
	p = fuzzprog.AppendStep(p, 0, 1, 1, []byte("v4"), wire.AppendFlag(nil, wire.TagIfNotExists))
	p = fuzzprog.AppendStep(p, 3, 0, 2, nil, wire.AppendFlag(wire.AppendU32(nil, wire.TagLimit, 1), wire.TagKeysOnly))
	p = fuzzprog.AppendStep(p, 4, 0x8F, 0, nil, wire.AppendU32(nil, wire.TagLimit, 1))
	p = fuzzprog.AppendStep(p, 2, 1, 0, nil, wire.AppendFlag(nil, wire.TagIfExists))
	p = fuzzprog.AppendStep(p, 1, 1, 1, nil, nil)
	f.Add(p)
	var q []byte
	q = fuzzprog.AppendStep(q, 0, 0, 3, []byte("x"), []byte{0x01, 0x03, 0xff})
	q = fuzzprog.AppendStep(q, 0, 0, 2, nil, wire.AppendU64(nil, wire.TagTTLSeconds, 1<<63))
	q = fuzzprog.AppendStep(q, 3, 0, 0, nil, wire.AppendOption(nil, wire.TagCursor, []byte{0xff, 0, 1}))
	f.Add(q)
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := fuzzprog.NewRunner(t, "default", t0.UnixNano())
		db := fr.DB
		m := New(db)
		if err := m.Load(db); err != nil {
			t.Fatal(err)
		}
		reads := func(m *Machine) []command.Result {
			var rs []command.Result
			for _, k := range []string{"a", "b"} {
				rs = append(rs, fr.Run(m, wire.OpKVGet, []byte(k), nil, nil))
				rs = append(rs, fr.Run(m, wire.OpKVHistory, []byte(k), nil, nil))
			}
			return append(rs, fr.Run(m, wire.OpKVScan, nil, nil, nil))
		}
		for i, s := range fuzzprog.Decode(data) {
			op := fr.Step(m, s, fuzzOps)
			fresh := New(db)
			if err := fresh.Load(db); err != nil {
				t.Fatal(err)
			}
			got := reads(m)
			what := fmt.Sprintf("step %d (op 0x%02x)", i, uint8(op))
			fuzzprog.CheckReads(t, what, got)
			fuzzprog.CheckSame(t, what+" against a fresh machine", got, reads(fresh))
		}
	})
}
