package flo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/internal/kv"
)

func setupKV(t *testing.T) (*flotest.Server, *flo.Client, context.Context) {
	t.Helper()
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	return srv, srv.Client(t, flo.Options{}), context.Background()
}

func u64(v uint64) *uint64 { return &v }

// waitUntil polls cond every 10 ms until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKV_PutGetVersions(t *testing.T) {
	_, c, ctx := setupKV(t)
	for want := uint64(1); want <= 3; want++ {
		v, err := c.KV.Put(ctx, "k", []byte(fmt.Sprint("v", want)), nil)
		if err != nil || v != want {
			t.Fatalf("put %d: version %d, %v", want, v, err)
		}
	}
	if got, err := c.KV.Get(ctx, "k", nil); err != nil || string(got) != "v3" {
		t.Fatalf("get = %q, %v", got, err)
	}
	if got, err := c.KV.Get(ctx, "missing", nil); err != nil || got != nil {
		t.Fatalf("absent get = %q, %v; want nil, nil", got, err)
	}
	// A delete uses up a version; versions never go back.
	if err := c.KV.Delete(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.KV.Get(ctx, "k", nil); got != nil {
		t.Fatalf("deleted key = %q", got)
	}
	if err := c.KV.Delete(ctx, "k", nil); err != nil {
		t.Fatalf("deleting an absent key: %v", err)
	}
	if v, err := c.KV.Put(ctx, "k", []byte("again"), nil); err != nil || v != 5 {
		t.Fatalf("put after delete: version %d, %v; want 5", v, err)
	}
	// An empty value is a live key.
	if _, err := c.KV.Put(ctx, "empty", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := c.KV.Get(ctx, "empty", nil); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty value = %v, %v", got, err)
	}
}

func TestKV_TTLExpires(t *testing.T) {
	_, c, ctx := setupKV(t)
	if _, err := c.KV.Put(ctx, "session", []byte("s"), &flo.PutOptions{TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KV.Put(ctx, "session-keep", []byte("s"), nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.KV.Get(ctx, "session", nil); string(got) != "s" {
		t.Fatalf("before expiry: %q", got)
	}
	waitUntil(t, 5*time.Second, "expiry", func() bool {
		got, err := c.KV.Get(ctx, "session", nil)
		return err == nil && got == nil
	})
	res, err := c.KV.Scan(ctx, "session", nil)
	if err != nil || len(res.Entries) != 1 || res.Entries[0].Key != "session-keep" {
		t.Fatalf("scan after expiry: %+v, %v", res, err)
	}
	// Blocking get does not return an expired key.
	if got, err := c.KV.Get(ctx, "session", &flo.GetOptions{Block: 100 * time.Millisecond}); err != nil || got != nil {
		t.Fatalf("blocking get of expired key = %q, %v", got, err)
	}
	// if_exists sees an expired key as absent; a put without TTL makes it permanent.
	if _, err := c.KV.Put(ctx, "session", []byte("x"), &flo.PutOptions{IfExists: true}); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("if_exists on expired key: %v", err)
	}
	h, err := c.KV.History(ctx, "session", nil)
	if err != nil || len(h) != 1 {
		t.Fatalf("history survives expiry: %v, %v", h, err)
	}
}

func TestKV_BlockingGetWokenByAnotherConnection(t *testing.T) {
	srv, c, ctx := setupKV(t)
	other := srv.Client(t, flo.Options{})
	got := make(chan []byte, 1)
	go func() {
		v, err := c.KV.Get(ctx, "late", &flo.GetOptions{Block: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	// The put may land before or after the get parks; both must deliver it.
	time.Sleep(50 * time.Millisecond)
	if _, err := other.KV.Put(ctx, "late", []byte("here"), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if string(v) != "here" {
			t.Fatalf("woken get = %q", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking get was not woken by the put")
	}
}

func TestKV_BlockingGetForeverOutlastsClientTimeout(t *testing.T) {
	srv, _, ctx := setupKV(t)
	c := srv.Client(t, flo.Options{Timeout: 200 * time.Millisecond})
	got := make(chan []byte, 1)
	go func() {
		v, err := c.KV.Get(ctx, "slow", &flo.GetOptions{Block: flo.Forever})
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	time.Sleep(500 * time.Millisecond) // longer than the client timeout
	if _, err := srv.Client(t, flo.Options{}).KV.Put(ctx, "slow", []byte("ok"), nil); err != nil {
		t.Fatal(err)
	}
	if v := <-got; string(v) != "ok" {
		t.Fatalf("got %q", v)
	}
}

func TestKV_BlockingGetTimesOutAsAbsent(t *testing.T) {
	_, c, ctx := setupKV(t)
	start := time.Now()
	v, err := c.KV.Get(ctx, "never", &flo.GetOptions{Block: 150 * time.Millisecond})
	if err != nil || v != nil {
		t.Fatalf("timeout = %q, %v; want nil, nil", v, err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("returned after %v, before the block time", waited)
	}
}

func TestKV_ConditionalPuts(t *testing.T) {
	_, c, ctx := setupKV(t)
	if _, err := c.KV.Put(ctx, "c", []byte("1"), &flo.PutOptions{CASVersion: u64(0)}); err != nil {
		t.Fatalf("cas 0 on absent key: %v", err)
	}
	if _, err := c.KV.Put(ctx, "c", []byte("2"), &flo.PutOptions{CASVersion: u64(1)}); err != nil {
		t.Fatalf("cas 1: %v", err)
	}
	// A failed CAS changes nothing.
	if _, err := c.KV.Put(ctx, "c", []byte("bad"), &flo.PutOptions{CASVersion: u64(1)}); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("stale cas: %v", err)
	}
	if _, err := c.KV.Put(ctx, "c", []byte("bad"), &flo.PutOptions{CASVersion: u64(0)}); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("cas 0 on live key: %v", err)
	}
	if v, _ := c.KV.Get(ctx, "c", nil); string(v) != "2" {
		t.Fatalf("value after failed cas = %q", v)
	}
	if h, _ := c.KV.History(ctx, "c", nil); len(h) != 2 || h[0].Version != 2 {
		t.Fatalf("failed cas must not add a version: %+v", h)
	}
	if _, err := c.KV.Put(ctx, "c", []byte("x"), &flo.PutOptions{IfNotExists: true}); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("nx on live key: %v", err)
	}
	if _, err := c.KV.Put(ctx, "nx", []byte("x"), &flo.PutOptions{IfNotExists: true}); err != nil {
		t.Fatalf("nx on absent key: %v", err)
	}
	if _, err := c.KV.Put(ctx, "xx", []byte("x"), &flo.PutOptions{IfExists: true}); !errors.Is(err, flo.ErrConflict) {
		t.Fatalf("xx on absent key: %v", err)
	}
	if got, _ := c.KV.Get(ctx, "xx", nil); got != nil {
		t.Fatal("failed xx created the key")
	}
	if _, err := c.KV.Put(ctx, "nx", []byte("y"), &flo.PutOptions{IfExists: true, CASVersion: u64(1)}); err != nil {
		t.Fatalf("xx with matching cas: %v", err)
	}
	for _, o := range []*flo.PutOptions{{IfExists: true, IfNotExists: true}, {IfNotExists: true, CASVersion: u64(0)}} {
		if _, err := c.KV.Put(ctx, "nx", []byte("z"), o); !errors.Is(err, flo.ErrBadRequest) {
			t.Fatalf("bad combination %+v: %v", o, err)
		}
	}
}

func TestKV_ScanPaginatesEveryKeyOnce(t *testing.T) {
	_, c, ctx := setupKV(t)
	for i := 0; i < 25; i++ {
		if _, err := c.KV.Put(ctx, fmt.Sprintf("user:%02d", i), []byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.KV.Put(ctx, "other", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var order []string
	o := &flo.ScanOptions{Limit: 10}
	pages := 0
	for {
		res, err := c.KV.Scan(ctx, "user:", o)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range res.Entries {
			seen[e.Key]++
			order = append(order, e.Key)
			if string(e.Value) != strings.TrimLeft(e.Key[5:], "0") && !(e.Key == "user:00" && string(e.Value) == "0") {
				t.Fatalf("value of %s = %q", e.Key, e.Value)
			}
		}
		if !res.HasMore {
			if res.Cursor != nil {
				t.Fatal("cursor on the last page")
			}
			break
		}
		o.Cursor = res.Cursor
	}
	if pages != 3 || len(seen) != 25 {
		t.Fatalf("pages=%d keys=%d", pages, len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times", k, n)
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Fatalf("not ascending: %s before %s", order[i-1], order[i])
		}
	}
	// Exactly limit keys left: no has_more.
	res, err := c.KV.Scan(ctx, "user:2", &flo.ScanOptions{Limit: 5})
	if err != nil || len(res.Entries) != 5 || res.HasMore {
		t.Fatalf("exact page: %d entries, has_more=%v, %v", len(res.Entries), res.HasMore, err)
	}
	// A cursor from another prefix is rejected.
	first, _ := c.KV.Scan(ctx, "user:", &flo.ScanOptions{Limit: 1})
	if _, err := c.KV.Scan(ctx, "other", &flo.ScanOptions{Cursor: first.Cursor}); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("foreign cursor: %v", err)
	}
	if _, err := c.KV.Scan(ctx, "user:", &flo.ScanOptions{Cursor: []byte("junk")}); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("junk cursor: %v", err)
	}
}

func TestKV_ScanKeysOnlyAndLimits(t *testing.T) {
	_, c, ctx := setupKV(t)
	for i := 0; i < 1005; i++ {
		if _, err := c.KV.Put(ctx, fmt.Sprintf("k%04d", i), []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{1000, 1001} {
		res, err := c.KV.Scan(ctx, "", &flo.ScanOptions{KeysOnly: true, Limit: limit})
		if err != nil || len(res.Entries) != 1000 || !res.HasMore {
			t.Fatalf("scan limit %d: %d entries, more %v, %v; want 1000", limit, len(res.Entries), res.HasMore, err)
		}
	}
	res, err := c.KV.Scan(ctx, "", &flo.ScanOptions{KeysOnly: true, Limit: 5000})
	if err != nil || len(res.Entries) != 1000 || !res.HasMore {
		t.Fatalf("limit clamps to 1000: %d, %v, %v", len(res.Entries), res.HasMore, err)
	}
	for _, e := range res.Entries {
		if e.Value != nil {
			t.Fatalf("keys_only returned a value for %s", e.Key)
		}
	}
	def, err := c.KV.Scan(ctx, "", nil)
	if err != nil || len(def.Entries) != 100 || def.Entries[0].Value == nil {
		t.Fatalf("default limit 100 with values: %d, %v", len(def.Entries), err)
	}
	// A limit past what the u32 LIMIT option holds is still "above 1000"
	// (SEMANTICS §2.5): clamped, not wrapped to 0 (the default) or to 5.
	for _, limit := range []int{1 << 32, 1<<32 + 5} {
		res, err := c.KV.Scan(ctx, "", &flo.ScanOptions{KeysOnly: true, Limit: limit})
		if err != nil || len(res.Entries) != 1000 {
			t.Fatalf("scan limit %d: %d entries, %v; want 1000", limit, len(res.Entries), err)
		}
	}
	for i := 0; i < 70; i++ {
		if _, err := c.KV.Put(ctx, "h", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{64, 65, 1 << 32, 1<<32 + 5} {
		vs, err := c.KV.History(ctx, "h", &flo.HistoryOptions{Limit: limit})
		if err != nil || len(vs) != 64 {
			t.Fatalf("history limit %d: %d versions, %v; want 64 (SEMANTICS §2.6)", limit, len(vs), err)
		}
	}
}

// TestKV_ScanOfLargeValuesStopsAt64MiB: with values at the 16 MiB limit a
// scan page holds three (a fourth would take it past command.MaxReplyBytes) and
// the cursor brings the rest. (The history's cut is tested in package kv.)
func TestKV_ScanOfLargeValuesStopsAt64MiB(t *testing.T) {
	_, c, ctx := setupKV(t)
	big := func(b byte) []byte { return bytes.Repeat([]byte{b}, kv.MaxValueBytes) }
	for i := range 4 {
		if _, err := c.KV.Put(ctx, fmt.Sprint("big", i), big(byte('a'+i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	var pages []int
	o := &flo.ScanOptions{}
	for i := 0; ; i++ {
		res, err := c.KV.Scan(ctx, "big", o)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(res.Entries))
		for _, e := range res.Entries {
			if want := big(byte('a' + e.Key[3] - '0')); !bytes.Equal(e.Value, want) {
				t.Fatalf("value of %s", e.Key)
			}
		}
		if !res.HasMore || i > 4 {
			break
		}
		o.Cursor = res.Cursor
	}
	if fmt.Sprint(pages) != "[3 1]" {
		t.Fatalf("pages of %v entries, want [3 1]", pages)
	}
}

func TestKV_HistoryNewestFirst(t *testing.T) {
	_, c, ctx := setupKV(t)
	if _, err := c.KV.History(ctx, "never", nil); !errors.Is(err, flo.ErrNotFound) {
		t.Fatalf("history of never-written key: %v", err)
	}
	for i := 1; i <= 70; i++ {
		if _, err := c.KV.Put(ctx, "h", []byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.KV.Delete(ctx, "h", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KV.Put(ctx, "h", []byte("72"), nil); err != nil {
		t.Fatal(err)
	}
	h, err := c.KV.History(ctx, "h", nil)
	if err != nil || len(h) != 10 {
		t.Fatalf("default limit: %d, %v", len(h), err)
	}
	// The tombstone (version 71) is hidden but leaves a gap.
	if h[0].Version != 72 || string(h[0].Value) != "72" || h[1].Version != 70 || h[2].Version != 69 {
		t.Fatalf("newest first with gap: %d %d %d", h[0].Version, h[1].Version, h[2].Version)
	}
	all, err := c.KV.History(ctx, "h", &flo.HistoryOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// 64 version numbers kept (9..72), one of them the tombstone.
	if len(all) != 63 || all[len(all)-1].Version != 9 {
		t.Fatalf("kept window: %d entries, oldest %d", len(all), all[len(all)-1].Version)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Timestamp.After(all[i-1].Timestamp) || all[i].Version >= all[i-1].Version {
			t.Fatal("history not newest first")
		}
	}
}

func TestKV_NamespacesIsolate(t *testing.T) {
	_, c, ctx := setupKV(t)
	if _, err := c.KV.Put(ctx, "key", []byte("default"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KV.Put(ctx, "key", []byte("other"), &flo.PutOptions{Namespace: "other"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.KV.Get(ctx, "key", nil); string(v) != "default" {
		t.Fatalf("default ns = %q", v)
	}
	if v, _ := c.KV.Get(ctx, "key", &flo.GetOptions{Namespace: "other"}); string(v) != "other" {
		t.Fatalf("other ns = %q", v)
	}
	if h, _ := c.KV.History(ctx, "key", &flo.HistoryOptions{Namespace: "other"}); len(h) != 1 || h[0].Version != 1 {
		t.Fatalf("versions are per namespace: %+v", h)
	}
	if res, _ := c.KV.Scan(ctx, "", &flo.ScanOptions{Namespace: "third"}); len(res.Entries) != 0 {
		t.Fatal("empty namespace scan not empty")
	}
	if _, err := c.KV.Get(ctx, "key", &flo.GetOptions{Namespace: "bad\x00ns"}); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("NUL in namespace: %v", err)
	}
	if _, err := c.KV.Get(ctx, "key", &flo.GetOptions{Namespace: strings.Repeat("n", 256)}); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("256-byte namespace: %v", err)
	}
	if _, err := c.KV.Put(ctx, "key", []byte("x"), &flo.PutOptions{Namespace: strings.Repeat("n", 255)}); err != nil {
		t.Fatalf("255-byte namespace: %v", err)
	}
}

func TestKV_LimitsAtTheEdge(t *testing.T) {
	_, c, ctx := setupKV(t)
	if _, err := c.KV.Put(ctx, "", []byte("x"), nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := c.KV.Get(ctx, "", nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("empty key get: %v", err)
	}
	maxKey := strings.Repeat("k", 65535) // the u16 length field's limit
	if _, err := c.KV.Put(ctx, maxKey, []byte("x"), nil); err != nil {
		t.Fatalf("65535-byte key: %v", err)
	}
	if v, _ := c.KV.Get(ctx, maxKey, nil); string(v) != "x" {
		t.Fatal("65535-byte key round trip")
	}
	// One byte more cannot be said in the envelope's u16: refused before
	// it is sent, not wrapped into a different request.
	if _, err := c.KV.Put(ctx, maxKey+"k", []byte("y"), nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("65536-byte key: %v", err)
	}
	// Wrapped, this key's length would say 3 ("abc"), and its next bytes
	// would read as a 1-byte value "Z": a put of a different key.
	wraps := "abc\x01\x00\x00\x00Z" + strings.Repeat("\xff", 65536+3-8)
	if _, err := c.KV.Put(ctx, wraps, []byte("y"), nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("65539-byte key: %v", err)
	}
	if v, _ := c.KV.Get(ctx, "abc", nil); v != nil {
		t.Fatalf("a wrapped key length wrote %q to key abc", v)
	}
	big := make([]byte, 16<<20)
	if _, err := c.KV.Put(ctx, "big", big, nil); err != nil {
		t.Fatalf("16 MiB value: %v", err)
	}
	if v, _ := c.KV.Get(ctx, "big", nil); len(v) != 16<<20 {
		t.Fatalf("16 MiB value read back as %d bytes", len(v))
	}
	if _, err := c.KV.Put(ctx, "big", make([]byte, 16<<20+1), nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("16 MiB + 1 value: %v", err)
	}
	if _, err := c.KV.Put(ctx, "t", []byte("x"), &flo.PutOptions{TTL: 200 * 365 * 24 * time.Hour}); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("absurd ttl: %v", err)
	}
	const century = 100 * 365 * 24 * time.Hour // the longest TTL
	if _, err := c.KV.Put(ctx, "t", []byte("x"), &flo.PutOptions{TTL: century}); err != nil {
		t.Fatalf("ttl of 100 years: %v", err)
	}
	if _, err := c.KV.Put(ctx, "t", []byte("y"), &flo.PutOptions{TTL: century + time.Second}); !errors.Is(err, flo.ErrBadRequest) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("ttl of 100 years + 1 s: %v", err)
	}
	if v, _ := c.KV.Get(ctx, "t", nil); string(v) != "x" {
		t.Fatalf("a refused put changed the value to %q", v)
	}
}

func TestKV_ConcurrentPipelinedCallsOnOneClient(t *testing.T) {
	_, c, ctx := setupKV(t)
	errs := make(chan error, 50)
	for g := 0; g < 50; g++ {
		go func() {
			for i := 0; i < 40; i++ {
				k := fmt.Sprintf("g%d-%d", g, i)
				if _, err := c.KV.Put(ctx, k, []byte(k), nil); err != nil {
					errs <- err
					return
				}
				v, err := c.KV.Get(ctx, k, nil)
				if err != nil || string(v) != k {
					errs <- fmt.Errorf("read own write %s: %q %v", k, v, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 50; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestKV_ClientRedialsAfterServerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := flotest.Start(t, flotest.Options{DataDir: dir})
	c := srv.Client(t, flo.Options{})
	ctx := context.Background()
	if _, err := c.KV.Put(ctx, "k", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr
	srv.Stop()
	if _, err := c.KV.Get(ctx, "k", nil); err == nil {
		t.Fatal("call on a stopped server succeeded")
	}
	srv2 := flotest.Start(t, flotest.Options{DataDir: dir, Config: func(cfg *config.Config) { cfg.Listen = addr }})
	_ = srv2
	waitUntil(t, 5*time.Second, "redial", func() bool {
		v, err := c.KV.Get(ctx, "k", nil)
		return err == nil && string(v) == "v"
	})
}
