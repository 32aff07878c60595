package flo_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

func streamSetup(t *testing.T) (*flotest.Server, *flo.Client, context.Context) {
	t.Helper()
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	return srv, srv.Client(t, flo.Options{}), context.Background()
}

func streamFill(t *testing.T, c *flo.Client, stream string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 1; i <= n; i++ {
		if _, err := c.Stream.Append(ctx, stream, []byte(fmt.Sprint("r", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
}

func streamOffsets(rs []flo.StreamRecord) []uint64 {
	out := []uint64{}
	for _, r := range rs {
		out = append(out, r.Offset)
	}
	return out
}

func streamRange(from, to uint64) []uint64 {
	out := []uint64{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func streamRead(t *testing.T, c *flo.Client, stream string, o *flo.StreamReadOptions) []uint64 {
	t.Helper()
	rs, err := c.Stream.Read(context.Background(), stream, o)
	if err != nil {
		t.Fatal(err)
	}
	return streamOffsets(rs)
}

func TestStream_OffsetsDenseAndIncreasing(t *testing.T) {
	srv, _, ctx := streamSetup(t)
	const writers, each = 8, 100
	var mu sync.Mutex
	var all []uint64
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		c := srv.Client(t, flo.Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for i := 0; i < each; i++ {
				r, err := c.Stream.Append(ctx, "events", []byte(fmt.Sprint(w, "-", i)), nil)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Offset <= last {
					t.Errorf("writer %d: offset %d after %d", w, r.Offset, last)
				}
				last = r.Offset
				mu.Lock()
				all = append(all, r.Offset)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if !reflect.DeepEqual(all, streamRange(1, writers*each)) {
		t.Fatalf("offsets are not 1..%d without gaps", writers*each)
	}
	// A read returns them all in order, with the payload each writer sent.
	c := srv.Client(t, flo.Options{})
	var got []uint64
	for next := uint64(1); ; {
		rs, err := c.Stream.Read(ctx, "events", &flo.StreamReadOptions{Offset: next, Count: 300})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		got = append(got, streamOffsets(rs)...)
		next = rs[len(rs)-1].Offset + 1
	}
	if !reflect.DeepEqual(got, all) {
		t.Fatalf("read back %d records", len(got))
	}
}

func TestStream_ReadModes(t *testing.T) {
	_, c, ctx := streamSetup(t)
	base := time.UnixMilli(1_700_000_000_000)
	for i := 0; i < 20; i++ {
		_, err := c.Stream.Append(ctx, "m", []byte(fmt.Sprint(i+1)), &flo.StreamAppendOptions{Timestamp: base.Add(time.Duration(i) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		o    *flo.StreamReadOptions
		want []uint64
	}{
		{"all", nil, streamRange(1, 20)},
		{"count", &flo.StreamReadOptions{Count: 5}, streamRange(1, 5)},
		{"offset inclusive", &flo.StreamReadOptions{Offset: 15, Count: 3}, []uint64{15, 16, 17}},
		{"offset past end", &flo.StreamReadOptions{Offset: 500}, []uint64{}},
		{"tail", &flo.StreamReadOptions{Tail: true, Count: 4}, streamRange(17, 20)},
		{"tail larger than stream", &flo.StreamReadOptions{Tail: true, Count: 50}, streamRange(1, 20)},
		{"timestamp exact", &flo.StreamReadOptions{Since: base.Add(5 * time.Second)}, streamRange(6, 20)},
		{"timestamp between", &flo.StreamReadOptions{Since: base.Add(5500 * time.Millisecond), Count: 2}, []uint64{7, 8}},
		{"timestamp after all", &flo.StreamReadOptions{Since: base.Add(time.Hour)}, []uint64{}},
		{"end offset", &flo.StreamReadOptions{Offset: 3, EndOffset: 6}, streamRange(3, 6)},
	}
	for _, tc := range cases {
		if got := streamRead(t, c, "m", tc.o); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := streamRead(t, c, "unknown", nil); len(got) != 0 {
		t.Errorf("unknown stream: %v", got)
	}
	if _, err := c.Stream.Read(ctx, "m", &flo.StreamReadOptions{Offset: 1, Tail: true}); !errors.Is(err, flo.ErrBadRequest) {
		t.Errorf("two start modes: %v", err)
	}
	// Count is clamped to 1000.
	for i := 0; i < 1100; i++ {
		if _, err := c.Stream.Append(ctx, "big", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := streamRead(t, c, "big", &flo.StreamReadOptions{Count: 5000}); len(got) != 1000 {
		t.Errorf("count clamp: %d", len(got))
	}
	if got := streamRead(t, c, "big", nil); len(got) != 100 {
		t.Errorf("default count: %d", len(got))
	}
}

func TestStream_ClientTimestampAndPartitionKeyRoundTrip(t *testing.T) {
	_, c, ctx := streamSetup(t)
	ts := time.UnixMilli(1_699_999_999_000)
	r1, err := c.Stream.Append(ctx, "pk", []byte("a"), &flo.StreamAppendOptions{PartitionKey: "user-123"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Stream.Append(ctx, "pk", []byte("b"), &flo.StreamAppendOptions{Timestamp: ts})
	if err != nil || !r2.Timestamp.Equal(ts) {
		t.Fatalf("client timestamp: %+v %v", r2, err)
	}
	if d := time.Since(r1.Timestamp); d < 0 || d > time.Minute {
		t.Fatalf("server timestamp %v is not now", r1.Timestamp)
	}
	rs, err := c.Stream.Read(ctx, "pk", nil)
	if err != nil || len(rs) != 2 {
		t.Fatalf("read: %+v %v", rs, err)
	}
	if rs[0].PartitionKey != "user-123" || !rs[0].Timestamp.Equal(r1.Timestamp) || string(rs[0].Payload) != "a" {
		t.Fatalf("record 1: %+v", rs[0])
	}
	if rs[1].PartitionKey != "" || !rs[1].Timestamp.Equal(ts) || string(rs[1].Payload) != "b" {
		t.Fatalf("record 2: %+v", rs[1])
	}
	if _, err := c.Stream.Append(ctx, "pk", nil, &flo.StreamAppendOptions{PartitionKey: strings.Repeat("k", 256)}); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("partition key over 255 bytes: %v", err)
	}
	if _, err := c.Stream.Append(ctx, strings.Repeat("s", 257), nil, nil); !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("stream name over 256 bytes: %v", err)
	}
	if _, err := c.Stream.Append(ctx, strings.Repeat("s", 256), nil, nil); err != nil {
		t.Fatalf("stream name of 256 bytes: %v", err)
	}
}

func TestStream_BlockingReadWokenByAnotherConnection(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	streamFill(t, c, "b", 3)
	writer := srv.Client(t, flo.Options{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		writer.Stream.Append(ctx, "b", []byte("new"), nil)
	}()
	rs, err := c.Stream.Read(ctx, "b", &flo.StreamReadOptions{Offset: 4, Block: 10 * time.Second})
	if err != nil || len(rs) != 1 || rs[0].Offset != 4 || string(rs[0].Payload) != "new" {
		t.Fatalf("woken read: %+v %v", rs, err)
	}
	// Blocking TAIL: only what is appended after the call, even though
	// records already exist.
	go func() {
		time.Sleep(100 * time.Millisecond)
		writer.Stream.Append(ctx, "b", []byte("newer"), nil)
	}()
	rs, err = c.Stream.Read(ctx, "b", &flo.StreamReadOptions{Tail: true, Block: flo.Forever})
	if err != nil || len(rs) != 1 || rs[0].Offset != 5 {
		t.Fatalf("tail read: %+v %v", rs, err)
	}
	// A timestamp read waits for a qualifying record.
	future := time.Now().Add(time.Hour)
	go func() {
		time.Sleep(100 * time.Millisecond)
		writer.Stream.Append(ctx, "b", []byte("old"), &flo.StreamAppendOptions{Timestamp: time.UnixMilli(1)})
		writer.Stream.Append(ctx, "b", []byte("future"), &flo.StreamAppendOptions{Timestamp: future})
	}()
	rs, err = c.Stream.Read(ctx, "b", &flo.StreamReadOptions{Since: future, Block: 10 * time.Second})
	if err != nil || len(rs) != 1 || string(rs[0].Payload) != "future" {
		t.Fatalf("timestamp read: %+v %v", rs, err)
	}
}

func TestStream_BlockingReadTimesOutEmpty(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "b", 2)
	start := time.Now()
	rs, err := c.Stream.Read(ctx, "b", &flo.StreamReadOptions{Offset: 3, Block: 200 * time.Millisecond})
	if err != nil || len(rs) != 0 {
		t.Fatalf("timed-out read: %+v %v", rs, err)
	}
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Fatalf("returned after %v, before the block time", d)
	}
	// Records that exist are returned at once even when blocking.
	rs, err = c.Stream.Read(ctx, "b", &flo.StreamReadOptions{Block: flo.Forever})
	if err != nil || len(rs) != 2 {
		t.Fatalf("ready read: %+v %v", rs, err)
	}
}

func TestStream_InfoAndTrim(t *testing.T) {
	_, c, ctx := streamSetup(t)
	if i, err := c.Stream.Info(ctx, "nothing", nil); err != nil || i != (flo.StreamInfo{}) {
		t.Fatalf("unknown: %+v %v", i, err)
	}
	// Ten records of 10 bytes; the first five are backdated by an hour.
	old := time.Now().Add(-time.Hour)
	for i := 1; i <= 10; i++ {
		o := &flo.StreamAppendOptions{}
		if i <= 5 {
			o.Timestamp = old
		}
		if _, err := c.Stream.Append(ctx, "t", []byte(fmt.Sprintf("record-%03d", i)), o); err != nil {
			t.Fatal(err)
		}
	}
	info := func() flo.StreamInfo {
		i, err := c.Stream.Info(ctx, "t", nil)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	if i := info(); i != (flo.StreamInfo{FirstOffset: 1, LastOffset: 10, Count: 10, Bytes: 100}) {
		t.Fatalf("info: %+v", i)
	}
	trim := func(o *flo.StreamTrimOptions) flo.StreamTrimResult {
		r, err := c.Stream.Trim(ctx, "t", o)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Dry runs of each policy report and change nothing.
	dry := []struct {
		o    flo.StreamTrimOptions
		want flo.StreamTrimResult
	}{
		{flo.StreamTrimOptions{MaxLen: 8}, flo.StreamTrimResult{Deleted: 2, FirstOffset: 3}},
		{flo.StreamTrimOptions{MaxAge: 10 * time.Minute}, flo.StreamTrimResult{Deleted: 5, FirstOffset: 6}},
		{flo.StreamTrimOptions{MaxBytes: 35}, flo.StreamTrimResult{Deleted: 7, FirstOffset: 8}},
		{flo.StreamTrimOptions{All: true}, flo.StreamTrimResult{Deleted: 10}},
	}
	for _, d := range dry {
		o := d.o
		o.DryRun = true
		if r := trim(&o); r != d.want {
			t.Errorf("dry run %+v: %+v, want %+v", d.o, r, d.want)
		}
	}
	if i := info(); i.Count != 10 || i.FirstOffset != 1 {
		t.Fatalf("dry runs changed the stream: %+v", i)
	}
	if r := trim(&flo.StreamTrimOptions{MaxLen: 8}); r != (flo.StreamTrimResult{Deleted: 2, FirstOffset: 3}) {
		t.Fatalf("max len: %+v", r)
	}
	if r := trim(&flo.StreamTrimOptions{MaxAge: 10 * time.Minute}); r != (flo.StreamTrimResult{Deleted: 3, FirstOffset: 6}) {
		t.Fatalf("max age: %+v", r)
	}
	if r := trim(&flo.StreamTrimOptions{MaxBytes: 35}); r != (flo.StreamTrimResult{Deleted: 2, FirstOffset: 8}) {
		t.Fatalf("max bytes: %+v", r)
	}
	if i := info(); i != (flo.StreamInfo{FirstOffset: 8, LastOffset: 10, Count: 3, Bytes: 30}) {
		t.Fatalf("info after trims: %+v", i)
	}
	if got := streamRead(t, c, "t", &flo.StreamReadOptions{Offset: 2}); !reflect.DeepEqual(got, []uint64{8, 9, 10}) {
		t.Fatalf("read from a trimmed offset: %v", got)
	}
	if r := trim(&flo.StreamTrimOptions{All: true}); r.Deleted != 3 {
		t.Fatalf("all: %+v", r)
	}
	if a, err := c.Stream.Append(ctx, "t", []byte("x"), nil); err != nil || a.Offset != 11 {
		t.Fatalf("offsets continue after trimming all: %+v %v", a, err)
	}
}

func TestStream_NamespacesIsolate(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	other := srv.Client(t, flo.Options{Namespace: "other"})
	if c.Namespace() != "default" || other.Namespace() != "other" {
		t.Fatalf("namespaces %q and %q, want default and other", c.Namespace(), other.Namespace())
	}
	streamFill(t, c, "s", 3)
	if r, err := other.Stream.Append(ctx, "s", []byte("x"), nil); err != nil || r.Offset != 1 {
		t.Fatalf("other namespace: %+v %v", r, err)
	}
	if i, _ := c.Stream.Info(ctx, "s", &flo.StreamInfoOptions{Namespace: "other"}); i.Count != 1 {
		t.Fatalf("namespace override: %+v", i)
	}
	rs, err := c.Stream.GroupRead(ctx, "s", "g", "c", &flo.StreamGroupReadOptions{Namespace: "other"})
	if err != nil || len(rs) != 1 || string(rs[0].Payload) != "x" {
		t.Fatalf("group read in other namespace: %+v %v", rs, err)
	}
}

func TestStream_GroupTwoConsumersSplitThousandRecords(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	const n = 1000
	// Append while the consumers run, so they also meet an empty stream.
	go func() {
		for i := 0; i < n; i++ {
			if _, err := c.Stream.Append(ctx, "work", []byte(fmt.Sprint(i)), nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var mu sync.Mutex
	seen := map[uint64]string{}
	var total atomic.Int64
	var wg sync.WaitGroup
	for _, name := range []string{"c1", "c2"} {
		cc := srv.Client(t, flo.Options{})
		if err := cc.Stream.GroupJoin(ctx, "work", "g", name, nil); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for total.Load() < n {
				rs, err := cc.Stream.GroupRead(ctx, "work", "g", name, &flo.StreamGroupReadOptions{Count: 37, Block: 100 * time.Millisecond})
				if err != nil {
					t.Error(err)
					return
				}
				offs := streamOffsets(rs)
				mu.Lock()
				for _, off := range offs {
					if prev, dup := seen[off]; dup {
						t.Errorf("offset %d delivered to %s and %s", off, prev, name)
					}
					seen[off] = name
				}
				mu.Unlock()
				if err := cc.Stream.GroupAck(ctx, "work", "g", offs, nil); err != nil {
					t.Error(err)
					return
				}
				total.Add(int64(len(offs)))
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct offsets delivered, want %d", len(seen), n)
	}
	per := map[string]int{}
	for off := uint64(1); off <= n; off++ {
		who, ok := seen[off]
		if !ok {
			t.Fatalf("offset %d never delivered", off)
		}
		per[who]++
	}
	if per["c1"] == 0 || per["c2"] == 0 {
		t.Fatalf("one consumer got everything: %v", per)
	}
	// Everything was acked: nothing is redelivered.
	if rs, err := c.Stream.GroupRead(ctx, "work", "g", "c3", &flo.StreamGroupReadOptions{Count: 1000}); err != nil || len(rs) != 0 {
		t.Fatalf("after acking all: %d records, %v", len(rs), err)
	}
}

func TestStream_GroupUnackedRedeliveredToAnotherAfterAckTimeout(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	streamFill(t, c, "s", 5)
	// Long enough that the reads and ack below come before it ends, even on
	// a loaded machine.
	const ackTimeout = time.Second
	join := &flo.StreamGroupJoinOptions{AckTimeout: ackTimeout}
	if err := c.Stream.GroupJoin(ctx, "s", "g", "lazy", join); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := c.Stream.GroupRead(ctx, "s", "g", "lazy", &flo.StreamGroupReadOptions{Count: 3})
	if err != nil || !reflect.DeepEqual(streamOffsets(got), []uint64{1, 2, 3}) {
		t.Fatalf("lazy read: %v %v", streamOffsets(got), err)
	}
	// "lazy" never acks. Within the deadline nobody else gets 1..3.
	other := srv.Client(t, flo.Options{})
	rs, err := other.Stream.GroupRead(ctx, "s", "g", "busy", &flo.StreamGroupReadOptions{Count: 10})
	if err != nil || !reflect.DeepEqual(streamOffsets(rs), []uint64{4, 5}) {
		t.Fatalf("busy first read: %v %v", streamOffsets(rs), err)
	}
	if err := other.Stream.GroupAck(ctx, "s", "g", []uint64{4, 5}, nil); err != nil {
		t.Fatal(err)
	}
	// A blocking read parks and is woken by the deadline passing.
	rs, err = other.Stream.GroupRead(ctx, "s", "g", "busy", &flo.StreamGroupReadOptions{Count: 10, Block: 10 * time.Second})
	if err != nil || !reflect.DeepEqual(streamOffsets(rs), []uint64{1, 2, 3}) {
		t.Fatalf("redelivery: %v %v", streamOffsets(rs), err)
	}
	if d := time.Since(start); d < ackTimeout {
		t.Fatalf("redelivered after %v, before the ack timeout", d)
	}
	for _, r := range rs {
		if !r.Redelivered {
			t.Fatalf("record %d not marked redelivered", r.Offset)
		}
	}
	// A late ack from the lazy consumer still counts (any member may ack).
	if err := c.Stream.GroupAck(ctx, "s", "g", []uint64{1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	rs, err = other.Stream.GroupRead(ctx, "s", "g", "busy", &flo.StreamGroupReadOptions{Block: 400 * time.Millisecond})
	if err != nil || len(rs) != 0 {
		t.Fatalf("after ack: %v %v", streamOffsets(rs), err)
	}
}

func TestStream_GroupLeaveReleasesAtOnce(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "s", 4)
	if _, err := c.Stream.GroupRead(ctx, "s", "g", "a", &flo.StreamGroupReadOptions{Count: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Stream.GroupLeave(ctx, "s", "g", "a", nil); err != nil {
		t.Fatal(err)
	}
	rs, err := c.Stream.GroupRead(ctx, "s", "g", "b", &flo.StreamGroupReadOptions{Count: 3})
	if err != nil || !reflect.DeepEqual(streamOffsets(rs), []uint64{1, 2, 3}) {
		t.Fatalf("after leave: %v %v", streamOffsets(rs), err)
	}
}

func TestStream_GroupDeliveryLimitDeadLetterRequeue(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "s", 3)
	// Long enough that offset 3 does not time out before the reads below
	// that expect it in flight, even on a loaded machine.
	join := &flo.StreamGroupJoinOptions{AckTimeout: time.Second, MaxDeliver: 2}
	if err := c.Stream.GroupJoin(ctx, "s", "g", "c", join); err != nil {
		t.Fatal(err)
	}
	read := func(block time.Duration) []uint64 {
		t.Helper()
		rs, err := c.Stream.GroupRead(ctx, "s", "g", "c", &flo.StreamGroupReadOptions{Count: 10, Block: block})
		if err != nil {
			t.Fatal(err)
		}
		return streamOffsets(rs)
	}
	if got := read(0); !reflect.DeepEqual(got, []uint64{1, 2, 3}) {
		t.Fatalf("first delivery: %v", got)
	}
	if err := c.Stream.GroupAck(ctx, "s", "g", []uint64{2}, nil); err != nil {
		t.Fatal(err)
	}
	// Offset 1 is nacked (immediate), offset 3 times out: second deliveries.
	if err := c.Stream.GroupNack(ctx, "s", "g", []uint64{1}, nil); err != nil {
		t.Fatal(err)
	}
	if got := read(0); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("after nack: %v", got)
	}
	if got := read(5 * time.Second); !reflect.DeepEqual(got, []uint64{3}) {
		t.Fatalf("after timeout: %v", got)
	}
	// Neither is acked again: both have used their 2 deliveries and land
	// in the group's dead-letter list instead of being redelivered.
	var dead []flo.StreamDeadRecord
	waitUntil(t, 5*time.Second, "dead letters", func() bool {
		var err error
		dead, err = c.Stream.GroupDLQList(ctx, "s", "g", nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(dead) == 2
	})
	if dead[0].Offset != 1 || dead[1].Offset != 3 || dead[0].Deliveries != 2 || dead[0].Consumer != "c" || string(dead[1].Payload) != "r3" {
		t.Fatalf("dead letters: %+v", dead)
	}
	if got := read(300 * time.Millisecond); len(got) != 0 {
		t.Fatalf("dead letters were redelivered: %v", got)
	}
	// The records stay in the stream.
	if got := streamRead(t, c, "s", nil); !reflect.DeepEqual(got, []uint64{1, 2, 3}) {
		t.Fatalf("stream after dead-lettering: %v", got)
	}
	// Requeue wakes a parked reader and delivers with a fresh count.
	go func() {
		time.Sleep(100 * time.Millisecond)
		c.Stream.GroupDLQRequeue(ctx, "s", "g", []uint64{3, 99}, nil)
	}()
	rs, err := c.Stream.GroupRead(ctx, "s", "g", "d", &flo.StreamGroupReadOptions{Block: 5 * time.Second})
	if err != nil || !reflect.DeepEqual(streamOffsets(rs), []uint64{3}) || !rs[0].Redelivered {
		t.Fatalf("requeued: %+v %v", rs, err)
	}
	if dead, _ := c.Stream.GroupDLQList(ctx, "s", "g", nil); len(dead) != 1 || dead[0].Offset != 1 {
		t.Fatalf("dead letters after requeue: %+v", dead)
	}
}

func TestStream_GroupTouchExtendsDeadline(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "s", 1)
	// An ack timeout of a second, touched every 100 ms for over two of
	// them: a loaded machine may delay a touch by a few hundred ms.
	const ackTimeout = time.Second
	o := &flo.StreamGroupReadOptions{AckTimeout: ackTimeout}
	// held is a time before which the deadline is known to be live: the
	// server set it to at least held+ackTimeout.
	held := time.Now()
	if rs, err := c.Stream.GroupRead(ctx, "s", "g", "a", o); err != nil || len(rs) != 1 {
		t.Fatalf("read: %v %v", rs, err)
	}
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		touched := time.Now()
		if err := c.Stream.GroupTouch(ctx, "s", "g", []uint64{1}, nil); err != nil {
			t.Fatal(err)
		}
		if rs, err := c.Stream.GroupRead(ctx, "s", "g", "b", nil); err != nil || len(rs) != 0 {
			if err == nil && time.Since(held) >= ackTimeout {
				// Only a host so loaded that this touch arrived after the
				// previous one's deadline can legitimately see it return.
				t.Skipf("inconclusive: %v between touches, over the %v ack timeout", time.Since(held), ackTimeout)
			}
			t.Fatalf("touched record redelivered: %v %v", streamOffsets(rs), err)
		}
		held = touched
		time.Sleep(100 * time.Millisecond)
	}
}

func TestStream_ConsumeAcksRetriesAndSplits(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	const n = 200
	streamFill(t, c, "jobs", n)
	var mu sync.Mutex
	done := map[string]int{} // payload -> successful runs
	failedOnce := map[string]bool{}
	var running, peak atomic.Int32
	handler := func(_ context.Context, r flo.StreamRecord) error {
		cur := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		time.Sleep(time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		key := string(r.Payload)
		if r.Offset%10 == 0 && !failedOnce[key] {
			failedOnce[key] = true
			if r.Offset%20 == 0 {
				panic("boom")
			}
			return errors.New("transient")
		}
		done[key]++
		return nil
	}
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var errs atomic.Int32
	for _, name := range []string{"w1", "w2"} {
		cc := srv.Client(t, flo.Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cc.Stream.Consume(cctx, "jobs", "g", name, handler, &flo.StreamConsumeOptions{
				Concurrency: 4, Poll: 200 * time.Millisecond, OnError: func(error) { errs.Add(1) },
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	waitUntil(t, 20*time.Second, "every record handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == n
	})
	cancel()
	wg.Wait()
	for k, runs := range done {
		if runs != 1 {
			t.Errorf("%s succeeded %d times", k, runs)
		}
	}
	if len(failedOnce) != n/10 || errs.Load() < int32(n/10) {
		t.Fatalf("failures: %d records, %d errors reported", len(failedOnce), errs.Load())
	}
	if p := peak.Load(); p < 2 || p > 8 {
		t.Fatalf("peak concurrency %d, want 2..8", p)
	}
	if dead, _ := c.Stream.GroupDLQList(ctx, "jobs", "g", nil); len(dead) != 0 {
		t.Fatalf("dead letters: %d", len(dead))
	}
}

// TestStream_ConsumeKeepsSlowHandlersRecords: a handler that runs for three
// ack timeouts keeps its record (Consume touches it), so the other consumer
// never gets it and it is handled once.
func TestStream_ConsumeKeepsSlowHandlersRecords(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	streamFill(t, c, "jobs", 1)
	var runs atomic.Int32
	finished := make(chan struct{})
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, name := range []string{"w1", "w2"} {
		cc := srv.Client(t, flo.Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = cc.Stream.Consume(cctx, "jobs", "g", name, func(context.Context, flo.StreamRecord) error {
				if runs.Add(1) == 1 {
					time.Sleep(4 * time.Second) // over two ack timeouts
					close(finished)
				}
				return nil
			}, &flo.StreamConsumeOptions{AckTimeout: 1500 * time.Millisecond, Poll: 100 * time.Millisecond, OnError: func(err error) { t.Log(err) }})
		}()
	}
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow handler never finished")
	}
	time.Sleep(1600 * time.Millisecond) // past one more ack timeout
	cancel()
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Fatalf("record handled %d times: its deadline was not renewed", n)
	}
	if recs, err := c.Stream.GroupRead(ctx, "jobs", "g", "late", &flo.StreamGroupReadOptions{Count: 10}); err != nil || len(recs) != 0 {
		t.Fatalf("after the ack the group still delivers %d records (err %v)", len(recs), err)
	}
}

func TestStream_ConsumeCrashedConsumerRecordsGoToAnother(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	streamFill(t, c, "jobs", 3)
	// A consumer that takes records and dies without acking or leaving.
	if _, err := c.Stream.GroupRead(ctx, "jobs", "g", "crashed", &flo.StreamGroupReadOptions{Count: 3, AckTimeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	got := make(chan uint64, 10)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cc := srv.Client(t, flo.Options{})
	go cc.Stream.Consume(cctx, "jobs", "g", "survivor", func(_ context.Context, r flo.StreamRecord) error {
		got <- r.Offset
		return nil
	}, &flo.StreamConsumeOptions{AckTimeout: 200 * time.Millisecond, Poll: time.Second})
	var offs []uint64
	timeout := time.After(10 * time.Second)
	for len(offs) < 3 {
		select {
		case off := <-got:
			offs = append(offs, off)
		case <-timeout:
			t.Fatalf("survivor got only %v", offs)
		}
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	if !reflect.DeepEqual(offs, []uint64{1, 2, 3}) {
		t.Fatalf("survivor got %v", offs)
	}
}

// TestStream_AppendWakesEveryGroup parks two readers of one group and one of
// another on the same stream: one append must reach a reader of each group,
// even though the node hands each signal to one parked write at a time.
func TestStream_AppendWakesEveryGroup(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	type result struct {
		who  string
		offs []uint64
	}
	results := make(chan result, 3)
	for _, r := range []struct{ group, consumer string }{{"a", "a1"}, {"a", "a2"}, {"b", "b1"}} {
		rc := srv.Client(t, flo.Options{})
		go func() {
			rs, err := rc.Stream.GroupRead(ctx, "s", r.group, r.consumer, &flo.StreamGroupReadOptions{Block: 30 * time.Second})
			if err != nil && !errors.Is(err, flo.ErrClosed) { // the reader left parked is closed at cleanup
				t.Error(err)
			}
			results <- result{r.consumer, streamOffsets(rs)}
		}()
		// Let each park in turn (only the order of parking depends on this).
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := c.Stream.Append(ctx, "s", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	got := map[string][]uint64{}
	start := time.Now()
	for n := 0; n < 3 && len(got) < 2; n++ {
		r := <-results // every reader returns within its 30 s block
		if len(r.offs) > 0 {
			got[r.who[:1]] = r.offs
		}
	}
	// A reader the append did not wake would be served only at its block's
	// end, 30 s on: half of that tells the two apart on any machine.
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("both groups served only after %v: %v", d, got)
	}
	if !reflect.DeepEqual(got, map[string][]uint64{"a": {1}, "b": {1}}) {
		t.Fatalf("deliveries: %v", got)
	}
}

// Stream.Consume refuses a nil handler, as Queue.Consume does, before it
// joins or reads: it used to read records and nack each one (the nil call
// panicked), running them down to the dead-letter list.
func TestStream_ConsumeRefusesANilHandler(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "jobs", 3)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.Stream.Consume(cctx, "jobs", "g", "w1", nil, &flo.StreamConsumeOptions{MaxDeliver: 1, Poll: 100 * time.Millisecond})
	if !errors.Is(err, flo.ErrBadRequest) {
		t.Fatalf("Consume with a nil handler = %v, want ErrBadRequest", err)
	}
	rs, err := c.Stream.GroupRead(ctx, "jobs", "g", "w2", &flo.StreamGroupReadOptions{Count: 10})
	if err != nil || len(rs) != 3 {
		t.Fatalf("group read after the refused Consume = %d records, %v; want all 3", len(rs), err)
	}
	for _, r := range rs {
		if r.Redelivered {
			t.Fatalf("record %d was delivered before", r.Offset)
		}
	}
}

// TestStream_ConsumeStopsWhenClientCloses: like Queue.Consume, a consumer
// whose client is closed under it returns ErrClosed instead of retrying
// forever.
func TestStream_ConsumeStopsWhenClientCloses(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	streamFill(t, c, "jobs", 1)
	cl, err := flo.Dial(ctx, srv.Addr, flo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- cl.Stream.Consume(ctx, "jobs", "g", "w1", func(context.Context, flo.StreamRecord) error {
			handled <- struct{}{}
			return nil
		}, &flo.StreamConsumeOptions{Poll: 50 * time.Millisecond})
	}()
	select {
	case <-handled: // the loop is running
	case <-time.After(5 * time.Second):
		t.Fatal("the consumer never ran its handler")
	}
	cl.Close()
	select {
	case err := <-done:
		if !errors.Is(err, flo.ErrClosed) {
			t.Fatalf("Consume returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Consume kept running on a closed client")
	}
}

// TestStream_LimitsAtTheEdge: each stream limit over TCP, the largest
// value allowed and the next one, and a refusal changes nothing.
func TestStream_LimitsAtTheEdge(t *testing.T) {
	_, c, ctx := streamSetup(t)
	bad := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, flo.ErrBadRequest) {
			t.Errorf("%s: err = %v, want BAD_REQUEST", what, err)
		}
	}
	name := strings.Repeat("s", 256)
	if _, err := c.Stream.Append(ctx, name, []byte("x"), nil); err != nil {
		t.Fatalf("256-byte name: %v", err)
	}
	_, err := c.Stream.Append(ctx, name+"s", []byte("x"), nil)
	bad("257-byte name", err)
	_, err = c.Stream.Append(ctx, "", []byte("x"), nil)
	bad("empty name", err)
	// A 16 MiB record plus its envelope fits a default frame.
	if _, err := c.Stream.Append(ctx, "big", make([]byte, 16<<20), &flo.StreamAppendOptions{PartitionKey: strings.Repeat("k", 255)}); err != nil {
		t.Fatalf("16 MiB payload with a 255-byte partition key: %v", err)
	}
	_, err = c.Stream.Append(ctx, "big", make([]byte, 16<<20+1), nil)
	bad("16 MiB + 1 payload", err)
	_, err = c.Stream.Append(ctx, "big", nil, &flo.StreamAppendOptions{PartitionKey: strings.Repeat("k", 256)})
	bad("256-byte partition key", err)
	if info, err := c.Stream.Info(ctx, "big", nil); err != nil || info.Count != 1 || info.Bytes != 16<<20+255 { // Bytes counts the key too
		t.Fatalf("after the refused appends: %+v, %v", info, err)
	}
	// Group settings: ack timeout up to 12 h, max deliver up to 255.
	if err := c.Stream.GroupJoin(ctx, "s", "g", "w", &flo.StreamGroupJoinOptions{AckTimeout: 12 * time.Hour, MaxDeliver: 255}); err != nil {
		t.Fatalf("settings at the limits: %v", err)
	}
	bad("ack timeout 12 h + 1 ms", c.Stream.GroupJoin(ctx, "s", "g", "w", &flo.StreamGroupJoinOptions{AckTimeout: 12*time.Hour + time.Millisecond}))
	bad("max deliver 256", c.Stream.GroupJoin(ctx, "s", "g", "w", &flo.StreamGroupJoinOptions{MaxDeliver: 256}))
	group := strings.Repeat("g", 256)
	if err := c.Stream.GroupJoin(ctx, "s", group, strings.Repeat("c", 256), nil); err != nil {
		t.Fatalf("256-byte group and consumer: %v", err)
	}
	bad("257-byte group", c.Stream.GroupJoin(ctx, "s", group+"g", "c", nil))
	bad("257-byte consumer", c.Stream.GroupJoin(ctx, "s", "g", strings.Repeat("c", 257), nil))
}

// A group's ack, nack, touch and DLQ requeue take up to 10,000 offsets per
// call, as the queue's seq lists do; a longer list changes nothing.
func TestStream_GroupOffsetListLimit(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "s", 1)
	recs, err := c.Stream.GroupRead(ctx, "s", "g", "w", nil)
	if err != nil || len(recs) != 1 {
		t.Fatalf("read: %d records, %v", len(recs), err)
	}
	offsets := make([]uint64, 10_000) // the record's offset and 9,999 unknown ones
	for i := range offsets {
		offsets[i] = recs[0].Offset + uint64(i)
	}
	over := append(slices.Clone(offsets), recs[0].Offset+10_000)
	for name, call := range map[string]func([]uint64) error{
		"ack":         func(o []uint64) error { return c.Stream.GroupAck(ctx, "s", "g", o, nil) },
		"nack":        func(o []uint64) error { return c.Stream.GroupNack(ctx, "s", "g", o, nil) },
		"touch":       func(o []uint64) error { return c.Stream.GroupTouch(ctx, "s", "g", o, nil) },
		"DLQ requeue": func(o []uint64) error { return c.Stream.GroupDLQRequeue(ctx, "s", "g", o, nil) },
	} {
		if err := call(over); !errors.Is(err, flo.ErrBadRequest) {
			t.Errorf("%s of 10,001 offsets: err = %v, want BAD_REQUEST", name, err)
		}
	}
	// The refused calls changed nothing: the record is still pending with
	// w (not released by the nack), and not acked (a nack releases it).
	if got, err := c.Stream.GroupRead(ctx, "s", "g", "w2", nil); err != nil || len(got) != 0 {
		t.Fatalf("after the refused calls: %d records for another consumer, %v", len(got), err)
	}
	if err := c.Stream.GroupNack(ctx, "s", "g", offsets[:1], nil); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Stream.GroupRead(ctx, "s", "g", "w2", nil); err != nil || len(got) != 1 {
		t.Fatalf("after the refused ack: %d records redelivered, want 1 (%v)", len(got), err)
	}
	if err := c.Stream.GroupTouch(ctx, "s", "g", offsets, nil); err != nil {
		t.Fatalf("touch of 10,000 offsets: %v", err)
	}
	if err := c.Stream.GroupAck(ctx, "s", "g", offsets, nil); err != nil {
		t.Fatalf("ack of 10,000 offsets: %v", err)
	}
	// Acked: a nack no longer brings it back.
	if err := c.Stream.GroupNack(ctx, "s", "g", offsets[:1], nil); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Stream.GroupRead(ctx, "s", "g", "w3", nil); err != nil || len(got) != 0 {
		t.Fatalf("after the ack of 10,000 offsets: %d records redelivered, %v", len(got), err)
	}
}

// TestStream_BlockingReadWaitsForThatOffset: an OFFSET read past the end
// waits until that offset is written (SEMANTICS §4.3), not for the next
// append; a read of a stream that does not exist yet is woken by the append
// that creates it.
func TestStream_BlockingReadWaitsForThatOffset(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	writer := srv.Client(t, flo.Options{})
	type res struct {
		rs  []flo.StreamRecord
		err error
	}
	got := make(chan res, 1)
	go func() {
		rs, err := c.Stream.Read(ctx, "new", &flo.StreamReadOptions{Block: 10 * time.Second})
		got <- res{rs, err}
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := writer.Stream.Append(ctx, "new", []byte("first"), nil); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil || len(r.rs) != 1 || string(r.rs[0].Payload) != "first" {
		t.Fatalf("read of a new stream: %+v %v", r.rs, r.err)
	}
	go func() {
		rs, err := c.Stream.Read(ctx, "new", &flo.StreamReadOptions{Offset: 4, Block: 10 * time.Second})
		got <- res{rs, err}
	}()
	time.Sleep(50 * time.Millisecond)
	for i := 2; i <= 3; i++ {
		if _, err := writer.Stream.Append(ctx, "new", []byte(fmt.Sprint("r", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-got:
		t.Fatalf("read returned before offset 4 was written: %v %v", streamOffsets(r.rs), r.err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := writer.Stream.Append(ctx, "new", []byte("r4"), nil); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil || !reflect.DeepEqual(streamOffsets(r.rs), []uint64{4}) {
		t.Fatalf("offset read: %v %v", streamOffsets(r.rs), r.err)
	}
}

// TestStream_InfoAndGroupsOfATrimmedStream: info of a stream trimmed to
// nothing keeps the last offset; a new group starts at the first retained
// record (D10); an old group's cursor skips what was trimmed.
func TestStream_InfoAndGroupsOfATrimmedStream(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "t", 5)
	if rs, err := c.Stream.GroupRead(ctx, "t", "old", "c", &flo.StreamGroupReadOptions{Count: 1}); err != nil || len(rs) != 1 {
		t.Fatalf("old group: %v %v", streamOffsets(rs), err)
	}
	if _, err := c.Stream.Trim(ctx, "t", &flo.StreamTrimOptions{MaxLen: 2}); err != nil {
		t.Fatal(err)
	}
	if i, err := c.Stream.Info(ctx, "t", nil); err != nil || i != (flo.StreamInfo{FirstOffset: 4, LastOffset: 5, Count: 2, Bytes: 4}) {
		t.Fatalf("info after trim: %+v %v", i, err)
	}
	if rs, err := c.Stream.GroupRead(ctx, "t", "new", "c", nil); err != nil || !reflect.DeepEqual(streamOffsets(rs), []uint64{4, 5}) {
		t.Fatalf("new group after trim: %v %v", streamOffsets(rs), err)
	}
	if rs, err := c.Stream.GroupRead(ctx, "t", "old", "c", nil); err != nil || !reflect.DeepEqual(streamOffsets(rs), []uint64{4, 5}) {
		t.Fatalf("old group after trim: %v %v", streamOffsets(rs), err)
	}
	if r, err := c.Stream.Trim(ctx, "t", &flo.StreamTrimOptions{All: true}); err != nil || r != (flo.StreamTrimResult{Deleted: 2}) {
		t.Fatalf("trim all: %+v %v", r, err)
	}
	if i, err := c.Stream.Info(ctx, "t", nil); err != nil || i != (flo.StreamInfo{LastOffset: 5}) {
		t.Fatalf("info of an emptied stream: %+v %v", i, err)
	}
	if got := streamRead(t, c, "t", nil); len(got) != 0 {
		t.Fatalf("read of an emptied stream: %v", got)
	}
	if got := streamRead(t, c, "t", &flo.StreamReadOptions{Tail: true}); len(got) != 0 {
		t.Fatalf("tail of an emptied stream: %v", got)
	}
	if r, err := c.Stream.Trim(ctx, "t", &flo.StreamTrimOptions{MaxLen: 1}); err != nil || r != (flo.StreamTrimResult{}) {
		t.Fatalf("trim of an emptied stream: %+v %v", r, err)
	}
	streamFill(t, c, "t", 1)
	if i, err := c.Stream.Info(ctx, "t", nil); err != nil || i != (flo.StreamInfo{FirstOffset: 6, LastOffset: 6, Count: 1, Bytes: 2}) {
		t.Fatalf("info after appending to an emptied stream: %+v %v", i, err)
	}
	if rs, err := c.Stream.GroupRead(ctx, "t", "newest", "c", nil); err != nil || !reflect.DeepEqual(streamOffsets(rs), []uint64{6}) {
		t.Fatalf("group created after trimming all: %v %v", streamOffsets(rs), err)
	}
}

// TestStream_GroupExpiredPendingComeBeforeNewRecords: within its deadline
// a record goes to nobody, not even its own consumer again; once the
// deadline passes, the next read by any member gets it first (oldest
// offset first, marked redelivered), then new records (SEMANTICS §4.4).
func TestStream_GroupExpiredPendingComeBeforeNewRecords(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "s", 2)
	const ackTimeout = time.Second
	read := func(consumer string, count int) []flo.StreamRecord {
		t.Helper()
		rs, err := c.Stream.GroupRead(ctx, "s", "g", consumer, &flo.StreamGroupReadOptions{Count: count, AckTimeout: ackTimeout})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	if got := streamOffsets(read("c1", 10)); !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Fatalf("first read: %v", got)
	}
	delivered := time.Now() // the server's deadline is at most this + ackTimeout
	streamFill(t, c, "s", 4)
	if got := streamOffsets(read("c1", 2)); !reflect.DeepEqual(got, []uint64{3, 4}) {
		t.Fatalf("own unexpired records re-sent: %v", got)
	}
	if err := c.Stream.GroupAck(ctx, "s", "g", []uint64{3, 4}, nil); err != nil {
		t.Fatal(err)
	}
	if time.Since(delivered) >= ackTimeout {
		t.Skip("inconclusive: the host took over the ack timeout between reads")
	}
	time.Sleep(time.Until(delivered.Add(ackTimeout + 50*time.Millisecond)))
	rs := read("c2", 3)
	if got := streamOffsets(rs); !reflect.DeepEqual(got, []uint64{1, 2, 5}) {
		t.Fatalf("after the deadline: %v, want expired 1, 2 then new 5", got)
	}
	if !rs[0].Redelivered || !rs[1].Redelivered || rs[2].Redelivered {
		t.Fatalf("redelivered flags: %+v", rs)
	}
	if got := streamOffsets(read("c2", 10)); !reflect.DeepEqual(got, []uint64{6}) {
		t.Fatalf("rest: %v", got)
	}
}

// TestStream_GroupDefaultDeliveryLimitIsTen: without settings a group
// delivers a record at most 10 times (D10); the next release moves it to
// the group's dead-letter list with its delivery count.
func TestStream_GroupDefaultDeliveryLimitIsTen(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "s", 1)
	for i := 1; i <= 10; i++ {
		consumer := fmt.Sprint("c", i)
		rs, err := c.Stream.GroupRead(ctx, "s", "g", consumer, nil)
		if err != nil || len(rs) != 1 || rs[0].Offset != 1 || rs[0].Redelivered != (i > 1) {
			t.Fatalf("delivery %d: %+v %v", i, rs, err)
		}
		if err := c.Stream.GroupNack(ctx, "s", "g", []uint64{1}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if rs, err := c.Stream.GroupRead(ctx, "s", "g", "c11", nil); err != nil || len(rs) != 0 {
		t.Fatalf("11th delivery: %v %v", streamOffsets(rs), err)
	}
	dead, err := c.Stream.GroupDLQList(ctx, "s", "g", nil)
	if err != nil || len(dead) != 1 || dead[0].Offset != 1 || dead[0].Deliveries != 10 || dead[0].Consumer != "c10" {
		t.Fatalf("dead letters: %+v %v", dead, err)
	}
	// Only this group stopped delivering it: it stays in the stream and
	// another group gets it.
	if got := streamRead(t, c, "s", nil); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("stream: %v", got)
	}
	if rs, err := c.Stream.GroupRead(ctx, "s", "other", "c", nil); err != nil || len(rs) != 1 {
		t.Fatalf("other group: %v %v", streamOffsets(rs), err)
	}
}

// TestStream_GroupsAreIndependent: a group is (stream, group), so the same
// name on another stream is another group; groups do not share progress or
// acks; a plain read moves no group.
func TestStream_GroupsAreIndependent(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "a", 3)
	streamFill(t, c, "b", 2)
	if got := streamRead(t, c, "a", nil); len(got) != 3 {
		t.Fatalf("plain read: %v", got)
	}
	groupRead := func(stream, group string) []uint64 {
		t.Helper()
		rs, err := c.Stream.GroupRead(ctx, stream, group, "c", &flo.StreamGroupReadOptions{Count: 100})
		if err != nil {
			t.Fatal(err)
		}
		return streamOffsets(rs)
	}
	if got := groupRead("a", "g"); !reflect.DeepEqual(got, []uint64{1, 2, 3}) {
		t.Fatalf("a/g after a plain read: %v", got)
	}
	if got := groupRead("b", "g"); !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Fatalf("b/g: %v", got)
	}
	if got := groupRead("a", "h"); !reflect.DeepEqual(got, []uint64{1, 2, 3}) {
		t.Fatalf("a/h: %v", got)
	}
	// An ack on a/g leaves b/g's and a/h's entries pending.
	if err := c.Stream.GroupAck(ctx, "a", "g", []uint64{1, 2}, nil); err != nil {
		t.Fatal(err)
	}
	for _, sg := range [][2]string{{"b", "g"}, {"a", "h"}} {
		if err := c.Stream.GroupNack(ctx, sg[0], sg[1], []uint64{1}, nil); err != nil {
			t.Fatal(err)
		}
		if got := groupRead(sg[0], sg[1]); !reflect.DeepEqual(got, []uint64{1}) {
			t.Fatalf("%s/%s after a/g's ack: %v", sg[0], sg[1], got)
		}
	}
}

// TestStream_GroupReadWokenByLeaveAndCreatedByRead: a blocking group read
// that creates its stream and group is woken by the first append; one
// parked behind a consumer's records is woken when that consumer leaves.
func TestStream_GroupReadWokenByLeaveAndCreatedByRead(t *testing.T) {
	srv, c, ctx := streamSetup(t)
	reader := srv.Client(t, flo.Options{})
	type res struct {
		offs []uint64
		err  error
	}
	got := make(chan res, 1)
	park := func() {
		go func() {
			rs, err := reader.Stream.GroupRead(ctx, "s", "g", "r", &flo.StreamGroupReadOptions{Count: 10, Block: 10 * time.Second})
			got <- res{streamOffsets(rs), err}
		}()
		time.Sleep(50 * time.Millisecond)
	}
	park()
	streamFill(t, c, "s", 1)
	if r := <-got; r.err != nil || !reflect.DeepEqual(r.offs, []uint64{1}) {
		t.Fatalf("woken by the first append: %v %v", r.offs, r.err)
	}
	if err := c.Stream.GroupAck(ctx, "s", "g", []uint64{1}, nil); err != nil {
		t.Fatal(err)
	}
	streamFill(t, c, "s", 3) // offsets 2, 3, 4
	if rs, err := c.Stream.GroupRead(ctx, "s", "g", "holder", nil); err != nil || !reflect.DeepEqual(streamOffsets(rs), []uint64{2, 3, 4}) {
		t.Fatalf("holder: %v %v", streamOffsets(rs), err)
	}
	park()
	select {
	case r := <-got:
		t.Fatalf("reader got held records: %v %v", r.offs, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := c.Stream.GroupLeave(ctx, "s", "g", "holder", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || !reflect.DeepEqual(r.offs, []uint64{2, 3, 4}) {
			t.Fatalf("after leave: %v %v", r.offs, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("leave did not wake the parked reader")
	}
}

// TestStream_UnknownIsEmptyAndBadInputIsBadRequest: nothing about a stream
// or group that does not exist is an error (SEMANTICS §1.1, §8.1); empty
// names are BAD_REQUEST, never NOT_FOUND.
func TestStream_UnknownIsEmptyAndBadInputIsBadRequest(t *testing.T) {
	_, c, ctx := streamSetup(t)
	if got := streamRead(t, c, "nope", &flo.StreamReadOptions{Tail: true}); len(got) != 0 {
		t.Fatalf("tail of unknown: %v", got)
	}
	if r, err := c.Stream.Trim(ctx, "nope", &flo.StreamTrimOptions{MaxLen: 1}); err != nil || r != (flo.StreamTrimResult{}) {
		t.Fatalf("trim of unknown: %+v %v", r, err)
	}
	for name, err := range map[string]error{
		"ack":     c.Stream.GroupAck(ctx, "nope", "g", []uint64{1}, nil),
		"nack":    c.Stream.GroupNack(ctx, "nope", "g", []uint64{1}, nil),
		"touch":   c.Stream.GroupTouch(ctx, "nope", "g", []uint64{1}, nil),
		"requeue": c.Stream.GroupDLQRequeue(ctx, "nope", "g", []uint64{1}, nil),
		"leave":   c.Stream.GroupLeave(ctx, "nope", "g", "c", nil),
	} {
		if err != nil {
			t.Errorf("%s on an unknown group: %v", name, err)
		}
	}
	if dead, err := c.Stream.GroupDLQList(ctx, "nope", "g", nil); err != nil || len(dead) != 0 {
		t.Fatalf("dead letters of unknown: %+v %v", dead, err)
	}
	if err := c.Stream.GroupJoin(ctx, "nope", "g", "c", nil); err != nil {
		t.Fatalf("join of unknown: %v", err)
	}
	if rs, err := c.Stream.GroupRead(ctx, "nope", "g2", "c", nil); err != nil || len(rs) != 0 {
		t.Fatalf("group read of unknown: %v %v", rs, err)
	}
	bad := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, flo.ErrBadRequest) {
			t.Errorf("%s: err = %v, want BAD_REQUEST", what, err)
		}
	}
	_, err := c.Stream.Read(ctx, "", nil)
	bad("read of an empty name", err)
	_, err = c.Stream.Info(ctx, "", nil)
	bad("info of an empty name", err)
	_, err = c.Stream.Trim(ctx, "", nil)
	bad("trim of an empty name", err)
	bad("join with an empty group", c.Stream.GroupJoin(ctx, "s", "", "c", nil))
	bad("join with an empty consumer", c.Stream.GroupJoin(ctx, "s", "g", "", nil))
	_, err = c.Stream.GroupRead(ctx, "s", "g", "", nil)
	bad("group read with an empty consumer", err)
	_, err = c.Stream.GroupRead(ctx, "", "g", "c", nil)
	bad("group read of an empty stream name", err)
	bad("ack with an empty group", c.Stream.GroupAck(ctx, "s", "", []uint64{1}, nil))
	bad("leave with an empty consumer", c.Stream.GroupLeave(ctx, "s", "g", "", nil))
	_, err = c.Stream.GroupDLQList(ctx, "s", "", nil)
	bad("dead letters of an empty group", err)
}

// TestStream_GroupReadCountDefaultAndClamp: a group read hands out 10
// records by default and at most 1000 (SEMANTICS §4.4, §8.2).
func TestStream_GroupReadCountDefaultAndClamp(t *testing.T) {
	_, c, ctx := streamSetup(t)
	streamFill(t, c, "s", 1100)
	if rs, err := c.Stream.GroupRead(ctx, "s", "g", "c", nil); err != nil || !reflect.DeepEqual(streamOffsets(rs), streamRange(1, 10)) {
		t.Fatalf("default count: %d records, %v", len(rs), err)
	}
	if rs, err := c.Stream.GroupRead(ctx, "s", "g", "c", &flo.StreamGroupReadOptions{Count: 5000}); err != nil || !reflect.DeepEqual(streamOffsets(rs), streamRange(11, 1010)) {
		t.Fatalf("count 5000: %d records, %v", len(rs), err)
	}
}

// TestStream_ClientTimestampLeavesServerClockAlone: a client timestamp is
// stored as given and moves neither the offsets nor the timestamps the
// server assigns to later records (SEMANTICS §4.2).
func TestStream_ClientTimestampLeavesServerClockAlone(t *testing.T) {
	_, c, ctx := streamSetup(t)
	future := time.Now().Add(24 * time.Hour).Truncate(time.Millisecond)
	past := time.UnixMilli(1)
	a, err := c.Stream.Append(ctx, "s", []byte("future"), &flo.StreamAppendOptions{Timestamp: future})
	if err != nil || !a.Timestamp.Equal(future) || a.Offset != 1 {
		t.Fatalf("future: %+v %v", a, err)
	}
	b, err := c.Stream.Append(ctx, "s", []byte("now"), nil)
	if err != nil || b.Offset != 2 || time.Since(b.Timestamp) > time.Minute || b.Timestamp.After(time.Now().Add(time.Second)) {
		t.Fatalf("server timestamp after a future client one: %+v %v", b, err)
	}
	p, err := c.Stream.Append(ctx, "s", []byte("past"), &flo.StreamAppendOptions{Timestamp: past})
	if err != nil || p.Offset != 3 || !p.Timestamp.Equal(past) {
		t.Fatalf("past: %+v %v", p, err)
	}
	rs, err := c.Stream.Read(ctx, "s", nil)
	if err != nil || !reflect.DeepEqual(streamOffsets(rs), []uint64{1, 2, 3}) || !rs[0].Timestamp.Equal(future) || !rs[1].Timestamp.Equal(b.Timestamp) || !rs[2].Timestamp.Equal(past) {
		t.Fatalf("read: %+v %v", rs, err)
	}
}
