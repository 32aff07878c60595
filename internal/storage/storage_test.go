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
