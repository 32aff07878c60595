package bench

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	flo "github.com/floruntime/flo/clients/go"
)

// Action scenarios: end-to-end runs (invoke → a worker claims and completes
// → the invoker sees it completed) and invoke-to-start latency on an idle
// worker. No peer offers durable actions, so these report absolute figures
// against the targets (≥ 20k runs/s, p99 invoke-to-start < 5 ms).
func init() {
	Register(&Scenario{Name: "action-e2e", Doc: "invoke → worker complete → status, Conns invokers and Workers workers; completed runs/s", Cases: actionE2ECases})
	Register(&Scenario{Name: "action-throughput", Doc: "invokers keep 16 runs each in flight, workers complete them; completed runs/s, invoke-to-complete latency", Cases: actionThroughputCases})
	Register(&Scenario{Name: "action-latency", Doc: "invoke-to-start latency on an idle worker (one invoker, one worker)", Cases: actionLatencyCases})
}

const benchAction = "bench-echo"

// invokeWindow is the number of runs each action-throughput invoker keeps
// in flight.
const invokeWindow = 16

func actionE2ECases(e *Env) []Case {
	var cases []Case
	for _, fs := range e.floSystems() {
		cases = append(cases, Case{System: fs.name, Prepare: actionE2EDriver(fs.durability),
			Finish: func(r *Result) {
				r.Extra = append(r.Extra, KV{"workers", fmt.Sprint(e.Cfg.Workers)}, KV{"worker_concurrency", fmt.Sprint(e.Cfg.WorkerConcurrency)})
			}})
	}
	return cases
}

// completions lets the in-process workers tell the invokers that a run
// finished, whichever side gets there first.
type completions struct{ m sync.Map } // run ID -> *completion

type completion struct {
	ch chan struct{}
	at time.Time // when the worker's complete was acknowledged
}

func (c *completions) get(id string) *completion {
	v, _ := c.m.LoadOrStore(id, &completion{ch: make(chan struct{})})
	return v.(*completion)
}

func (c *completions) done(id string) {
	x := c.get(id)
	x.at = time.Now()
	close(x.ch)
}

// wait returns when the run completed.
func (c *completions) wait(ctx context.Context, id string) (time.Time, error) {
	x := c.get(id)
	defer c.m.Delete(id)
	select {
	case <-x.ch:
		return x.at, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// startWorkers runs n workers, each the SDK's TaskWorker with conc handlers
// on its own connection, until the case ends; onTask is called with each
// claimed task before it is completed, onDone once the server has accepted
// its completion.
func startWorkers(ctx context.Context, e *Env, addr string, n, conc int, onTask func(t *flo.Task), onDone func(t *flo.Task)) error {
	clients := make([]*flo.Client, n)
	for w := range clients {
		c, err := e.floClient(ctx, addr)
		if err != nil {
			return err
		}
		clients[w] = c
	}
	// Registered after the clients, so it runs before they close: the
	// workers stop first and a closed client is never reported as a failure.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var failures atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		if ctx.Err() == nil && failures.Add(1) == 1 {
			firstErr.Store(err)
		}
	}
	e.OnStop(func() {
		cancel()
		wg.Wait()
		if f := failures.Load(); f > 0 {
			e.logf("workers: %d failed calls, first: %v", f, firstErr.Load())
		}
	})
	for w, c := range clients {
		tw := flo.NewTaskWorker(c, workerID(w), &flo.TaskWorkerOptions{
			Concurrency:  conc,
			Block:        time.Second,
			DrainTimeout: time.Second,
			OnError:      fail,
			OnOutcome: func(t *flo.Task, err error) {
				if err == nil && onDone != nil {
					onDone(t)
				}
			},
		})
		tw.Handle(benchAction, func(_ context.Context, t *flo.Task) ([]byte, error) {
			if onTask != nil {
				onTask(t)
			}
			return t.Input, nil
		}, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tw.Run(ctx); err != nil {
				fail(err)
			}
		}()
	}
	return nil
}

func workerID(w int) string { return fmt.Sprintf("bench-worker-%d", w) }

func registerBenchAction(ctx context.Context, e *Env, addr string) error {
	c, err := e.floClient(ctx, addr)
	if err != nil {
		return err
	}
	return c.Action.Register(ctx, benchAction, &flo.ActionRegisterOptions{Timeout: 30 * time.Second})
}

// actionServer starts a flo server with the bench action registered and
// the bench workers running (see startWorkers) and returns its address.
func actionServer(ctx context.Context, e *Env, durability string, workers, concurrency int, onStart, onDone func(*flo.Task)) (string, error) {
	addr, err := e.Flo(ctx, durability)
	if err != nil {
		return "", err
	}
	if err := registerBenchAction(ctx, e, addr); err != nil {
		return "", err
	}
	return addr, startWorkers(context.Background(), e, addr, workers, concurrency, onStart, onDone)
}

func actionE2EDriver(durability string) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		addr, err := actionServer(ctx, e, durability, e.Cfg.Workers, e.Cfg.WorkerConcurrency, nil, nil)
		if err != nil {
			return nil, err
		}
		input := payload(e.Cfg.Size)
		return floConns(addr, func(_ int, c *flo.Client) Op {
			return func(ctx context.Context) (Done, error) {
				// Invoke, then a status call the server answers when the run ends.
				st, err := c.Action.InvokeAndWait(ctx, benchAction, input, nil)
				if err != nil {
					return Done{}, err
				}
				if !bytes.Equal(st.Result, input) {
					return Done{}, fmt.Errorf("run %s completed with %d bytes, want the %d of its input", st.RunID, len(st.Result), len(input))
				}
				return Done{}, nil
			}
		}), nil
	}
}

func actionThroughputCases(e *Env) []Case {
	var cases []Case
	for _, fs := range e.floSystems() {
		cases = append(cases, Case{System: fs.name, Prepare: actionThroughputDriver(fs.durability),
			Finish: func(r *Result) {
				r.Extra = append(r.Extra, KV{"workers", fmt.Sprint(e.Cfg.Workers)}, KV{"worker_concurrency", fmt.Sprint(e.Cfg.WorkerConcurrency)},
					KV{"window", fmt.Sprint(invokeWindow)}, KV{"latency", "invoke-to-complete"})
			}})
	}
	return cases
}

// actionThroughputDriver: each invoker keeps invokeWindow runs in flight.
// An operation waits for the invoker's oldest run to complete when the
// window is full, then sends the next invoke without waiting for its answer
// (the SDK pipelines concurrent calls on the connection, as a producer with
// several requests in flight does), so up to invokeWindow invokes share the
// connection's writes and the server's replies. In steady state
// operations/s is completed runs/s, and the latency reported is the
// completed run's invoke-to-complete time.
func actionThroughputDriver(durability string) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		var comp completions
		addr, err := actionServer(ctx, e, durability, e.Cfg.Workers, e.Cfg.WorkerConcurrency, nil, func(t *flo.Task) { comp.done(t.ID) })
		if err != nil {
			return nil, err
		}
		input := payload(e.Cfg.Size)
		type run struct {
			id  chan string
			err error
			t0  time.Time
		}
		return floConns(addr, func(_ int, c *flo.Client) Op {
			var window []*run
			return func(ctx context.Context) (Done, error) {
				var d Done
				if len(window) >= invokeWindow {
					oldest := window[0]
					window = window[1:]
					id, ok := <-oldest.id
					if !ok {
						return Done{}, oldest.err
					}
					at, err := comp.wait(ctx, id)
					if err != nil {
						return Done{}, err
					}
					d.Latency = max(at.Sub(oldest.t0), 1)
				}
				r := &run{id: make(chan string, 1), t0: time.Now()}
				window = append(window, r)
				go func() {
					id, err := c.Action.Invoke(ctx, benchAction, input, nil)
					if err != nil {
						r.err = err
						close(r.id)
						return
					}
					r.id <- id
				}()
				return d, nil
			}
		}), nil
	}
}

func actionLatencyCases(e *Env) []Case {
	var cases []Case
	for _, fs := range e.floSystems() {
		cases = append(cases, Case{System: fs.name, Conns: 1, Ops: int64(e.Cfg.LatencyOps), NoWarmup: true,
			Prepare: actionLatencyDriver(fs.durability),
			Finish: func(r *Result) {
				r.Extra = append(r.Extra, KV{"latency", "invoke-to-start"})
			}})
	}
	return cases
}

func actionLatencyDriver(durability string) func(ctx context.Context, e *Env) (Driver, error) {
	return func(ctx context.Context, e *Env) (Driver, error) {
		started := make(chan time.Time, 1)
		completed := make(chan struct{}, 1)
		addr, err := actionServer(ctx, e, durability, 1, 1,
			func(*flo.Task) { started <- time.Now() },
			func(*flo.Task) { completed <- struct{}{} })
		if err != nil {
			return nil, err
		}
		input := payload(e.Cfg.Size)
		return floConns(addr, func(_ int, c *flo.Client) Op {
			return func(ctx context.Context) (Done, error) {
				// Give the worker time to park its await again, so every
				// invoke finds it idle.
				time.Sleep(2 * time.Millisecond)
				t0 := time.Now()
				if _, err := c.Action.Invoke(ctx, benchAction, input, nil); err != nil {
					return Done{}, err
				}
				var t1 time.Time
				select {
				case t1 = <-started:
				case <-ctx.Done():
					return Done{}, ctx.Err()
				}
				select {
				case <-completed:
				case <-ctx.Done():
					return Done{}, ctx.Err()
				}
				return Done{Latency: max(t1.Sub(t0), 1)}, nil
			}
		}), nil
	}
}
