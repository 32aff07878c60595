package kv

import (
	"bytes"
	"hash/maphash"
	"sync"
)

// Read cache limits.
const (
	// CacheBytes bounds the keys and values the record cache holds.
	CacheBytes = 64 << 20
	// CacheMaxValueBytes is the largest value the cache keeps; a key
	// holding a larger one is read from storage.
	CacheMaxValueBytes = 64 << 10
	// cacheEntryOverhead approximates an entry's map and struct cost.
	cacheEntryOverhead = 96
	cacheShards        = 32
)

// recordCache holds the committed current record of recently written or
// read keys, by current-record key, so a get is a map lookup instead of a
// seek through Pebble's memtable (half the server's CPU in pipelined gets).
// It is sharded so concurrent gets rarely share a lock.
//
// Writes enter it in Machine.Committed, after their group commits, so it
// never holds a change storage does not have yet; a key it evicts or never
// held is read from storage, which has everything the cache ever held.
// A get that misses fills it with what it read from storage, unless a write
// could have overtaken that read: Apply marks each key it writes as pending
// until Committed publishes it, and every mark and publish bumps the
// shard's generation, so a fill is refused when its key is pending or its
// shard's generation moved since the get looked (docs/decisions/kv-record-cache.md).
type recordCache struct {
	seed   maphash.Seed
	limit  int // bytes per shard
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex
	recs    map[string]record
	bytes   int
	gen     uint64              // bumped by every pending mark and publish
	pending map[string]struct{} // written by the group being applied
}

func newRecordCache(totalBytes int) *recordCache {
	c := &recordCache{seed: maphash.MakeSeed(), limit: totalBytes / cacheShards}
	for i := range c.shards {
		c.shards[i].recs = make(map[string]record)
		c.shards[i].pending = make(map[string]struct{})
	}
	return c
}

func (c *recordCache) shard(ck []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, ck)%cacheShards]
}

// get returns the cached record of ck (its value must not be modified)
// and, for a miss, the generation a later fill must match.
func (c *recordCache) get(ck []byte) (record, bool, uint64) {
	s := c.shard(ck)
	s.mu.RLock()
	r, ok := s.recs[string(ck)]
	gen := s.gen
	s.mu.RUnlock()
	return r, ok, gen
}

// markPending records that Apply wrote ck and has not published it yet.
func (c *recordCache) markPending(ck string) {
	s := c.shard([]byte(ck))
	s.mu.Lock()
	s.pending[ck] = struct{}{}
	s.gen++
	s.mu.Unlock()
}

// fill caches rec, read from storage after get returned gen for ck, unless
// a write to the shard was marked or published since, or ck is pending.
func (c *recordCache) fill(ck []byte, rec record, gen uint64) {
	s := c.shard(ck)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, pending := s.pending[string(ck)]; pending || s.gen != gen {
		return
	}
	if _, ok := s.recs[string(ck)]; ok {
		return
	}
	c.insertLocked(s, string(ck), rec)
}

func entryBytes(ck string, r *record) int { return len(ck) + len(r.value) + cacheEntryOverhead }

// set publishes rec as ck's committed current record: it clears ck's
// pending mark and caches rec, or drops ck when the value is too large to
// keep.
func (c *recordCache) set(ck string, rec record) {
	s := c.shard([]byte(ck))
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, ck)
	s.gen++
	if old, ok := s.recs[ck]; ok {
		s.bytes -= entryBytes(ck, &old)
		delete(s.recs, ck)
	}
	c.insertLocked(s, ck, rec)
}

// insertLocked caches rec (copying its value) unless the value is too
// large, evicting arbitrary entries to stay within the shard's budget.
func (c *recordCache) insertLocked(s *cacheShard, ck string, rec record) {
	if len(rec.value) > CacheMaxValueBytes {
		return
	}
	rec.value = bytes.Clone(rec.value)
	n := entryBytes(ck, &rec)
	for s.bytes+n > c.limit && len(s.recs) > 0 {
		for k, r := range s.recs {
			s.bytes -= entryBytes(k, &r)
			delete(s.recs, k)
			break
		}
	}
	if n > c.limit {
		return
	}
	s.recs[ck] = rec
	s.bytes += n
}
