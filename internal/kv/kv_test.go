package kv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/internal/storage/storagetest"
	"github.com/floruntime/flo/wire"
)

type setup struct {
	db *storage.DB
	m  *Machine
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	db := storagetest.Open(t, "kv", storage.Options{FS: vfs.NewMem()})
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
	s.m.Committed()
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

func putCmd(when time.Duration, key string, value []byte, o wire.Options) command.Command {
	return command.Command{Op: command.Op(wire.OpKVPut), Time: at(when), Namespace: "ns", Key: []byte(key), Value: value, Options: o}
}

func getCmd(when time.Duration, key string) *command.Command {
	return &command.Command{Op: command.Op(wire.OpKVGet), Time: at(when), Namespace: "ns", Key: []byte(key)}
}

// TestMachine_CacheMatchesStorage runs the same random writes through a
// machine whose record cache holds almost nothing (so it evicts all the
// time) and one whose cache holds everything: every write result and every
// get must be identical, and every cached record must equal storage's.
func TestMachine_CacheMatchesStorage(t *testing.T) {
	t.Parallel()
	tiny, big := newSetup(t), newSetup(t)
	tiny.m = newMachine(tiny.db, cacheShards*(cacheEntryOverhead+40))
	big.m = newMachine(big.db, CacheBytes)
	rng := rand.New(rand.NewPCG(7, 11))
	now := time.Duration(0)
	for i := 0; i < 3000; i++ {
		now += time.Duration(rng.IntN(400)) * time.Millisecond
		key := fmt.Sprintf("k%d", rng.IntN(20))
		cmd := putCmd(now, key, bytes.Repeat([]byte{byte(i)}, rng.IntN(30)), nil)
		switch r := rng.IntN(10); {
		case r < 2:
			cmd.Op = command.Op(wire.OpKVDelete)
		case r < 3:
			cmd = command.Command{Op: command.OpPulse, Time: at(now)}
		case r < 5:
			cmd.Options = wire.AppendU64(nil, wire.TagTTLSeconds, uint64(1+rng.IntN(3)))
		case r < 6:
			cmd.Options = wire.AppendFlag(nil, wire.TagIfNotExists)
		case r < 7:
			cmd.Options = wire.AppendFlag(nil, wire.TagIfExists)
		case r < 8:
			cmd.Options = wire.AppendU64(nil, wire.TagCASVersion, uint64(rng.IntN(6)))
		}
		a, b := tiny.apply(t, cmd), big.apply(t, cmd)
		if !bytes.Equal(a.Body, b.Body) || fmt.Sprint(a.Err) != fmt.Sprint(b.Err) {
			t.Fatalf("op %d (%v on %s): small cache gave %x/%v, large cache gave %x/%v", i, cmd.Op, key, a.Body, a.Err, b.Body, b.Err)
		}
		for k := 0; k < 20; k++ {
			g := getCmd(now, fmt.Sprintf("k%d", k))
			ga, gb := tiny.m.get(g), big.m.get(g)
			if !bytes.Equal(ga.Body, gb.Body) || fmt.Sprint(ga.Err) != fmt.Sprint(gb.Err) {
				t.Fatalf("op %d: get k%d: small cache %x/%v, large cache %x/%v", i, k, ga.Body, ga.Err, gb.Body, gb.Err)
			}
		}
		for _, s := range []*setup{tiny, big} {
			for si := range s.m.cache.shards {
				sh := &s.m.cache.shards[si]
				if sh.bytes > s.m.cache.limit {
					t.Fatalf("op %d: shard %d holds %d bytes, over %d", i, si, sh.bytes, s.m.cache.limit)
				}
				for ck, rec := range sh.recs {
					st, ok, err := loadKey(s.db, []byte(ck))
					if err != nil || !ok || !bytes.Equal(st.encode(), rec.encode()) {
						t.Fatalf("op %d: cached %q = %+v, storage has %+v (ok=%v, err=%v)", i, ck, rec, st, ok, err)
					}
				}
			}
		}
	}
	cached := 0
	for si := range big.m.cache.shards {
		cached += len(big.m.cache.shards[si].recs)
	}
	if cached != 20 {
		t.Fatalf("the large cache holds %d of the 20 keys", cached)
	}
}

// TestMachine_GetSeesOnlyCommittedWrites: a get served from the cache shows
// a write only once its group is committed, as a get from storage would.
func TestMachine_GetSeesOnlyCommittedWrites(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	s.apply(t, putCmd(0, "a", []byte("v1"), nil))
	b := s.db.NewBatch()
	c2 := putCmd(time.Second, "a", []byte("v2"), nil)
	s.m.Apply(&c2, b)
	if r := s.m.get(getCmd(time.Second, "a")); string(r.Body) != "v1" {
		t.Fatalf("before commit: get = %q, want v1", r.Body)
	}
	if err := s.db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	s.m.Committed()
	if r := s.m.get(getCmd(time.Second, "a")); string(r.Body) != "v2" {
		t.Fatalf("after commit: get = %q, want v2", r.Body)
	}
}

// TestMachine_CacheValueLimit: a value of CacheMaxValueBytes is cached, one
// byte more is not, and writing it drops the key's older cached record.
func TestMachine_CacheValueLimit(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	ck := currentKey("ns", []byte("a"))
	s.apply(t, putCmd(0, "a", make([]byte, CacheMaxValueBytes), nil))
	if _, ok, _ := s.m.cache.get(ck); !ok {
		t.Fatal("a value at the limit is not cached")
	}
	s.apply(t, putCmd(time.Second, "a", make([]byte, CacheMaxValueBytes+1), nil))
	if _, ok, _ := s.m.cache.get(ck); ok {
		t.Fatal("a value over the limit is cached (or the older record was kept)")
	}
	if r := s.m.get(getCmd(time.Second, "a")); len(r.Body) != CacheMaxValueBytes+1 {
		t.Fatalf("get of the uncached value: %d bytes, err %v", len(r.Body), r.Err)
	}
}

// TestCache_FillOnlyWhenNoWriteOvertookTheRead walks the interleavings of a
// get that missed, read storage, and then fills the cache, with a write to
// the same key marked (applied) and published (committed) around it.
func TestCache_FillOnlyWhenNoWriteOvertookTheRead(t *testing.T) {
	t.Parallel()
	old := record{version: 1, value: []byte("old")}
	cur := record{version: 2, value: []byte("new")}
	cached := func(c *recordCache, ck string) (record, bool) {
		r, ok, _ := c.get([]byte(ck))
		return r, ok
	}

	c := newRecordCache(1 << 20)
	_, _, gen := c.get([]byte("a"))
	c.fill([]byte("a"), old, gen)
	if r, ok := cached(c, "a"); !ok || r.version != 1 {
		t.Fatalf("fill with no write around it: cached %+v, %v", r, ok)
	}

	// The write is applied after the get looked: the stale read must not fill.
	_, _, gen = c.get([]byte("b"))
	c.markPending("b")
	c.fill([]byte("b"), old, gen)
	if _, ok := cached(c, "b"); ok {
		t.Fatal("filled a key whose write was applied after the get looked")
	}
	// Applied before the get looked, not yet committed: still pending.
	_, _, gen = c.get([]byte("b"))
	c.fill([]byte("b"), old, gen)
	if _, ok := cached(c, "b"); ok {
		t.Fatal("filled a key with a pending write")
	}
	c.set("b", cur)
	if r, ok := cached(c, "b"); !ok || r.version != 2 {
		t.Fatalf("after publish: cached %+v, %v", r, ok)
	}

	// Published while the get read storage, with a value too large to keep
	// (so the key is absent afterwards): the generation moved, no fill.
	_, _, gen = c.get([]byte("d"))
	c.markPending("d")
	c.set("d", record{version: 2, value: make([]byte, CacheMaxValueBytes+1)})
	c.fill([]byte("d"), old, gen)
	if _, ok := cached(c, "d"); ok {
		t.Fatal("filled over a publish that happened during the read")
	}
}

// TestMachine_GetFillsTheCacheAfterARestart: a machine rebuilt over
// existing data starts with an empty cache; the first get of a key caches
// it, and a later write replaces the cached record.
func TestMachine_GetFillsTheCacheAfterARestart(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	s.apply(t, putCmd(0, "a", []byte("v1"), nil))
	s.m = New(s.db)
	if err := s.m.Load(s.db); err != nil {
		t.Fatal(err)
	}
	ck := currentKey("ns", []byte("a"))
	if _, ok, _ := s.m.cache.get(ck); ok {
		t.Fatal("cache not empty after a restart")
	}
	if r := s.m.get(getCmd(time.Second, "a")); string(r.Body) != "v1" {
		t.Fatalf("get = %q, %v", r.Body, r.Err)
	}
	if rec, ok, _ := s.m.cache.get(ck); !ok || string(rec.value) != "v1" {
		t.Fatalf("first get did not fill the cache: %+v, %v", rec, ok)
	}
	s.apply(t, putCmd(2*time.Second, "a", []byte("v2"), nil))
	if r := s.m.get(getCmd(2*time.Second, "a")); string(r.Body) != "v2" {
		t.Fatalf("get after a write = %q", r.Body)
	}
}

// TestMachine_GetIsServedFromTheCache removes a cached key's record from
// storage behind the machine's back: the get still answers from the cache,
// while a machine with a cold cache finds nothing.
func TestMachine_GetIsServedFromTheCache(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	s.apply(t, putCmd(0, "a", []byte("v1"), nil))
	b := s.db.NewBatch()
	b.Delete(currentKey("ns", []byte("a")))
	if err := s.db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	if r := s.m.get(getCmd(time.Second, "a")); string(r.Body) != "v1" {
		t.Fatalf("cached get = %q, %v; want v1 from the cache", r.Body, r.Err)
	}
	if r := New(s.db).get(getCmd(time.Second, "a")); r.Err == nil {
		t.Fatalf("cold get = %q; want not found from storage", r.Body)
	}
}

// TestMachine_RepliesStopAtMaxReplyBytes: a scan page ends early, with a
// cursor, once the next entry would take its keys and values past the
// reply limit, and always holds at least one entry; keys-only pages count
// only keys; a history returns fewer versions.
func TestMachine_RepliesStopAtMaxReplyBytes(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	s.m.maxReplyBytes = 100
	val := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	for _, kv := range []struct {
		key string
		n   int
	}{{"a", 49}, {"b", 49}, {"c", 49}, {"d", 200}, {"e", 1}} {
		if r := s.apply(t, putCmd(0, kv.key, val(kv.n, kv.key[0]), nil)); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	scan := func(cursor []byte, o wire.Options) wire.ScanPage {
		t.Helper()
		r := s.m.scan(&command.Command{Op: command.Op(wire.OpKVScan), Time: at(0), Namespace: "ns", Value: cursor, Options: o})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		page, err := wire.DecodeScanPage(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	// a+b are exactly 100 bytes; c would pass; d alone is over the limit
	// but a page holds at least one entry; e follows.
	var got []string
	var cursor []byte
	for pages := 0; ; pages++ {
		page := scan(cursor, nil)
		var keys string
		for _, e := range page.Entries {
			if !bytes.Equal(e.Value, val(len(e.Value), e.Key[0])) {
				t.Fatalf("value of %s", e.Key)
			}
			keys += string(e.Key)
		}
		got = append(got, keys)
		if !page.HasMore {
			break
		}
		cursor = page.Cursor
	}
	if fmt.Sprint(got) != "[ab c d e]" {
		t.Fatalf("pages %v, want [ab c d e]", got)
	}
	if page := scan(nil, wire.AppendFlag(nil, wire.TagKeysOnly)); len(page.Entries) != 5 || page.HasMore {
		t.Fatalf("keys-only page: %d entries, more %v", len(page.Entries), page.HasMore)
	}

	for i := 1; i <= 4; i++ {
		s.apply(t, putCmd(0, "h", val(50, byte('0'+i)), nil))
	}
	history := func(key string) []wire.HistoryEntry {
		t.Helper()
		r := s.m.history(&command.Command{Op: command.Op(wire.OpKVHistory), Time: at(0), Namespace: "ns", Key: []byte(key)})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		h, err := wire.DecodeHistory(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := history("h"); len(h) != 2 || h[0].Version != 4 || h[1].Version != 3 {
		t.Fatalf("history within 100 bytes: %+v", h)
	}
	if h := history("d"); len(h) != 1 || len(h[0].Value) != 200 {
		t.Fatalf("history of one version over the limit: %d entries", len(h))
	}
}

// TestMachine_TTLLimit: MaxTTLSeconds is accepted and expires then; one
// second more is BAD_REQUEST and writes nothing.
func TestMachine_TTLLimit(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	ok := s.apply(t, putCmd(0, "max", []byte("v"), wire.AppendU64(nil, wire.TagTTLSeconds, MaxTTLSeconds)))
	if ok.Err != nil {
		t.Fatalf("ttl at the limit: %v", ok.Err)
	}
	if st, found, err := load(s.db, "ns", []byte("max")); err != nil || !found || st.expiresMs != at(0)/int64(time.Millisecond)+MaxTTLSeconds*1000 {
		t.Fatalf("record at the limit: %+v, %v, %v", st, found, err)
	}
	over := s.apply(t, putCmd(0, "over", []byte("v"), wire.AppendU64(nil, wire.TagTTLSeconds, MaxTTLSeconds+1)))
	if wire.StatusOf(over.Err) != wire.StatusBadRequest {
		t.Fatalf("ttl over the limit: %v", over.Err)
	}
	if _, found, _ := load(s.db, "ns", []byte("over")); found {
		t.Fatal("a refused put wrote its key")
	}
}
