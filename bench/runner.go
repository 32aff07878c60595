package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is what every scenario shares: how many connections drive the
// system, for how long, and with what payload.
type Config struct {
	// Conns is the number of concurrent connections (default 50), each
	// driven by one goroutine that waits for every reply before its next
	// request.
	Conns int
	// Duration is how long each case is measured (default 10s).
	Duration time.Duration
	// Ops, when > 0, measures a fixed number of operations instead of a
	// duration (Duration then only caps the run).
	Ops int64
	// Warmup runs the load this long before measuring (default 1s; 0 keeps
	// the default, negative disables it).
	Warmup time.Duration
	// Size is the payload size in bytes (default 100).
	Size int
	// Keys is the key space of the KV scenarios (default 100,000).
	Keys int
	// Interval, when > 0, prints a progress line this often while a case
	// runs.
	Interval time.Duration
	// PipeClients and PipeDepth shape the pipelined scenarios: PipeDepth
	// goroutines share PipeClients flo.Clients (defaults 2 and 256).
	PipeClients int
	PipeDepth   int
	// Records is the stream length read by stream-read (default 1,000,000)
	// and Batch its read size (default 1,000).
	Records int
	Batch   int
	// Messages is the number of messages queue-cycle prefills (default
	// 200,000); a cycle case ends early when they are all consumed.
	Messages int
	// Workers is the number of worker connections of action-e2e (default 8).
	Workers int
	// WorkerConcurrency is the number of tasks each of those workers runs
	// at once, each on its own long-poll (default 16).
	WorkerConcurrency int
	// LatencyOps is the number of invokes action-latency measures (default
	// 2,000).
	LatencyOps int
}

func (c Config) withDefaults() Config {
	if c.Conns <= 0 {
		c.Conns = 50
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = time.Second
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Size <= 0 {
		c.Size = 100
	}
	if c.Keys <= 0 {
		c.Keys = 100_000
	}
	if c.PipeClients <= 0 {
		c.PipeClients = 2
	}
	if c.PipeDepth <= 0 {
		c.PipeDepth = 256
	}
	if c.Records <= 0 {
		c.Records = 1_000_000
	}
	if c.Batch <= 0 {
		c.Batch = 1000
	}
	if c.Messages <= 0 {
		c.Messages = 200_000
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.WorkerConcurrency <= 0 {
		c.WorkerConcurrency = 16
	}
	if c.LatencyOps <= 0 {
		c.LatencyOps = 2000
	}
	return c
}

// Done is what one operation reports besides its error.
type Done struct {
	// N is the number of items the operation covered (records read,
	// messages consumed); 0 counts as 1.
	N int
	// Latency, when > 0, replaces the wall time the runner measured (for
	// latencies that end somewhere else, such as invoke-to-start).
	Latency time.Duration
}

// Op performs one operation on one connection and waits for its reply.
type Op func(ctx context.Context) (Done, error)

// ErrDrained, returned by an Op, stops its connection without counting an
// error: there is nothing left to do (the queue is empty, the stream read).
var ErrDrained = errors.New("drained")

// Driver opens the connections of one case.
type Driver interface {
	// Conn opens connection i (0-based) and returns its operation and a
	// function that closes it.
	Conn(ctx context.Context, i int) (Op, func(), error)
}

// DriverFunc adapts a function to Driver.
type DriverFunc func(ctx context.Context, i int) (Op, func(), error)

// Conn implements Driver.
func (f DriverFunc) Conn(ctx context.Context, i int) (Op, func(), error) { return f(ctx, i) }

// Result is the measurement of one case.
type Result struct {
	Scenario string
	System   string
	Conns    int
	Size     int
	Elapsed  time.Duration
	Ops      int64 // operations completed while measuring
	Items    int64 // items they covered (= Ops unless an Op reports N)
	Errors   int64
	FirstErr error
	Hist     Histogram
	// Extra holds scenario-specific figures printed after the standard ones.
	Extra []KV
	// Ratios compare Items/s to other systems of the same scenario.
	Ratios []Ratio
	// Skipped, when non-empty, says why the case did not run.
	Skipped string
	// Round is the 1-based round of a multi-round run.
	Round int
}

// KV is one extra name=value on a result line.
type KV struct{ Key, Value string }

// Ratio is this result's throughput divided by another system's.
type Ratio struct {
	System string
	Value  float64
}

// Rate is items per second.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Items) / r.Elapsed.Seconds()
}

// Line formats r as one stable line: space-separated name=value pairs,
// always in the same order, so runs can be diffed and grepped.
func (r *Result) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario=%s system=%s", r.Scenario, r.System)
	if r.Skipped != "" {
		fmt.Fprintf(&b, " skipped=%q", r.Skipped)
		return b.String()
	}
	fmt.Fprintf(&b, " conns=%d size=%d secs=%.2f ops=%d ops/s=%.0f p50=%s p99=%s p999=%s max=%s errors=%d",
		r.Conns, r.Size, r.Elapsed.Seconds(), r.Items, r.Rate(),
		fmtDur(r.Hist.Quantile(0.50)), fmtDur(r.Hist.Quantile(0.99)), fmtDur(r.Hist.Quantile(0.999)),
		fmtDur(r.Hist.Max()), r.Errors)
	for _, kv := range r.Extra {
		fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value)
	}
	for _, ra := range r.Ratios {
		fmt.Fprintf(&b, " vs_%s=%.2fx", ra.System, ra.Value)
	}
	return b.String()
}

// fmtDur prints a latency in milliseconds with microsecond precision.
func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}

// Run drives d with cfg.Conns connections: it opens them all, runs the
// warm-up, then measures for cfg.Duration (or until cfg.Ops operations are
// done, or every connection is drained), and closes them.
func Run(ctx context.Context, cfg Config, scenario, system string, d Driver, progress io.Writer) (*Result, error) {
	cfg = cfg.withDefaults()
	return run(ctx, cfg, cfg.Conns, scenario, system, d, progress, nil)
}

// window is told when measuring starts and stops (to sample CPU time).
type window interface {
	start()
	stop(r *Result)
}

type connState struct {
	mu       sync.Mutex
	total    Histogram
	interval Histogram
	ops      int64
	items    int64
	errs     int64
	firstErr error
}

func run(ctx context.Context, cfg Config, conns int, scenario, system string, d Driver, progress io.Writer, w window) (*Result, error) {
	ops := make([]Op, conns)
	closers := make([]func(), 0, conns)
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for i := range conns {
		op, closeFn, err := d.Conn(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: open connection %d: %w", scenario, system, i, err)
		}
		ops[i] = op
		if closeFn != nil {
			closers = append(closers, closeFn)
		}
	}

	const (
		phaseWarm = iota
		phaseMeasure
		phaseStop
	)
	var phase atomic.Int32
	var tickets atomic.Int64 // remaining ops in fixed-count mode
	fixed := cfg.Ops > 0
	tickets.Store(cfg.Ops)
	if fixed || cfg.Warmup == 0 {
		phase.Store(phaseMeasure)
		if w != nil {
			w.start()
		}
	}

	states := make([]*connState, conns)
	var wg sync.WaitGroup
	// The run's context carries a deadline so that clients which add a
	// per-call timeout only when the context has none (flo.Client does)
	// skip that allocation: it would be load-generator cost, not server
	// cost.
	runCtx, cancel := context.WithTimeout(ctx, cfg.Warmup+11*cfg.Duration+time.Minute)
	defer cancel()
	start := time.Now()
	var measureStart atomic.Int64
	// lastDone is when the latest counted operation ended: a run that ends
	// because every connection drained is measured up to it, not up to the
	// last connection's finding out (a JetStream fetch waits its expiry).
	var lastDone atomic.Int64
	measureStart.Store(start.UnixNano())
	for i := range conns {
		st := &connState{}
		states[i] = st
		wg.Add(1)
		go func(op Op) {
			defer wg.Done()
			for {
				p := phase.Load()
				if p == phaseStop {
					return
				}
				if fixed && tickets.Add(-1) < 0 {
					return
				}
				t0 := time.Now()
				done, err := op(runCtx)
				lat := time.Since(t0)
				end := t0.UnixNano() + int64(lat)
				if errors.Is(err, ErrDrained) {
					return
				}
				if p != phaseMeasure || err != nil && runCtx.Err() != nil {
					// Warm-up, or cut short by the end of the run.
					continue
				}
				if done.Latency > 0 {
					lat = done.Latency
				}
				n := int64(max(done.N, 1))
				st.mu.Lock()
				if err != nil {
					st.errs++
					if st.firstErr == nil {
						st.firstErr = err
					}
				} else {
					st.ops++
					st.items += n
					st.total.Record(lat)
					st.interval.Record(lat)
				}
				st.mu.Unlock()
				if err == nil {
					for last := lastDone.Load(); end > last && !lastDone.CompareAndSwap(last, end); last = lastDone.Load() {
					}
				}
			}
		}(ops[i])
	}

	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	// Warm-up.
	if phase.Load() == phaseWarm {
		select {
		case <-time.After(cfg.Warmup):
		case <-allDone:
		case <-ctx.Done():
		}
		if w != nil {
			w.start()
		}
		measureStart.Store(time.Now().UnixNano())
		phase.Store(phaseMeasure)
	}
	mStart := time.Unix(0, measureStart.Load())

	var tick <-chan time.Time
	if cfg.Interval > 0 && progress != nil {
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	deadline := time.NewTimer(time.Until(mStart.Add(cfg.Duration)))
	defer deadline.Stop()
	if fixed {
		// A fixed op count is capped by a generous multiple of Duration.
		deadline.Reset(time.Until(mStart.Add(10 * cfg.Duration)))
	}
	lastTick := mStart
	var lastOps int64
	drained := false
loop:
	for {
		select {
		case <-deadline.C:
			break loop
		case <-allDone:
			drained = true
			break loop
		case <-ctx.Done():
			break loop
		case now := <-tick:
			var h Histogram
			var n, errs int64
			for _, st := range states {
				st.mu.Lock()
				h.Merge(&st.interval)
				st.interval.Reset()
				n += st.items
				errs += st.errs
				st.mu.Unlock()
			}
			secs := now.Sub(lastTick).Seconds()
			fmt.Fprintf(progress, "progress scenario=%s system=%s t=%.1fs ops/s=%.0f p50=%s p99=%s p999=%s errors=%d\n",
				scenario, system, now.Sub(mStart).Seconds(), float64(n-lastOps)/secs,
				fmtDur(h.Quantile(0.5)), fmtDur(h.Quantile(0.99)), fmtDur(h.Quantile(0.999)), errs)
			lastTick, lastOps = now, n
		}
	}
	elapsed := time.Since(mStart)
	if last := time.Unix(0, lastDone.Load()); drained && last.After(mStart) {
		elapsed = last.Sub(mStart)
	}
	phase.Store(phaseStop)
	cancel()
	wg.Wait()

	res := &Result{Scenario: scenario, System: system, Conns: conns, Size: cfg.Size, Elapsed: elapsed}
	defer func() {
		if w != nil {
			w.stop(res)
		}
	}()
	for _, st := range states {
		res.Hist.Merge(&st.total)
		res.Ops += st.ops
		res.Items += st.items
		res.Errors += st.errs
		if res.FirstErr == nil {
			res.FirstErr = st.firstErr
		}
	}
	return res, ctx.Err()
}
