package flo_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// BenchmarkStreamAppend appends 100-byte records from conns connections,
// each waiting for its reply (the bench harness's shape), in sync mode.
func BenchmarkStreamAppend(b *testing.B) {
	for _, conns := range []int{1, 50} {
		b.Run(fmt.Sprint("conns=", conns), func(b *testing.B) {
			srv := flotest.Start(b, flotest.Options{})
			clients := make([]*flo.Client, conns)
			for i := range clients {
				clients[i] = srv.Client(b, flo.Options{})
			}
			payload := make([]byte, 100)
			var next atomic.Int64
			b.ReportAllocs()
			b.SetBytes(100)
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := c.Stream.Append(context.Background(), "bench", payload, nil); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkStreamRead reads a prefilled stream sequentially in batches of
// batch records over one connection.
func BenchmarkStreamRead(b *testing.B) {
	const records = 200_000
	srv := flotest.Start(b, flotest.Options{Durability: "interval"})
	ctx := context.Background()
	fillers := make([]*flo.Client, 4)
	for i := range fillers {
		fillers[i] = srv.Client(b, flo.Options{})
	}
	payload := make([]byte, 100)
	var wg sync.WaitGroup
	var n atomic.Int64
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n.Add(1) <= records {
				if _, err := fillers[w%len(fillers)].Stream.Append(ctx, "bench", payload, nil); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			c := srv.Client(b, flo.Options{})
			b.ReportAllocs()
			b.ResetTimer()
			var next uint64 = 1
			got := 0
			for got < b.N {
				rs, err := c.Stream.Read(ctx, "bench", &flo.StreamReadOptions{Offset: next, Count: batch})
				if err != nil {
					b.Fatal(err)
				}
				if len(rs) == 0 {
					next = 1
					continue
				}
				got += len(rs)
				next = rs[len(rs)-1].Offset + 1
			}
			b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
