package storage

import (
	"errors"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestWALFilesSyncWithRawCall(t *testing.T) {
	dir := t.TempDir()
	fs := walFS{vfs.Default}

	other, err := fs.Create(filepath.Join(dir, "000001.sst"), "pebble-sst")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := other.(walFile); ok {
		t.Fatal("a file that is not a WAL was wrapped")
	}
	_ = other.Close()

	name := filepath.Join(dir, "000002.log")
	f, err := fs.Create(name, walCategory)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(walFile); !ok {
		t.Fatalf("WAL file is %T, want walFile", f)
	}
	if _, err := f.Write([]byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncData(); err != nil {
		t.Fatalf("SyncData: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The call reaches the kernel: on a closed descriptor it fails, and the
	// error names the file.
	err = f.SyncData()
	if !errors.Is(err, syscall.EBADF) {
		t.Fatalf("SyncData after close = %v, want EBADF", err)
	}

	reused, err := fs.ReuseForWrite(name, filepath.Join(dir, "000003.log"), walCategory)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := reused.(walFile); !ok {
		t.Fatalf("recycled WAL file is %T, want walFile", reused)
	}
	if err := reused.SyncData(); err != nil {
		t.Fatal(err)
	}
	_ = reused.Close()
}

// A database opened without an FS syncs its WAL with the raw call, except
// with a single P.
func TestDefaultFilesystemWrapsTheWALWithMoreThanOneP(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	if _, ok := (Options{}).fileSystem().(walFS); !ok {
		t.Fatalf("with 2 Ps the default filesystem is %T, want walFS", (Options{}).fileSystem())
	}
	mem := vfs.NewMem()
	if fs := (Options{FS: mem}).fileSystem(); fs != mem {
		t.Fatalf("a given FS was replaced by %T", fs)
	}
	runtime.GOMAXPROCS(1)
	if fs := (Options{}).fileSystem(); fs != vfs.Default {
		t.Fatalf("with 1 P the default filesystem is %T, want vfs.Default", fs)
	}
}

func TestSyncedCommitSurvivesReopenOnOSFilesystem(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	b.Set([]byte("k"), []byte("v"))
	if err := db.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := db.Get([]byte("k"))
	if err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}
