package storage

import (
	"os"
	"runtime"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walCategory is the category Pebble creates its write-ahead log files with.
const walCategory vfs.DiskWriteCategory = "pebble-wal"

// osFS is the filesystem a database uses when Options.FS is nil: the OS
// filesystem, with the WAL's fsync issued as a raw system call when the
// process has more than one P (see docs/decisions/wal-raw-fsync.md).
//
// A Go system call that blocks for more than a scheduler tick loses its P:
// sysmon hands the P to another thread, which it has to wake, and the
// returning thread then finds no P and parks. Every group commit in sync
// durability blocks in fdatasync for a fraction of a millisecond, so each one
// paid for two thread switches and kept sysmon polling at its shortest
// interval. A raw call keeps the P; the other P steals its runnable
// goroutines meanwhile. The cost is that a stop-the-world (GC) waits for a
// fsync in flight, and that with a single P nothing else runs during it —
// which is why that case keeps the ordinary call.
func osFS() vfs.FS {
	if runtime.GOMAXPROCS(0) < 2 {
		return vfs.Default
	}
	return walFS{vfs.Default}
}

// walFS wraps the files Pebble creates for its WAL in walFile.
type walFS struct{ vfs.FS }

func (fs walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return wrapWAL(f, name, category), err
}

func (fs walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return wrapWAL(f, newname, category), err
}

func wrapWAL(f vfs.File, name string, category vfs.DiskWriteCategory) vfs.File {
	if f == nil || category != walCategory {
		return f
	}
	return walFile{File: f, name: name}
}

// walFile is a WAL file whose data syncs do not release the P. Pebble's log
// writer syncs with SyncData; Sync (fsync, used on close) stays as it is.
type walFile struct {
	vfs.File
	name string
}

// SyncData implements vfs.File with fdatasync(2) as a raw system call.
func (f walFile) SyncData() error {
	for {
		_, _, errno := syscall.RawSyscall(syscall.SYS_FDATASYNC, f.Fd(), 0, 0)
		switch errno {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		default:
			return &os.PathError{Op: "fdatasync", Path: f.name, Err: errno}
		}
	}
}
