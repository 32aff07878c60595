package flo_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	flo "github.com/floruntime/flo/clients/go"
)

func ExampleStream_Append() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := flo.Dial(ctx, addr, flo.Options{})
	defer c.Close()

	r1, _ := c.Stream.Append(ctx, "events", []byte(`{"event":"click"}`), nil)
	r2, _ := c.Stream.Append(ctx, "events", []byte(`{"event":"view"}`), &flo.StreamAppendOptions{
		PartitionKey: "user-123",
		Timestamp:    time.UnixMilli(1699999999000),
	})
	fmt.Println(r1.Offset, r2.Offset, r2.Timestamp.UnixMilli())

	records, _ := c.Stream.Read(ctx, "events", nil) // from the beginning
	for _, r := range records {
		fmt.Printf("%d %q %s\n", r.Offset, r.PartitionKey, r.Payload)
	}
	// Output:
	// 1 2 1699999999000
	// 1 "" {"event":"click"}
	// 2 "user-123" {"event":"view"}
}

func ExampleStream_Read() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := flo.Dial(ctx, addr, flo.Options{})
	defer c.Close()
	base := time.UnixMilli(1_700_000_000_000)
	for i := 1; i <= 10; i++ {
		c.Stream.Append(ctx, "metrics", []byte(fmt.Sprint("m", i)), &flo.StreamAppendOptions{Timestamp: base.Add(time.Duration(i) * time.Minute)})
	}
	show := func(label string, o *flo.StreamReadOptions) {
		rs, _ := c.Stream.Read(ctx, "metrics", o)
		fmt.Print(label)
		for _, r := range rs {
			fmt.Print(" ", r.Offset)
		}
		fmt.Println()
	}
	show("offset 8:", &flo.StreamReadOptions{Offset: 8})
	show("tail 3:", &flo.StreamReadOptions{Tail: true, Count: 3})
	show("since +4m:", &flo.StreamReadOptions{Since: base.Add(4 * time.Minute), Count: 2})

	// Long polling: wait for the next record after the last one seen.
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.Stream.Append(ctx, "metrics", []byte("m11"), nil)
	}()
	rs, _ := c.Stream.Read(ctx, "metrics", &flo.StreamReadOptions{Offset: 11, Block: 5 * time.Second})
	fmt.Printf("waited for: %d %s\n", rs[0].Offset, rs[0].Payload)
	// Output:
	// offset 8: 8 9 10
	// tail 3: 8 9 10
	// since +4m: 4 5
	// waited for: 11 m11
}

func ExampleStream_GroupRead() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := flo.Dial(ctx, addr, flo.Options{})
	defer c.Close()
	for i := 1; i <= 5; i++ {
		c.Stream.Append(ctx, "orders", []byte(fmt.Sprint("order-", i)), nil)
	}

	// Each record goes to one member of the group.
	c.Stream.GroupJoin(ctx, "orders", "billing", "worker-1", &flo.StreamGroupJoinOptions{AckTimeout: time.Second})
	a, _ := c.Stream.GroupRead(ctx, "orders", "billing", "worker-1", &flo.StreamGroupReadOptions{Count: 3})
	b, _ := c.Stream.GroupRead(ctx, "orders", "billing", "worker-2", nil)
	fmt.Println("worker-1:", streamOffsets(a), "worker-2:", streamOffsets(b))

	// worker-1 acknowledges only its first record; the others come back to
	// whoever reads next once the ack timeout passes.
	c.Stream.GroupAck(ctx, "orders", "billing", []uint64{a[0].Offset}, nil)
	c.Stream.GroupAck(ctx, "orders", "billing", streamOffsets(b), nil)
	again, _ := c.Stream.GroupRead(ctx, "orders", "billing", "worker-2", &flo.StreamGroupReadOptions{Block: 5 * time.Second})
	fmt.Println("redelivered:", streamOffsets(again), again[0].Redelivered)
	// Output:
	// worker-1: [1 2 3] worker-2: [4 5]
	// redelivered: [2 3] true
}

func ExampleStream_Consume() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, _ := flo.Dial(ctx, addr, flo.Options{})
	defer c.Close()
	for i := 1; i <= 3; i++ {
		c.Stream.Append(ctx, "emails", []byte(fmt.Sprint("to-", i)), nil)
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(3)
	sent := map[string]bool{}
	cctx, cancel := context.WithCancel(ctx)
	go c.Stream.Consume(cctx, "emails", "senders", "host-a", func(ctx context.Context, r flo.StreamRecord) error {
		mu.Lock()
		defer mu.Unlock()
		if !sent[string(r.Payload)] {
			sent[string(r.Payload)] = true
			wg.Done()
		}
		return nil // acked; an error or panic would hand the record back
	}, &flo.StreamConsumeOptions{Concurrency: 2})
	wg.Wait()
	cancel()
	fmt.Println(len(sent), sent["to-1"], sent["to-3"])
	// Output:
	// 3 true true
}
