// Package kv is the versioned key-value store: per-key versions starting at
// 1, TTL, compare-and-swap, if-(not-)exists, blocking get, prefix scan with a
// resume cursor, and the newest 64 versions of history.
//
// Storage layout (under the 'k', 'h' and 'x' prefixes):
//
//	'k' ns 0x00 key                    -> [version:u64][written_ms:i64][expires_ms:i64][deleted:u8][value]
//	'h' ns 0x00 [key_len:u32] key ^ver -> [written_ms:i64][value]
//	'x' [expires_ms:u64 BE] ns 0x00 key -> (empty) expiry index
//
// The current record is kept even after a delete (as a tombstone), so
// versions never go back. History keys end in the bitwise complement of the
// version, big-endian, so a forward scan lists newest first. Expired keys are
// absent to every reader the moment they expire (checked against the
// reader's clock, or the command time inside Apply); the pulse later turns
// them into tombstones through the expiry index, reclaiming their values.
package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// Limits of the KV store (SEMANTICS §8.2).
const (
	MaxKeyBytes      = 1<<16 - 1 // 64 KiB, less the one byte a u16 length cannot say
	MaxValueBytes    = 16 << 20
	HistoryKept      = 64
	HistoryDefault   = 10
	ScanLimitDefault = 100
	ScanLimitMax     = 1000
	// MaxTTLSeconds is the longest TTL a put accepts (100 years); a
	// longer one is BAD_REQUEST rather than an expiry past what a
	// millisecond timestamp can hold.
	MaxTTLSeconds = 100 * 365 * 24 * 3600
)

// SweepBatch bounds the expired keys one pulse reclaims, so a pulse stays
// short however many keys expire at once; the rest wait for the next pulse.
const SweepBatch = 1000

// sweepDelay is how long after a key's expiry its reclamation is scheduled.
// Expired keys are already invisible, so there is no hurry, and batching
// keeps pulses rare.
const sweepDelay = time.Second

// Machine is the KV state machine. Storage is the truth; in memory it keeps
// the time of the earliest expiry and a cache of recently written or read
// records (cache.go), which gets consult before storage.
type Machine struct {
	db storage.Reader
	// nextExpiryMs is the earliest expires_ms in the expiry index (0 =
	// none). Written by Apply and Load, read by NextDue.
	nextExpiryMs atomic.Int64
	cache        *recordCache
	// written holds the current records Apply wrote since the last
	// Committed, by current-record key; only Apply touches it.
	written map[string]record
	// maxReplyBytes bounds the keys and values of one scan page or history
	// (command.MaxReplyBytes; smaller in tests): 1,000 keys or 64 versions
	// of 16 MiB would otherwise be a reply of gigabytes, past what a
	// frame's u32 length can say. A page stops early, with a cursor; a
	// history returns fewer versions.
	maxReplyBytes int
}

// New returns a KV machine reading committed state from db.
func New(db storage.Reader) *Machine { return newMachine(db, CacheBytes) }

func newMachine(db storage.Reader, cacheBytes int) *Machine {
	return &Machine{db: db, cache: newRecordCache(cacheBytes), written: make(map[string]record), maxReplyBytes: command.MaxReplyBytes}
}

// Committed implements fsm.Committer: the records the group wrote are in
// storage now, so gets may see them through the cache.
func (m *Machine) Committed() {
	for ck, rec := range m.written {
		m.cache.set(ck, rec)
	}
	clear(m.written)
}

// current returns the current record of ck as Apply sees it: written by
// this group, cached, or in b; ok is false if the key was never written.
func (m *Machine) current(b storage.Reader, ck []byte) (record, bool, error) {
	if rec, ok := m.written[string(ck)]; ok {
		return rec, true, nil
	}
	if rec, ok, _ := m.cache.get(ck); ok {
		return rec, true, nil
	}
	return loadKey(b, ck)
}

// setCurrent writes ck's current record; the cache holds the key pending
// until Committed publishes it.
func (m *Machine) setCurrent(b storage.Batch, ck []byte, rec record) {
	b.Set(ck, rec.encode())
	if _, again := m.written[string(ck)]; !again {
		m.cache.markPending(string(ck))
	}
	m.written[string(ck)] = rec
}

// Handlers implements fsm.Machine.
func (m *Machine) Handlers() map[wire.Op]command.Handler {
	return map[wire.Op]command.Handler{
		wire.OpKVPut:     {Kind: command.Write},
		wire.OpKVDelete:  {Kind: command.Write},
		wire.OpKVGet:     {Kind: command.Read, Read: m.get, WaitKeys: waitKeys},
		wire.OpKVScan:    {Kind: command.Read, Read: m.scan},
		wire.OpKVHistory: {Kind: command.Read, Read: m.history},
	}
}

// Load implements fsm.Machine: it finds the earliest pending expiry.
func (m *Machine) Load(r storage.Reader) error {
	next, err := firstExpiry(r)
	m.nextExpiryMs.Store(next)
	return err
}

// NextDue implements fsm.Machine: the pulse that reclaims expired keys.
func (m *Machine) NextDue() int64 {
	if ms := m.nextExpiryMs.Load(); ms != 0 {
		return (time.Duration(ms)*time.Millisecond + sweepDelay).Nanoseconds()
	}
	return 0
}

// Apply implements fsm.Machine.
func (m *Machine) Apply(cmd *command.Command, b storage.Batch) command.Result {
	switch {
	case cmd.Op == command.OpPulse:
		return m.sweep(cmd, b)
	case wire.Op(cmd.Op) == wire.OpKVPut:
		return m.put(cmd, b)
	case wire.Op(cmd.Op) == wire.OpKVDelete:
		return m.del(cmd, b)
	}
	return command.Result{}
}

func expiryKey(expiresMs int64, ns string, key []byte) []byte {
	k := make([]byte, 0, 10+len(ns)+len(key))
	k = append(k, 'x')
	k = binary.BigEndian.AppendUint64(k, uint64(expiresMs))
	k = append(k, ns...)
	k = append(k, 0)
	return append(k, key...)
}

var expiryPrefix = []byte{'x'}

// firstExpiry returns the earliest expires_ms in the index, or 0.
func firstExpiry(r storage.Reader) (int64, error) {
	var next int64
	err := r.Iterate(expiryPrefix, storage.PrefixEnd(expiryPrefix), false, func(k, _ []byte) bool {
		if len(k) >= 9 {
			next = int64(binary.BigEndian.Uint64(k[1:9]))
		}
		return false
	})
	return next, err
}

// sweep turns keys whose expiry has passed into tombstones (keeping their
// version, so versions never go back) and drops their index entries.
func (m *Machine) sweep(cmd *command.Command, b storage.Batch) command.Result {
	nowMs := cmd.TimeMs()
	if next := m.nextExpiryMs.Load(); next == 0 || next > nowMs {
		return command.Result{}
	}
	upper := expiryKey(nowMs, "", nil)[:9]
	var due [][]byte
	err := b.Iterate(expiryPrefix, upper, false, func(k, _ []byte) bool {
		due = append(due, append([]byte(nil), k...))
		return len(due) < SweepBatch
	})
	if err != nil {
		return internal(err)
	}
	for _, k := range due {
		b.Delete(k)
		expMs := int64(binary.BigEndian.Uint64(k[1:9]))
		nsKey := k[9:]
		sep := bytes.IndexByte(nsKey, 0)
		if sep < 0 {
			continue
		}
		ck := currentKey(string(nsKey[:sep]), nsKey[sep+1:])
		cur, ok, err := m.current(b, ck)
		if err != nil {
			return internal(err)
		}
		// Only the entry matching the key's current expiry reclaims it; an
		// older entry is stale (the key was rewritten).
		if ok && !cur.deleted && cur.expiresMs == expMs {
			m.setCurrent(b, ck, record{version: cur.version, writtenMs: cur.writtenMs, expiresMs: cur.expiresMs, deleted: true})
		}
	}
	next, err := firstExpiry(b)
	if err != nil {
		return internal(err)
	}
	m.nextExpiryMs.Store(next)
	return command.Result{}
}

// WaitKey is the key a blocking get on (ns, key) parks under.
func WaitKey(ns string, key []byte) string {
	return "kv\x00" + ns + "\x00" + string(key)
}

func waitKeys(cmd *command.Command) []string {
	return []string{WaitKey(cmd.Namespace, cmd.Key)}
}

// record is the decoded current state of a key.
type record struct {
	version   uint64
	writtenMs int64
	expiresMs int64 // 0 = never
	deleted   bool
	value     []byte
}

func (r *record) live(nowMs int64) bool {
	return !r.deleted && (r.expiresMs == 0 || nowMs < r.expiresMs)
}

func (r *record) encode() []byte {
	out := make([]byte, 0, 25+len(r.value))
	out = binary.LittleEndian.AppendUint64(out, r.version)
	out = binary.LittleEndian.AppendUint64(out, uint64(r.writtenMs))
	out = binary.LittleEndian.AppendUint64(out, uint64(r.expiresMs))
	d := byte(0)
	if r.deleted {
		d = 1
	}
	out = append(out, d)
	return append(out, r.value...)
}

var errCorrupt = errors.New("kv: corrupt record")

func decodeRecord(b []byte) (record, error) {
	if len(b) < 25 {
		return record{}, errCorrupt
	}
	return record{
		version:   binary.LittleEndian.Uint64(b[0:8]),
		writtenMs: int64(binary.LittleEndian.Uint64(b[8:16])),
		expiresMs: int64(binary.LittleEndian.Uint64(b[16:24])),
		deleted:   b[24] != 0,
		value:     b[25:],
	}, nil
}

func currentKey(ns string, key []byte) []byte {
	k := make([]byte, 0, 2+len(ns)+len(key))
	k = append(k, 'k')
	k = append(k, ns...)
	k = append(k, 0)
	return append(k, key...)
}

func historyPrefix(ns string, key []byte) []byte {
	k := make([]byte, 0, 6+len(ns)+len(key)+8)
	k = append(k, 'h')
	k = append(k, ns...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint32(k, uint32(len(key)))
	return append(k, key...)
}

func historyKey(prefix []byte, version uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), ^version)
}

// load reads the current record of a key; ok is false if it was never written.
func load(r storage.Reader, ns string, key []byte) (rec record, ok bool, err error) {
	return loadKey(r, currentKey(ns, key))
}

// loadKey is load by current-record key.
func loadKey(r storage.Reader, ck []byte) (rec record, ok bool, err error) {
	v, err := r.Get(ck)
	if errors.Is(err, storage.ErrNotFound) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, err
	}
	rec, err = decodeRecord(v)
	return rec, err == nil, err
}

func validateKey(key []byte) error {
	if len(key) == 0 {
		return wire.Errorf(wire.StatusBadRequest, "key must not be empty")
	}
	if len(key) > MaxKeyBytes {
		return wire.Errorf(wire.StatusBadRequest, "key is %d bytes, over the %d-byte limit", len(key), MaxKeyBytes)
	}
	return nil
}

func internal(err error) command.Result {
	return command.Fail(wire.Errorf(wire.StatusInternal, "kv: %v", err))
}

func (m *Machine) put(cmd *command.Command, b storage.Batch) command.Result {
	if err := validateKey(cmd.Key); err != nil {
		return command.Fail(err)
	}
	if len(cmd.Value) > MaxValueBytes {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "value is %d bytes, over the %d-byte limit", len(cmd.Value), MaxValueBytes))
	}
	o := cmd.Options
	ttl, _ := o.Uint(wire.TagTTLSeconds)
	cas, hasCAS := o.Uint(wire.TagCASVersion)
	nx, xx := o.Has(wire.TagIfNotExists), o.Has(wire.TagIfExists)
	if nx && xx {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "if_not_exists and if_exists cannot be combined"))
	}
	if nx && hasCAS {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "cas_version and if_not_exists cannot be combined"))
	}
	if ttl > MaxTTLSeconds {
		return command.Fail(wire.Errorf(wire.StatusBadRequest, "ttl_seconds %d is over the limit of %d (100 years)", ttl, MaxTTLSeconds))
	}
	nowMs := cmd.TimeMs()
	ck := currentKey(cmd.Namespace, cmd.Key)
	cur, exists, err := m.current(b, ck)
	if err != nil {
		return internal(err)
	}
	live := exists && cur.live(nowMs)
	switch {
	case nx && live:
		return command.Fail(wire.Errorf(wire.StatusConflict, "key exists"))
	case xx && !live:
		return command.Fail(wire.Errorf(wire.StatusConflict, "key does not exist"))
	case hasCAS && cas == 0 && live:
		return command.Fail(wire.Errorf(wire.StatusConflict, "cas_version 0 requires the key to be absent; it is at version %d", cur.version))
	case hasCAS && cas > 0 && (!live || cur.version != cas):
		if !live {
			return command.Fail(wire.Errorf(wire.StatusConflict, "cas_version %d: key does not exist", cas))
		}
		return command.Fail(wire.Errorf(wire.StatusConflict, "cas_version %d does not match current version %d", cas, cur.version))
	}
	rec := record{version: cur.version + 1, writtenMs: nowMs, value: cmd.Value}
	if ttl > 0 {
		rec.expiresMs = nowMs + int64(ttl)*1000
	}
	if exists && cur.expiresMs != 0 && !cur.deleted {
		b.Delete(expiryKey(cur.expiresMs, cmd.Namespace, cmd.Key))
	}
	if rec.expiresMs != 0 {
		b.Set(expiryKey(rec.expiresMs, cmd.Namespace, cmd.Key), nil)
		if next := m.nextExpiryMs.Load(); next == 0 || rec.expiresMs < next {
			m.nextExpiryMs.Store(rec.expiresMs)
		}
	}
	m.setCurrent(b, ck, rec)
	hp := historyPrefix(cmd.Namespace, cmd.Key)
	hv := make([]byte, 0, 8+len(cmd.Value))
	hv = binary.LittleEndian.AppendUint64(hv, uint64(nowMs))
	b.Set(historyKey(hp, rec.version), append(hv, cmd.Value...))
	trimHistory(b, hp, rec.version)
	return command.Result{
		Body: binary.LittleEndian.AppendUint64(nil, rec.version),
		Wake: []string{WaitKey(cmd.Namespace, cmd.Key)},
	}
}

// trimHistory drops the version that falls out of the kept window. Every
// version number is used exactly once, so deleting one per write keeps the
// window at HistoryKept numbers.
func trimHistory(b storage.Batch, prefix []byte, version uint64) {
	if version > HistoryKept {
		b.Delete(historyKey(prefix, version-HistoryKept))
	}
}

func (m *Machine) del(cmd *command.Command, b storage.Batch) command.Result {
	if err := validateKey(cmd.Key); err != nil {
		return command.Fail(err)
	}
	ck := currentKey(cmd.Namespace, cmd.Key)
	cur, exists, err := m.current(b, ck)
	if err != nil {
		return internal(err)
	}
	if !exists || !cur.live(cmd.TimeMs()) {
		return command.Fail(wire.Errorf(wire.StatusNotFound, "key not found"))
	}
	if cur.expiresMs != 0 {
		b.Delete(expiryKey(cur.expiresMs, cmd.Namespace, cmd.Key))
	}
	tomb := record{version: cur.version + 1, writtenMs: cmd.TimeMs(), deleted: true}
	m.setCurrent(b, ck, tomb)
	trimHistory(b, historyPrefix(cmd.Namespace, cmd.Key), tomb.version)
	return command.Result{}
}

func (m *Machine) get(cmd *command.Command) command.Result {
	if err := validateKey(cmd.Key); err != nil {
		return command.Fail(err)
	}
	ck := currentKey(cmd.Namespace, cmd.Key)
	rec, ok, gen := m.cache.get(ck)
	if !ok {
		var err error
		if rec, ok, err = loadKey(m.db, ck); err != nil {
			return internal(err)
		}
		if ok {
			m.cache.fill(ck, rec, gen)
		}
	}
	if !ok || !rec.live(cmd.TimeMs()) {
		return command.Result{Err: wire.Errorf(wire.StatusNotFound, "key not found"), Empty: true}
	}
	return command.Reply(rec.value)
}

// cursorVersion prefixes every scan cursor so its format can change later.
const cursorVersion = 1

func (m *Machine) scan(cmd *command.Command) command.Result {
	prefix := cmd.Key
	limit := ScanLimitDefault
	if l, ok := cmd.Options.Uint(wire.TagLimit); ok && l > 0 {
		limit = int(min(l, ScanLimitMax))
	}
	keysOnly := cmd.Options.Flag(wire.TagKeysOnly)
	base := currentKey(cmd.Namespace, nil)
	lower := append(append([]byte(nil), base...), prefix...)
	upper := storage.PrefixEnd(lower)
	if len(cmd.Value) > 0 {
		c := cmd.Value
		if c[0] != cursorVersion || !bytes.HasPrefix(c[1:], prefix) {
			return command.Fail(wire.Errorf(wire.StatusBadRequest, "unreadable scan cursor"))
		}
		// Resume strictly after the cursor's key.
		lower = append(append(append([]byte(nil), base...), c[1:]...), 0)
	}
	nowMs := cmd.TimeMs()
	var page wire.ScanPage
	var iterErr error
	size := 0
	err := m.db.Iterate(lower, upper, false, func(k, v []byte) bool {
		rec, err := decodeRecord(v)
		if err != nil {
			iterErr = err
			return false
		}
		if !rec.live(nowMs) {
			return true
		}
		e := wire.ScanEntry{Key: k[len(base):]}
		if !keysOnly {
			e.Value = rec.value
		}
		if len(page.Entries) == limit || len(page.Entries) > 0 && size+len(e.Key)+len(e.Value) > m.maxReplyBytes {
			page.HasMore = true
			return false
		}
		size += len(e.Key) + len(e.Value)
		e.Key, e.Value = append([]byte(nil), e.Key...), append([]byte(nil), e.Value...)
		page.Entries = append(page.Entries, e)
		return true
	})
	if err == nil {
		err = iterErr
	}
	if err != nil {
		return internal(err)
	}
	if page.HasMore {
		last := page.Entries[len(page.Entries)-1].Key
		page.Cursor = append([]byte{cursorVersion}, last...)
	}
	return command.Reply(wire.AppendScanPage(nil, &page))
}

func (m *Machine) history(cmd *command.Command) command.Result {
	if err := validateKey(cmd.Key); err != nil {
		return command.Fail(err)
	}
	if _, ok, err := load(m.db, cmd.Namespace, cmd.Key); err != nil {
		return internal(err)
	} else if !ok {
		return command.Fail(wire.Errorf(wire.StatusNotFound, "key has no history"))
	}
	limit := HistoryDefault
	if l, ok := cmd.Options.Uint(wire.TagLimit); ok && l > 0 {
		limit = int(min(l, HistoryKept))
	}
	hp := historyPrefix(cmd.Namespace, cmd.Key)
	var es []wire.HistoryEntry
	size := 0
	err := m.db.Iterate(hp, storage.PrefixEnd(hp), false, func(k, v []byte) bool {
		if len(k) != len(hp)+8 || len(v) < 8 {
			return true
		}
		if len(es) > 0 && size+len(v)-8 > m.maxReplyBytes {
			return false
		}
		size += len(v) - 8
		es = append(es, wire.HistoryEntry{
			Version:     ^binary.BigEndian.Uint64(k[len(hp):]),
			TimestampMs: int64(binary.LittleEndian.Uint64(v[:8])),
			Value:       append([]byte(nil), v[8:]...),
		})
		return len(es) < limit
	})
	if err != nil {
		return internal(err)
	}
	return command.Reply(wire.AppendHistory(nil, es))
}
