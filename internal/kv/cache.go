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

// recordCache holds the committed current record of recently written keys,
// by current-record key, so a get is a map lookup instead of a seek through
// Pebble's memtable (half the server's CPU in pipelined gets). Only Apply
// fills it, in Machine.Committed after each group commits, so it never
// holds a change storage does not have yet, and a key it evicts or never
// held is read from storage, which has everything the cache ever held. It
// is sharded so concurrent gets rarely share a lock.
type recordCache struct {
	seed   maphash.Seed
	limit  int // bytes per shard
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu    sync.RWMutex
	recs  map[string]record
	bytes int
}

func newRecordCache(totalBytes int) *recordCache {
	c := &recordCache{seed: maphash.MakeSeed(), limit: totalBytes / cacheShards}
	for i := range c.shards {
		c.shards[i].recs = make(map[string]record)
	}
	return c
}

func (c *recordCache) shard(ck []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, ck)%cacheShards]
}

// get returns the cached record of ck. Its value must not be modified.
func (c *recordCache) get(ck []byte) (record, bool) {
	s := c.shard(ck)
	s.mu.RLock()
	r, ok := s.recs[string(ck)]
	s.mu.RUnlock()
	return r, ok
}

func entryBytes(ck string, r *record) int { return len(ck) + len(r.value) + cacheEntryOverhead }

// set caches rec (copying its value) as ck's current record, or drops ck
// when the value is too large to keep, evicting arbitrary entries to stay
// within the shard's budget.
func (c *recordCache) set(ck string, rec record) {
	s := c.shard([]byte(ck))
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.recs[ck]; ok {
		s.bytes -= entryBytes(ck, &old)
		delete(s.recs, ck)
	}
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
