// Package storage is the small engine interface the primitives write
// through: point reads, ordered iteration and atomic batches. The only engine
// is Pebble (on disk, or on Pebble's in-memory crashable filesystem in
// tests); primitives never import Pebble themselves.
package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrNotFound is returned by Get for a missing key.
var ErrNotFound = errors.New("storage: not found")

// Reader is read access to committed state, or to a batch and what lies
// beneath it.
type Reader interface {
	// Get returns a copy of the value stored at key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Iterate calls fn for each key in [lower, upper) in ascending order
	// (descending when reverse) until fn returns false. key and value are
	// only valid during the call.
	Iterate(lower, upper []byte, reverse bool, fn func(key, value []byte) bool) error
}

// Batch is an atomic set of writes that can read its own writes.
type Batch interface {
	Reader
	// Set stores value at key; both are copied.
	Set(key, value []byte)
	// Delete removes key.
	Delete(key []byte)
	// DeleteOnce removes a key that was Set exactly once since it was last
	// deleted (Pebble's SingleDelete). Unlike Delete it leaves no tombstone:
	// it and the Set annihilate in the first flush or compaction that meets
	// both. Used on a key that is overwritten, it may resurrect an older
	// value.
	DeleteOnce(key []byte)
}

// DB is an open Pebble database.
type DB struct {
	pdb     *pebble.DB
	misuses atomic.Int64
}

// Options configures Open.
type Options struct {
	// FS overrides the filesystem; nil means the OS filesystem (osFS). Tests pass
	// vfs.NewCrashableMem() to simulate a crash.
	FS vfs.FS
	// CacheBytes sizes Pebble's block cache (0 = DefaultCacheBytes). Reads
	// that miss the memtable and the cache go to disk, some of them on the
	// apply goroutine (a dequeue reads its payloads), so it pays to keep
	// the working set cached.
	CacheBytes int64
	// MemTableBytes is the size Pebble's memtable grows to (0 =
	// DefaultMemTableBytes). Tests make it tiny so that a short run goes
	// through flushes and compactions.
	MemTableBytes int64
	// Logger receives Pebble's errors, among them background errors (a
	// flush or compaction that failed, say on a full disk), which reach no
	// caller otherwise; nil discards them.
	Logger *slog.Logger
}

// fileSystem is o.FS, or the OS filesystem (osFS) when it is nil.
func (o Options) fileSystem() vfs.FS {
	if o.FS != nil {
		return o.FS
	}
	return osFS()
}

// DefaultCacheBytes is the block cache size when Options.CacheBytes is 0.
const DefaultCacheBytes = 256 << 20

// BlockBytes is the target size of an sstable data block. Pebble's default
// is 4 KiB; stream reads and scans walk many consecutive records, and each
// block costs a cache lookup, a checksum and a decompression, so larger
// blocks make sequential reads cheaper (CockroachDB uses 32 KiB too).
const BlockBytes = 32 << 10

// DefaultMemTableBytes is the memtable size when Options.MemTableBytes is
// 0. Group commit already batches our writes; a larger memtable keeps
// flushes rare under write-heavy load.
const DefaultMemTableBytes = 64 << 20

// Open opens (creating if needed) the database in dir.
func Open(dir string, o Options) (*DB, error) {
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.MemTableBytes <= 0 {
		o.MemTableBytes = DefaultMemTableBytes
	}
	cache := pebble.NewCache(o.CacheBytes)
	// Open takes its own reference; ours is released once it is handed over.
	defer cache.Unref()
	po := &pebble.Options{FS: o.fileSystem(), Logger: pebbleLogger{o.Logger}, Cache: cache}
	db := &DB{}
	// Pebble notices some misuses (a DeleteOnce on a key set twice) only
	// when a flush or compaction meets them; say so in the log.
	po.EventListener = &pebble.EventListener{PossibleAPIMisuse: func(info pebble.PossibleAPIMisuseInfo) {
		db.misuses.Add(1)
		po.Logger.Errorf("possible misuse: %s", info)
	}}
	for i := range po.Levels {
		po.Levels[i].BlockSize = BlockBytes
	}
	po.EnsureDefaults()
	po.MemTableSize = uint64(o.MemTableBytes)
	pdb, err := pebble.Open(dir, po)
	if errors.Is(err, syscall.EAGAIN) {
		// The LOCK file is held (fcntl F_SETLK): another server has it.
		return nil, fmt.Errorf("storage: open %s: in use by another process (is another flo server running on it?): %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	db.pdb = pdb
	return db, nil
}

// Misuses is the number of possible misuses Pebble has reported so far
// (each is also logged). Tests that churn the memtable check it is 0.
func (db *DB) Misuses() int64 { return db.misuses.Load() }

// Close closes the database.
func (db *DB) Close() error { return db.pdb.Close() }

// Get implements Reader over committed state.
func (db *DB) Get(key []byte) ([]byte, error) { return get(db.pdb, key) }

// Iterate implements Reader over committed state.
func (db *DB) Iterate(lower, upper []byte, reverse bool, fn func(k, v []byte) bool) error {
	return iterate(db.pdb, lower, upper, reverse, fn)
}

// NewBatch returns an empty batch that reads its own writes.
func (db *DB) NewBatch() *PebbleBatch { return &PebbleBatch{b: db.pdb.NewIndexedBatch()} }

// Commit applies b atomically. With sync the call returns once the write is
// on disk; concurrent synced commits share one fsync (Pebble's commit
// pipeline groups them).
func (db *DB) Commit(b *PebbleBatch, sync bool) error {
	o := pebble.NoSync
	if sync {
		o = pebble.Sync
	}
	if err := db.pdb.Apply(b.b, o); err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	return b.b.Close()
}

// CommitAsync applies b (visible at once) and returns a function that waits
// until it is durable. It lets the caller apply the next batch while this
// one's fsync is in flight.
func (db *DB) CommitAsync(b *PebbleBatch) (wait func() error, err error) {
	if err := db.pdb.ApplyNoSyncWait(b.b, pebble.Sync); err != nil {
		return nil, fmt.Errorf("storage: commit: %w", err)
	}
	return func() error {
		err := b.b.SyncWait()
		if cerr := b.b.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("storage: sync: %w", err)
		}
		return nil
	}, nil
}

// Sync makes every write committed so far durable (used by interval mode).
func (db *DB) Sync() error {
	return db.pdb.LogData(nil, pebble.Sync)
}

// PebbleBatch is the Batch implementation.
type PebbleBatch struct {
	b *pebble.Batch
}

// Get implements Reader, seeing the batch's own writes.
func (b *PebbleBatch) Get(key []byte) ([]byte, error) { return get(b.b, key) }

// Iterate implements Reader, seeing the batch's own writes.
func (b *PebbleBatch) Iterate(lower, upper []byte, reverse bool, fn func(k, v []byte) bool) error {
	return iterate(b.b, lower, upper, reverse, fn)
}

// Set implements Batch.
func (b *PebbleBatch) Set(key, value []byte) { _ = b.b.Set(key, value, nil) }

// Delete implements Batch.
func (b *PebbleBatch) Delete(key []byte) { _ = b.b.Delete(key, nil) }

// DeleteOnce implements Batch.
func (b *PebbleBatch) DeleteOnce(key []byte) { _ = b.b.SingleDelete(key, nil) }

// Len returns the size of the batch's representation in bytes.
func (b *PebbleBatch) Len() int { return b.b.Len() }

func get(r pebble.Reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get: %w", err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

func iterate(r pebble.Reader, lower, upper []byte, reverse bool, fn func(k, v []byte) bool) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("storage: iterate: %w", err)
	}
	var ok bool
	if reverse {
		ok = it.Last()
	} else {
		ok = it.First()
	}
	for ok {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("storage: iterate: %w", err)
		}
		if !fn(it.Key(), v) {
			break
		}
		if reverse {
			ok = it.Prev()
		} else {
			ok = it.Next()
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("storage: iterate: %w", err)
	}
	return nil
}

// PrefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xFF).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// pebbleLogger drops Pebble's informational chatter and logs its errors:
// a failed background flush or compaction is reported only there.
type pebbleLogger struct{ log *slog.Logger }

func (pebbleLogger) Infof(string, ...any) {}

func (l pebbleLogger) Errorf(format string, args ...any) {
	if l.log != nil {
		l.log.Error("storage: " + fmt.Sprintf(format, args...))
	}
}

func (pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
