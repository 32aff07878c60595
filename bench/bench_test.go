package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/floruntime/flo/flotest"
)

func TestHistogram_QuantilesWithinThreePercent(t *testing.T) {
	t.Parallel()
	var h Histogram
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]time.Duration, 100_000)
	for i := range vals {
		// Log-uniform from 1µs to 1s.
		vals[i] = time.Duration(float64(int64(1000)<<r.IntN(20)) * (1 + r.Float64()))
		h.Record(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.03 || diff < -0.03 {
			t.Errorf("q%.3f = %v, want %v (±3%%)", q, got, want)
		}
	}
	if h.Max() != vals[len(vals)-1] {
		t.Errorf("max = %v, want %v", h.Max(), vals[len(vals)-1])
	}
	if h.Count() != uint64(len(vals)) {
		t.Errorf("count = %d", h.Count())
	}
}

func TestHistogram_SmallValuesExact(t *testing.T) {
	t.Parallel()
	for v := range uint64(5000) {
		i := histIndex(v)
		if v < histLinear && histValue(i) != v {
			t.Fatalf("value %d -> bucket %d -> %d", v, i, histValue(i))
		}
		if i > 0 && histIndex(v) < histIndex(v-1) {
			t.Fatalf("buckets not monotonic at %d", v)
		}
	}
}

func TestRun_FixedOpsCountsItemsAndErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	d := DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
		n := 0
		return func(ctx context.Context) (Done, error) {
			n++
			if n%10 == 0 { // every connection: some do most of the 1000 ops
				return Done{}, boom
			}
			return Done{N: 2}, nil
		}, nil, nil
	})
	r, err := Run(context.Background(), Config{Conns: 4, Ops: 1000, Duration: 10 * time.Second}, "test", "fake", d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops+r.Errors != 1000 {
		t.Errorf("ops %d + errors %d != 1000", r.Ops, r.Errors)
	}
	if r.Items != 2*r.Ops || r.Errors == 0 || !errors.Is(r.FirstErr, boom) {
		t.Errorf("items %d ops %d errors %d first %v", r.Items, r.Ops, r.Errors, r.FirstErr)
	}
}

func TestRun_DrainedStopsEarly(t *testing.T) {
	t.Parallel()
	d := DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
		left := 5
		return func(ctx context.Context) (Done, error) {
			if left == 0 {
				return Done{}, ErrDrained
			}
			left--
			return Done{}, nil
		}, nil, nil
	})
	start := time.Now()
	r, err := Run(context.Background(), Config{Conns: 3, Duration: time.Minute, Warmup: -1}, "test", "fake", d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 15 || r.Errors != 0 || time.Since(start) > 10*time.Second {
		t.Errorf("ops %d errors %d after %v", r.Ops, r.Errors, time.Since(start))
	}
	if line := r.Line(); line == "" {
		t.Error("empty line")
	}
}

// The benchmarks below run a scenario's flo case against an in-process
// server (so -cpuprofile covers server and client together), b.N operations
// with the scenario's connections. Peers are not run here; use `flo bench`.
//
//	go test ./bench -run '^$' -bench 'KV' -benchtime 100000x -cpuprofile cpu.out

func inProcess(tb testing.TB) func(ctx context.Context, durability string) (string, func(), error) {
	return func(ctx context.Context, durability string) (string, func(), error) {
		s := flotest.Start(tb, flotest.Options{Durability: durability})
		return s.Addr, s.Stop, nil
	}
}

// benchCase runs scenario's case for the flo system with durability.
func benchCase(b *testing.B, scenario, durability string, cfg Config) {
	s, ok := Lookup(scenario)
	if !ok {
		b.Skipf("scenario %s not registered", scenario)
	}
	env := &Env{Cfg: cfg.withDefaults(), Durability: []string{durability}, Peers: map[string]bool{}, StartFlo: inProcess(b)}
	var c *Case
	for _, x := range s.Cases(env) {
		if x.System == FloSync || x.System == FloInterval {
			c = &x
			break
		}
	}
	if c == nil {
		b.Fatalf("%s has no flo case", scenario)
	}
	ctx := context.Background()
	defer env.stopAll()
	d, err := c.Prepare(ctx, env)
	if err != nil {
		b.Fatal(err)
	}
	run := env.Cfg
	run.Ops = int64(b.N)
	if c.Ops > 0 {
		run.Ops = c.Ops
	}
	conns := run.Conns
	if c.Conns > 0 {
		conns = c.Conns
	}
	b.ReportAllocs()
	b.SetBytes(int64(run.Size))
	b.ResetTimer()
	r, err := runCase(ctx, run, conns, scenario, c.System, d)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if r.Errors > 0 {
		b.Fatalf("%d errors, first: %v", r.Errors, r.FirstErr)
	}
	b.ReportMetric(r.Rate(), "ops/s")
	b.ReportMetric(float64(r.Hist.Quantile(0.5).Microseconds()), "p50-us")
	b.ReportMetric(float64(r.Hist.Quantile(0.99).Microseconds()), "p99-us")
}

func runCase(ctx context.Context, cfg Config, conns int, scenario, system string, d Driver) (*Result, error) {
	return run(ctx, cfg, conns, scenario, system, d, nil, nil)
}

func BenchmarkKVPut(b *testing.B) {
	for _, dur := range []string{"sync", "interval"} {
		b.Run(fmt.Sprintf("durability=%s/conns=50", dur), func(b *testing.B) {
			benchCase(b, "kv-put", dur, Config{Conns: 50, Keys: 10_000})
		})
	}
}

func BenchmarkKVGet(b *testing.B) {
	b.Run("conns=50", func(b *testing.B) {
		benchCase(b, "kv-get", "sync", Config{Conns: 50, Keys: 10_000})
	})
}

func BenchmarkKVGetPipelined(b *testing.B) {
	for _, depth := range []int{64, 256} {
		b.Run(fmt.Sprintf("clients=2/depth=%d", depth), func(b *testing.B) {
			benchCase(b, "kv-get-pipelined", "sync", Config{PipeClients: 2, PipeDepth: depth, Keys: 10_000})
		})
	}
}

func BenchmarkQueueCycle(b *testing.B) {
	b.Run("conns=50", func(b *testing.B) {
		benchCase(b, "queue-cycle", "sync", Config{Conns: 50, Messages: max(b.N, 1000)})
	})
}

func BenchmarkStreamAppend(b *testing.B) {
	b.Run("conns=50", func(b *testing.B) {
		benchCase(b, "stream-append", "sync", Config{Conns: 50})
	})
}

// BenchmarkStreamRead reads 100,000 records in batches of 1,000 per
// iteration (b.N is ignored: the scenario reads the whole stream).
func BenchmarkStreamRead(b *testing.B) {
	b.Run("records=100000/batch=1000", func(b *testing.B) {
		benchCase(b, "stream-read", "sync", Config{Records: 100_000, Batch: 1000})
	})
}

func BenchmarkActionThroughput(b *testing.B) {
	b.Run("conns=50/workers=8", func(b *testing.B) {
		benchCase(b, "action-throughput", "sync", Config{Conns: 50, Workers: 8})
	})
}

// With an even number of rounds the median of the per-round ratios is the
// mean of the two middle ones, not the higher (with two rounds that would
// publish the better of the two ratios).
func TestSummarize_EvenRoundsRatioMedian(t *testing.T) {
	t.Parallel()
	var rs []*Result
	for i, ratio := range []float64{1.0, 2.0, 1.2, 1.6} {
		rs = append(rs, &Result{Scenario: "s", System: "flo", Elapsed: time.Second, Items: int64(100 + i),
			Ratios: []Ratio{{System: "peer", Value: ratio}}, Round: i + 1})
	}
	for _, tc := range []struct {
		rounds int
		want   float64
	}{{2, 1.5}, {4, 1.4}, {3, 1.2}} {
		sum := Summarize(rs[:tc.rounds])
		if len(sum) != 1 || len(sum[0].Ratios) != 1 {
			t.Fatalf("%d rounds: summary %+v", tc.rounds, sum)
		}
		if got := sum[0].Ratios[0].Value; got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("%d rounds: median ratio %.3f, want %.3f", tc.rounds, got, tc.want)
		}
	}
}

// A connection that finds nothing left may take a while to say so (a
// JetStream fetch waits for its expiry); the measured time ends with the
// last operation that did something, not with that wait.
func TestRun_DrainedWaitNotMeasured(t *testing.T) {
	t.Parallel()
	d := DriverFunc(func(ctx context.Context, i int) (Op, func(), error) {
		left := 20
		return func(ctx context.Context) (Done, error) {
			if left == 0 {
				time.Sleep(3 * time.Second) // an empty fetch expiring
				return Done{}, ErrDrained
			}
			left--
			time.Sleep(time.Millisecond)
			return Done{}, nil
		}, nil, nil
	})
	r, err := Run(context.Background(), Config{Conns: 2, Duration: time.Minute, Warmup: -1}, "test", "fake", d, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 20 ops of 1 ms per connection: far less than the 3 s idle wait even
	// on a loaded machine.
	if r.Ops != 40 || r.Elapsed > 1500*time.Millisecond {
		t.Errorf("ops %d in %v, want 40 in well under the 3s idle wait", r.Ops, r.Elapsed)
	}
}

// stream-read reads exactly Records records, even when a batch is larger
// than the server returns per read (flo returns at most 1,000).
func TestStreamRead_ReadsExactlyRecords(t *testing.T) {
	t.Parallel()
	s, _ := Lookup("stream-read")
	for _, batch := range []int{700, 2000} {
		env := &Env{Cfg: Config{Records: 3000, Batch: batch, Duration: 10 * time.Second}, Durability: []string{"sync"},
			Peers: map[string]bool{}, StartFlo: inProcess(t)}
		if err := env.RunScenario(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		r := env.Results[0]
		if r.Skipped != "" || r.Errors != 0 || r.Items != 3000 {
			t.Errorf("batch %d: read %d records (errors %d, skipped %q), want 3000", batch, r.Items, r.Errors, r.Skipped)
		}
	}
}
