package server_test

import (
	"context"
	"runtime"
	"testing"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
	"github.com/floruntime/flo/wire"
)

func heapAlloc() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// Not parallel: it measures the process heap.
func TestServer_ALargeReplyIsNotKeptByAnIdleConnection(t *testing.T) {
	srv := flotest.Start(t, flotest.Options{})
	c := srv.Client(t, flo.Options{})
	ctx := context.Background()
	const size = 4 << 20
	if _, err := c.KV.Put(ctx, "big", make([]byte, size), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KV.Get(ctx, "big", nil); err != nil { // warm storage caches
		t.Fatal(err)
	}
	before := heapAlloc()
	const conns = 16
	for i := 0; i < conns; i++ {
		rc := dialRaw(t, srv.Addr)
		rc.request(1, wire.OpKVGet, wire.Request{Key: []byte("big")})
		if f := rc.reply(); len(f.Payload) != size {
			t.Fatalf("reply of %d bytes", len(f.Payload))
		}
		// The connection stays open and idle.
	}
	if grew := heapAlloc() - before; grew > conns*size/4 {
		t.Fatalf("%d idle connections hold %d MiB after one %d MiB reply each", conns, grew>>20, size>>20)
	}
}
