package storage

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// syncBuffer is a log destination the flush goroutine and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestOpen_BackgroundErrorsAreLogged: a memtable flush that fails (here,
// every sstable create) is reported to no caller, so it must reach the log.
func TestOpen_BackgroundErrorsAreLogged(t *testing.T) {
	var failing atomic.Bool // set once the database is open
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && op.Kind == errorfs.OpCreate && strings.HasSuffix(op.Path, ".sst") {
			return errors.New("injected: disk full")
		}
		return nil
	}))
	logs := &syncBuffer{}
	db, err := Open("db", Options{FS: fs, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	b := db.NewBatch()
	b.Set([]byte("k"), []byte("v"))
	if err := db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pdb.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "injected: disk full") {
		if time.Now().After(deadline) {
			t.Fatalf("the failed flush was not logged; log: %q", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	failing.Store(false)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDeleteOnce_LeavesNoTombstone: a key set once and removed with
// DeleteOnce leaves nothing for a flush to write, where Delete leaves a
// tombstone per key; the batch and the database read both as absent.
func TestDeleteOnce_LeavesNoTombstone(t *testing.T) {
	const keys = 1000
	flushed := func(del func(b *PebbleBatch, k []byte)) uint64 {
		db, err := Open("db", Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		key := func(i int) []byte { return []byte{'x', byte(i >> 8), byte(i)} }
		set := db.NewBatch()
		for i := range keys {
			set.Set(key(i), bytes.Repeat([]byte{'v'}, 100))
		}
		if err := db.Commit(set, false); err != nil {
			t.Fatal(err)
		}
		b := db.NewBatch()
		for i := range keys {
			del(b, key(i))
		}
		if _, err := b.Get(key(7)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the batch reads a removed key: %v", err)
		}
		if err := db.Commit(b, false); err != nil {
			t.Fatal(err)
		}
		if err := db.pdb.Flush(); err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := db.Iterate(nil, nil, false, func(_, _ []byte) bool { n++; return true }); err != nil || n != 0 {
			t.Fatalf("%d keys left after the removal (%v)", n, err)
		}
		return db.pdb.Metrics().Levels[0].TableBytesFlushed
	}
	withDelete := flushed((*PebbleBatch).Delete)
	withOnce := flushed((*PebbleBatch).DeleteOnce)
	if withDelete < keys*4 {
		t.Fatalf("Delete flushed %d bytes for %d tombstones; the test no longer sees them", withDelete, keys)
	}
	if withOnce != 0 {
		t.Fatalf("DeleteOnce flushed %d bytes (Delete: %d), want none", withOnce, withDelete)
	}
}

// TestDeleteOnce_MisuseIsLogged: DeleteOnce on a key set twice may bring
// the older value back; the flush that meets it must say so in the log.
func TestDeleteOnce_MisuseIsLogged(t *testing.T) {
	logs := &syncBuffer{}
	db, err := Open("db", Options{FS: vfs.NewMem(), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, v := range []string{"v1", "v2"} {
		b := db.NewBatch()
		b.Set([]byte("k"), []byte(v))
		if err := db.Commit(b, false); err != nil {
			t.Fatal(err)
		}
	}
	b := db.NewBatch()
	b.DeleteOnce([]byte("k"))
	if err := db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	if err := db.pdb.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "possible misuse") || db.Misuses() == 0 {
		t.Fatalf("a DeleteOnce of a key set twice was not logged (misuses: %d); log: %q", db.Misuses(), logs.String())
	}
}
