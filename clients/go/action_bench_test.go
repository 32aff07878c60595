package flo_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// BenchmarkAction_EndToEnd measures completed runs per second: 50
// connections invoke, 8 TaskWorkers (each on its own connection) run a
// trivial handler and complete; the clock stops when every run of the
// iteration has completed.
func BenchmarkAction_EndToEnd(b *testing.B) {
	for _, durability := range []string{"sync", "interval"} {
		b.Run(fmt.Sprintf("durability=%s/invokers=50/workers=8", durability), func(b *testing.B) {
			benchEndToEnd(b, durability, 50, 8)
		})
	}
}

func benchEndToEnd(b *testing.B, durability string, invokers, workers int) {
	srv := flotest.Start(b, flotest.Options{Durability: durability})
	ctx := context.Background()
	admin := srv.Client(b, flo.Options{})
	if err := admin.Action.Register(ctx, "bench", nil); err != nil {
		b.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var ws []*flo.TaskWorker
	for i := range workers {
		c := srv.Client(b, flo.Options{})
		w := flo.NewTaskWorker(c, fmt.Sprintf("w%d", i), &flo.TaskWorkerOptions{Concurrency: 64, Pollers: 8, Block: time.Second})
		w.Handle("bench", func(ctx context.Context, t *flo.Task) ([]byte, error) {
			return t.Input, nil
		}, nil)
		ws = append(ws, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.Run(wctx)
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	clients := make([]*flo.Client, invokers)
	for i := range clients {
		clients[i] = srv.Client(b, flo.Options{})
	}
	completed := func() (n int64) {
		for _, w := range ws {
			n += w.Completed()
		}
		return n
	}
	base := completed()
	input := []byte("payload-0123456789")
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var iwg sync.WaitGroup
	for _, c := range clients {
		iwg.Add(1)
		go func() {
			defer iwg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := c.Action.Invoke(ctx, "bench", input, nil); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	iwg.Wait()
	for completed()-base < int64(b.N) {
		if time.Since(start) > time.Minute {
			b.Fatalf("only %d of %d runs completed", completed()-base, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "runs/s")
}

// BenchmarkAction_InvokeToStart measures the time from calling Invoke to
// the handler starting, with an idle worker parked in await.
func BenchmarkAction_InvokeToStart(b *testing.B) {
	srv := flotest.Start(b, flotest.Options{})
	ctx := context.Background()
	c := srv.Client(b, flo.Options{})
	if err := c.Action.Register(ctx, "lat", nil); err != nil {
		b.Fatal(err)
	}
	started := make(chan time.Time, 1)
	w := flo.NewTaskWorker(srv.Client(b, flo.Options{}), "w", &flo.TaskWorkerOptions{Concurrency: 1, Block: 10 * time.Second})
	w.Handle("lat", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		started <- time.Now()
		return nil, nil
	}, nil)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = w.Run(wctx); close(done) }()
	defer func() { cancel(); <-done }()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		time.Sleep(2 * time.Millisecond) // let the worker park again
		t0 := time.Now()
		if _, err := c.Action.Invoke(ctx, "lat", nil, nil); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-started).Sub(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
}
