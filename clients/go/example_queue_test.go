package flo_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	flo "github.com/floruntime/flo/clients/go"
)

func ExampleQueue_Dequeue() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := flo.Dial(ctx, addr, flo.Options{})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	c.Queue.Enqueue(ctx, "emails", []byte("newsletter"), nil)
	c.Queue.Enqueue(ctx, "emails", []byte("password reset"), &flo.QueueEnqueueOptions{Priority: 10})

	// Lease up to 10 messages for 30 s; ack each one once it is handled.
	msgs, _ := c.Queue.Dequeue(ctx, "emails", 10, &flo.QueueDequeueOptions{Visibility: 30 * time.Second})
	for _, m := range msgs {
		fmt.Printf("%d %s (delivery %d)\n", m.Seq, m.Payload, m.Deliveries)
		c.Queue.Ack(ctx, "emails", []uint64{m.Seq}, nil)
	}
	// Output:
	// 2 password reset (delivery 1)
	// 1 newsletter (delivery 1)
}

func ExampleQueue_Nack() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := flo.Dial(ctx, addr, flo.Options{})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	seq, _ := c.Queue.Enqueue(ctx, "orders", []byte(`{"id": 7}`), nil)
	c.Queue.Dequeue(ctx, "orders", 1, nil)
	// Give up on the message: park it in the dead-letter queue with a reason.
	c.Queue.Nack(ctx, "orders", []uint64{seq}, &flo.QueueNackOptions{ToDLQ: true, Reason: "unknown customer"})

	dead, _ := c.Queue.DLQList(ctx, "orders", nil)
	fmt.Println(dead[0].Seq, dead[0].Reason)

	// After fixing the cause, put it back.
	c.Queue.DLQRequeue(ctx, "orders", []uint64{seq}, nil)
	stats, _ := c.Queue.Stats(ctx, "orders", nil)
	fmt.Printf("ready=%d dlq=%d\n", stats.Ready, stats.DLQ)
	// Output:
	// 1 unknown customer
	// ready=1 dlq=0
}

func ExampleQueue_Consume() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := flo.Dial(ctx, addr, flo.Options{})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	for _, p := range []string{"a", "b", "c"} {
		c.Queue.Enqueue(ctx, "thumbnails", []byte(p), nil)
	}
	var done atomic.Int32
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		for done.Load() < 3 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel() // stop consuming; running handlers are drained first
	}()
	// Four handlers at once; each message is acked when its handler returns
	// nil and nacked (retried) when it returns an error.
	err = c.Queue.Consume(cctx, "thumbnails", func(ctx context.Context, m *flo.QueueMessage) error {
		if len(m.Payload) == 0 {
			return flo.Permanent(errors.New("empty job")) // straight to the DLQ
		}
		done.Add(1)
		return nil
	}, &flo.QueueConsumeOptions{Concurrency: 4, Poll: 100 * time.Millisecond})
	stats, _ := c.Queue.Stats(ctx, "thumbnails", nil)
	fmt.Println(err, done.Load(), stats.Ready+stats.InFlight)
	// Output: <nil> 3 0
}
