package kv

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

type setup struct {
	db *storage.DB
	m  *Machine
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	db, err := storage.Open("kv", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m := New(db)
	if err := m.Load(db); err != nil {
		t.Fatal(err)
	}
	return &setup{db: db, m: m}
}

// apply applies one command in its own committed batch.
func (s *setup) apply(t *testing.T, cmd command.Command) command.Result {
	t.Helper()
	b := s.db.NewBatch()
	r := s.m.Apply(&cmd, b)
	if err := s.db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	return r
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) int64 { return t0.Add(d).UnixNano() }

func TestMachine_SweepReclaimsExpiredKeys(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	put := func(key string, ttl uint64, when time.Duration) command.Result {
		var o wire.Options
		if ttl > 0 {
			o = wire.AppendU64(nil, wire.TagTTLSeconds, ttl)
		}
		return s.apply(t, command.Command{Op: command.Op(wire.OpKVPut), Time: at(when), Namespace: "ns", Key: []byte(key), Value: []byte("v"), Options: o})
	}
	put("a", 10, 0)
	put("b", 5, 0)
	put("keep", 0, 0)
	put("rewritten", 5, 0)
	put("rewritten", 0, time.Second) // no longer expires
	if due := s.m.NextDue(); due != at(5*time.Second+sweepDelay) {
		t.Fatalf("NextDue = %v, want 5s+delay", time.Duration(due-at(0)))
	}
	s.apply(t, command.Command{Op: command.OpPulse, Time: at(7 * time.Second)})
	read := func(key string) (record, bool) {
		rec, ok, err := load(s.db, "ns", []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return rec, ok
	}
	if rec, _ := read("b"); !rec.deleted || len(rec.value) != 0 || rec.version != 1 {
		t.Fatalf("b after sweep: %+v", rec)
	}
	for _, k := range []string{"a", "keep", "rewritten"} {
		if rec, _ := read(k); rec.deleted {
			t.Fatalf("%s reclaimed too early", k)
		}
	}
	if due := s.m.NextDue(); due != at(10*time.Second+sweepDelay) {
		t.Fatalf("NextDue after sweep = %v", time.Duration(due-at(0)))
	}
	// Versions continue after reclamation; history keeps the old value.
	if r := put("b", 0, 8*time.Second); r.Err != nil || r.Body[0] != 2 {
		t.Fatalf("put after sweep: %+v", r)
	}
	s.apply(t, command.Command{Op: command.OpPulse, Time: at(20 * time.Second)})
	if rec, _ := read("a"); !rec.deleted {
		t.Fatal("a not reclaimed")
	}
	if s.m.NextDue() != 0 {
		t.Fatal("index should be empty")
	}
	// A restart finds nothing pending.
	m2 := New(s.db)
	if err := m2.Load(s.db); err != nil || m2.NextDue() != 0 {
		t.Fatalf("reload: %v %d", err, m2.NextDue())
	}
}

func TestMachine_LoadFindsEarliestExpiry(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	s.apply(t, command.Command{Op: command.Op(wire.OpKVPut), Time: at(0), Namespace: "ns", Key: []byte("k"), Value: []byte("v"), Options: wire.AppendU64(nil, wire.TagTTLSeconds, 3)})
	m2 := New(s.db)
	if err := m2.Load(s.db); err != nil {
		t.Fatal(err)
	}
	if m2.NextDue() != at(3*time.Second+sweepDelay) {
		t.Fatalf("NextDue after load = %v", time.Duration(m2.NextDue()-at(0)))
	}
}
