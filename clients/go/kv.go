package flo

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/floruntime/flo/wire"
)

// KV is the versioned key-value store.
type KV struct{ c *Client }

// GetOptions configures KV.Get. The zero value reads without waiting.
type GetOptions struct {
	Namespace string
	// Block waits up to this long for the key to exist; Forever waits
	// without limit; 0 does not wait.
	Block time.Duration
}

// Get returns the value of key, or nil and no error when the key is absent
// (never written, deleted or expired). An empty stored value is returned as
// a non-nil empty slice.
func (k *KV) Get(ctx context.Context, key string, o *GetOptions) ([]byte, error) {
	if o == nil {
		o = &GetOptions{}
	}
	body, err := k.c.call(ctx, request{op: wire.OpKVGet, namespace: o.Namespace, key: []byte(key), block: o.Block})
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if body == nil {
		body = []byte{}
	}
	return body, nil
}

// PutOptions configures KV.Put. The zero value is an unconditional put
// without expiry.
type PutOptions struct {
	Namespace string
	// TTL expires the key this long after the write (whole seconds; 0 = never).
	TTL time.Duration
	// CASVersion, when non-nil, requires the key's current version to equal
	// it (0 = the key must be absent).
	CASVersion *uint64
	// IfNotExists and IfExists make the put conditional on the key's presence.
	IfNotExists bool
	IfExists    bool
}

// Put writes value at key and returns the key's new version. A failed
// condition returns an error matching ErrConflict and changes nothing.
func (k *KV) Put(ctx context.Context, key string, value []byte, o *PutOptions) (uint64, error) {
	if o == nil {
		o = &PutOptions{}
	}
	var opts wire.Options
	if o.TTL > 0 {
		opts = wire.AppendU64(opts, wire.TagTTLSeconds, uint64((o.TTL+time.Second-1)/time.Second))
	}
	if o.CASVersion != nil {
		opts = wire.AppendU64(opts, wire.TagCASVersion, *o.CASVersion)
	}
	if o.IfNotExists {
		opts = wire.AppendFlag(opts, wire.TagIfNotExists)
	}
	if o.IfExists {
		opts = wire.AppendFlag(opts, wire.TagIfExists)
	}
	body, err := k.c.call(ctx, request{op: wire.OpKVPut, namespace: o.Namespace, key: []byte(key), value: value, options: opts})
	if err != nil {
		return 0, err
	}
	if len(body) >= 8 {
		return binary.LittleEndian.Uint64(body), nil
	}
	return 0, nil
}

// DeleteOptions configures KV.Delete.
type DeleteOptions struct {
	Namespace string
}

// Delete removes key. Deleting an absent key is not an error.
func (k *KV) Delete(ctx context.Context, key string, o *DeleteOptions) error {
	if o == nil {
		o = &DeleteOptions{}
	}
	_, err := k.c.call(ctx, request{op: wire.OpKVDelete, namespace: o.Namespace, key: []byte(key)})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// ScanOptions configures KV.Scan.
type ScanOptions struct {
	Namespace string
	// Cursor resumes a previous scan of the same prefix (ScanResult.Cursor).
	Cursor []byte
	// Limit is the page size: 0 means 100, at most 1000. A page also ends
	// (with HasMore) before its keys and values pass 64 MiB.
	Limit int
	// KeysOnly leaves every entry's Value nil.
	KeysOnly bool
}

// KVEntry is one key of a scan.
type KVEntry struct {
	Key   string
	Value []byte
}

// ScanResult is one page of a scan.
type ScanResult struct {
	Entries []KVEntry
	// Cursor resumes after the last entry; nil when HasMore is false.
	Cursor  []byte
	HasMore bool
}

// Scan lists live keys starting with prefix in ascending byte order, one page
// at a time.
func (k *KV) Scan(ctx context.Context, prefix string, o *ScanOptions) (*ScanResult, error) {
	if o == nil {
		o = &ScanOptions{}
	}
	var opts wire.Options
	if o.Limit > 0 {
		opts = wire.AppendU32(opts, wire.TagLimit, uint32(min(o.Limit, 1<<31)))
	}
	if o.KeysOnly {
		opts = wire.AppendU8(opts, wire.TagKeysOnly, 1)
	}
	body, err := k.c.call(ctx, request{op: wire.OpKVScan, namespace: o.Namespace, key: []byte(prefix), value: o.Cursor, options: opts})
	if err != nil {
		return nil, err
	}
	page, err := wire.DecodeScanPage(body)
	if err != nil {
		return nil, err
	}
	res := &ScanResult{Cursor: page.Cursor, HasMore: page.HasMore, Entries: make([]KVEntry, len(page.Entries))}
	for i, e := range page.Entries {
		res.Entries[i] = KVEntry{Key: string(e.Key), Value: e.Value}
	}
	return res, nil
}

// HistoryOptions configures KV.History.
type HistoryOptions struct {
	Namespace string
	// Limit is the number of versions: 0 means 10, at most 64. Fewer come
	// back when their values would pass 64 MiB (at least one always does).
	Limit int
}

// Version is one past value of a key.
type Version struct {
	Version   uint64
	Timestamp time.Time
	Value     []byte
}

// History returns the key's versions, newest first. A key never written
// returns an error matching ErrNotFound.
func (k *KV) History(ctx context.Context, key string, o *HistoryOptions) ([]Version, error) {
	if o == nil {
		o = &HistoryOptions{}
	}
	var opts wire.Options
	if o.Limit > 0 {
		opts = wire.AppendU32(opts, wire.TagLimit, uint32(min(o.Limit, 1<<31)))
	}
	body, err := k.c.call(ctx, request{op: wire.OpKVHistory, namespace: o.Namespace, key: []byte(key), options: opts})
	if err != nil {
		return nil, err
	}
	es, err := wire.DecodeHistory(body)
	if err != nil {
		return nil, err
	}
	out := make([]Version, len(es))
	for i, e := range es {
		out[i] = Version{Version: e.Version, Timestamp: time.UnixMilli(e.TimestampMs), Value: e.Value}
	}
	return out, nil
}
