package flo_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// TestStream_Kill9KeepsRecordsGroupOffsetsAndPending appends from several
// connections, sets up a group with acked, pending and dead-lettered records,
// SIGKILLs the server mid-append, restarts it on the same directory and
// checks every acknowledged record, the group's cursor, its pending entries
// (still owned, then released by a leave) and its dead letters.
func TestStream_Kill9KeepsRecordsGroupOffsetsAndPending(t *testing.T) {
	t.Parallel()
	p := flotest.StartProcess(t, "", "--durability", "sync")
	ctx := context.Background()
	c := flotest.Dial(t, p.Addr, flo.Options{})
	payload := func(tag string) []byte { return bytes.Repeat([]byte(tag+"|"), 20) }

	acked := map[uint64][]byte{}
	for i := 0; i < 100; i++ {
		b := payload(fmt.Sprint("pre-", i))
		r, err := c.Stream.Append(ctx, "s", b, &flo.StreamAppendOptions{PartitionKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		acked[r.Offset] = b
	}
	rs, err := c.Stream.GroupRead(ctx, "s", "g", "a", &flo.StreamGroupReadOptions{Count: 30})
	if err != nil || len(rs) != 30 {
		t.Fatalf("group read: %d %v", len(rs), err)
	}
	if err := c.Stream.GroupAck(ctx, "s", "g", streamRange(1, 10), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream.GroupRead(ctx, "s", "dl", "a", &flo.StreamGroupReadOptions{Count: 2, MaxDeliver: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Stream.GroupNack(ctx, "s", "dl", []uint64{1}, nil); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var attempts atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wc := flotest.Dial(t, p.Addr, flo.Options{Timeout: 2 * time.Second})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				b := payload(fmt.Sprintf("w%d-%d", w, i))
				attempts.Add(1)
				r, err := wc.Stream.Append(ctx, "s", b, nil)
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked[r.Offset] = b
				mu.Unlock()
			}
		}()
	}
	waitUntil(t, 20*time.Second, "appends in flight", func() bool { return attempts.Load() > 1500 })
	p.Kill()
	wg.Wait()

	p2 := flotest.StartProcess(t, p.DataDir)
	c2 := flotest.Dial(t, p2.Addr, flo.Options{})
	info, err := c2.Stream.Info(ctx, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	var maxAcked uint64
	for off := range acked {
		maxAcked = max(maxAcked, off)
	}
	if info.FirstOffset != 1 || info.LastOffset < maxAcked || info.Count != info.LastOffset {
		t.Fatalf("info after restart: %+v (max acked %d)", info, maxAcked)
	}
	next := uint64(1)
	for next <= info.LastOffset {
		rs, err := c2.Stream.Read(ctx, "s", &flo.StreamReadOptions{Offset: next, Count: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Offset != next {
				t.Fatalf("gap: got offset %d, want %d", r.Offset, next)
			}
			if want, ok := acked[r.Offset]; ok && !bytes.Equal(r.Payload, want) {
				t.Fatalf("offset %d: payload %q, want %q", r.Offset, r.Payload, want)
			}
			if r.Offset <= 100 && r.PartitionKey != "k" {
				t.Fatalf("offset %d lost its partition key", r.Offset)
			}
			next++
		}
	}
	for off := range acked {
		if off >= next {
			t.Fatalf("acknowledged offset %d lost", off)
		}
	}
	if r, err := c2.Stream.Append(ctx, "s", []byte("after"), nil); err != nil || r.Offset != info.LastOffset+1 {
		t.Fatalf("append after restart: %+v %v", r, err)
	}

	// The cursor survived: a new member gets records after 30, and none of
	// the 20 entries "a" still holds (their 30 s deadline has not passed).
	rs, err = c2.Stream.GroupRead(ctx, "s", "g", "b", &flo.StreamGroupReadOptions{Count: 5})
	if err != nil || !reflect.DeepEqual(streamOffsets(rs), streamRange(31, 35)) {
		t.Fatalf("after restart: %v %v", streamOffsets(rs), err)
	}
	// The pending entries survived with their owner: leaving releases them.
	if err := c2.Stream.GroupLeave(ctx, "s", "g", "a", nil); err != nil {
		t.Fatal(err)
	}
	rs, err = c2.Stream.GroupRead(ctx, "s", "g", "b", &flo.StreamGroupReadOptions{Count: 21})
	if err != nil || !reflect.DeepEqual(streamOffsets(rs), append(streamRange(11, 30), 36)) {
		t.Fatalf("released pending entries: %v %v", streamOffsets(rs), err)
	}
	dead, err := c2.Stream.GroupDLQList(ctx, "s", "dl", nil)
	if err != nil || len(dead) != 1 || dead[0].Offset != 1 || !bytes.Equal(dead[0].Payload, acked[1]) {
		t.Fatalf("dead letters after restart: %+v %v", dead, err)
	}
}
