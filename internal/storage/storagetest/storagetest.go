// Package storagetest opens storage for the primitives' tests: closed when
// the test ends, and failing it if Pebble reported a possible misuse (a
// DeleteOnce of a key set twice, say), which a test would not see
// otherwise.
package storagetest

import (
	"testing"

	"github.com/floruntime/flo/internal/storage"
)

// ChurningMemTableBytes is a memtable so small that a short test goes
// through many flushes and compactions: where a misused DeleteOnce shows,
// as a reported misuse or a resurrected key.
const ChurningMemTableBytes = 8 << 10

// Open opens the database in dir with o for t's duration.
func Open(t testing.TB, dir string, o storage.Options) *storage.DB {
	t.Helper()
	db, err := storage.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close storage: %v", err)
		}
		if n := db.Misuses(); n > 0 {
			t.Errorf("Pebble reported %d possible misuses", n)
		}
	})
	return db
}
