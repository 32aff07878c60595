package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// System names as they appear on result lines.
const (
	FloSync       = "flo-sync"     // our server, --durability sync
	FloInterval   = "flo-interval" // our server, --durability interval
	FloExternal   = "flo"          // a server given with --server
	RedisAlways   = "redis-always"
	RedisEverysec = "redis-everysec"
	NATS          = "nats"
)

// Env is one benchmark run: the configuration, where the servers come from,
// and where results go. Every case gets fresh servers, started before it and
// stopped after it, so no case inherits another's data or compactions.
type Env struct {
	Cfg Config
	// FloBin is the flo binary to start servers from (`flo bench` passes
	// itself).
	FloBin string
	// External, when set, is the address of a running flo server used
	// instead of starting one (system name "flo").
	External string
	// Durability lists the flo modes to run: "sync", "interval" or both.
	// Each is compared with its Redis counterpart (always, everysec).
	Durability []string
	// Peers enables the peers by name: "redis", "nats". A peer that is
	// enabled but not installed is skipped with a message.
	Peers map[string]bool
	// StartFlo, if set, replaces starting FloBin (tests and testing.B run
	// an in-process server this way).
	StartFlo func(ctx context.Context, durability string) (addr string, stop func(), err error)
	// Rounds repeats every scenario this many times (default 1), running
	// its cases in the same order each round, so a pair compared in a ratio
	// always ran side by side. Summaries take the median round.
	Rounds int
	// Out receives one result line per case, Log progress and messages.
	Out, Log io.Writer

	stops   []func()
	pids    []int // servers of the current case, for CPU accounting
	Results []*Result
}

// cpuWindow samples the CPU time of the case's servers and of this process
// while measuring, so each line can say what an operation cost in CPU on
// either side: a figure that stays meaningful on a machine shared with
// other work, where throughput does not.
type cpuWindow struct {
	pids        []int
	srv0, self0 time.Duration
	ok          bool
}

func (w *cpuWindow) start() {
	w.self0 = selfCPU()
	w.srv0, w.ok = 0, true
	for _, pid := range w.pids {
		c, err := procCPU(pid)
		if err != nil {
			w.ok = false
		}
		w.srv0 += c
	}
}

func (w *cpuWindow) stop(r *Result) {
	if r.Items == 0 {
		return
	}
	self := selfCPU() - w.self0
	var srv time.Duration
	for _, pid := range w.pids {
		c, err := procCPU(pid)
		if err != nil {
			w.ok = false
		}
		srv += c
	}
	srv -= w.srv0
	perOp := func(d time.Duration) string {
		return fmt.Sprintf("%.1fus", float64(d)/float64(time.Microsecond)/float64(r.Items))
	}
	if w.ok && len(w.pids) > 0 {
		r.Extra = append(r.Extra, KV{"server_cpu/op", perOp(srv)})
	}
	r.Extra = append(r.Extra, KV{"client_cpu/op", perOp(self)})
}

// Scenario is one named workload with its cases (one per system).
type Scenario struct {
	Name string
	Doc  string
	// Cases lists the systems to run, peers before the flo cases they are
	// compared with.
	Cases func(e *Env) []Case
}

// Case is one system's run of a scenario.
type Case struct {
	System string
	// Conns overrides Cfg.Conns (e.g. the pipelined scenarios).
	Conns int
	// Ops, when > 0, measures this many operations instead of a duration.
	Ops int64
	// NoWarmup skips the warm-up (for drained or fixed-count workloads).
	NoWarmup bool
	// Compare names the systems whose throughput this one is divided by.
	Compare []string
	// Prepare starts what the case needs (servers, prefill) and returns the
	// driver. Whatever it opens it closes through Env.OnStop, which runs
	// when the case ends.
	Prepare func(ctx context.Context, e *Env) (Driver, error)
	// Finish, if set, adds scenario-specific figures after the run.
	Finish func(r *Result)
}

var registry = map[string]*Scenario{}

// Register adds a scenario; each scenario file registers its own in init.
func Register(s *Scenario) {
	if _, dup := registry[s.Name]; dup {
		panic("bench: scenario registered twice: " + s.Name)
	}
	registry[s.Name] = s
}

// order is the default run order; registered scenarios not in it follow
// in name order.
var order = []string{
	"kv-put", "kv-get", "kv-get-pipelined",
	"queue-enqueue", "queue-cycle",
	"stream-append", "stream-read",
	"action-e2e", "action-throughput", "action-latency",
}

// Scenarios returns every registered scenario in run order.
func Scenarios() []*Scenario {
	var out []*Scenario
	seen := map[string]bool{}
	for _, n := range order {
		if s, ok := registry[n]; ok {
			out = append(out, s)
			seen[n] = true
		}
	}
	var rest []string
	for n := range registry {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	for _, n := range rest {
		out = append(out, registry[n])
	}
	return out
}

// Lookup finds a scenario by name.
func Lookup(name string) (*Scenario, bool) {
	s, ok := registry[name]
	return s, ok
}

func (e *Env) logf(format string, args ...any) {
	if e.Log != nil {
		fmt.Fprintf(e.Log, format+"\n", args...)
	}
}

// OnStop registers cleanup run after the current case.
func (e *Env) OnStop(f func()) { e.stops = append(e.stops, f) }

// stopAll stops every server and closes everything of the current case,
// newest first.
func (e *Env) stopAll() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	e.stops = nil
	e.pids = nil
}

// Flo starts a flo server with the given durability for the current case
// (or returns the external one) and returns its address.
func (e *Env) Flo(ctx context.Context, durability string) (string, error) {
	if e.External != "" {
		return e.External, nil
	}
	if e.StartFlo != nil {
		addr, stop, err := e.StartFlo(ctx, durability)
		if err != nil {
			return "", err
		}
		e.OnStop(stop)
		return addr, nil
	}
	bin := e.FloBin
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return "", err
		}
	}
	p, err := StartFlo(ctx, bin, durability)
	if err != nil {
		return "", err
	}
	e.OnStop(p.Stop)
	e.pids = append(e.pids, p.Pid())
	return p.Addr, nil
}

// Redis starts a redis-server with the given appendfsync policy for the
// current case.
func (e *Env) Redis(ctx context.Context, appendfsync string) (string, error) {
	p, err := StartRedis(ctx, appendfsync)
	if err != nil {
		return "", err
	}
	e.OnStop(p.Stop)
	e.pids = append(e.pids, p.Pid())
	return p.Addr, nil
}

// NATS starts a nats-server with JetStream for the current case and returns
// its URL.
func (e *Env) NATS(ctx context.Context) (string, error) {
	p, err := StartNATS(ctx)
	if err != nil {
		return "", err
	}
	e.OnStop(p.Stop)
	e.pids = append(e.pids, p.Pid())
	return "nats://" + p.Addr, nil
}

// floSystems returns the flo system names to run with their durability and
// the Redis system each is compared with.
func (e *Env) floSystems() []floSystem {
	if e.External != "" {
		return []floSystem{{name: FloExternal, durability: "", redis: redisFor(e.firstDurability())}}
	}
	var out []floSystem
	for _, d := range e.durabilities() {
		name := FloSync
		if d == "interval" {
			name = FloInterval
		}
		out = append(out, floSystem{name: name, durability: d, redis: redisFor(d)})
	}
	return out
}

type floSystem struct {
	name       string
	durability string
	redis      string // comparable Redis system
}

func (f floSystem) redisFsync() string {
	if f.redis == RedisEverysec {
		return "everysec"
	}
	return "always"
}

func redisFor(durability string) string {
	if durability == "interval" {
		return RedisEverysec
	}
	return RedisAlways
}

func (e *Env) durabilities() []string {
	if len(e.Durability) == 0 {
		return []string{"sync", "interval"}
	}
	return e.Durability
}

func (e *Env) firstDurability() string { return e.durabilities()[0] }

func (e *Env) peer(name string) bool { return e.Peers == nil || e.Peers[name] }

// Run runs the scenarios in order, printing one line per case to Out.
func (e *Env) Run(ctx context.Context, scenarios []*Scenario) error {
	e.Cfg = e.Cfg.withDefaults()
	for _, s := range scenarios {
		if err := e.RunScenario(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// RunScenario runs every case of s, Rounds times.
func (e *Env) RunScenario(ctx context.Context, s *Scenario) error {
	e.Cfg = e.Cfg.withDefaults()
	rounds := max(e.Rounds, 1)
	for round := 1; round <= rounds; round++ {
		if err := e.runRound(ctx, s, round, rounds); err != nil {
			return err
		}
	}
	return nil
}

func (e *Env) runRound(ctx context.Context, s *Scenario, round, rounds int) error {
	var results []*Result
	for _, c := range s.Cases(e) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := e.runCase(ctx, s, c)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.logf("%s/%s: %v", s.Name, c.System, err)
			r = &Result{Scenario: s.Name, System: c.System, Skipped: firstLine(err.Error())}
		}
		r.Round = round
		if rounds > 1 {
			r.Extra = append(r.Extra, KV{"round", fmt.Sprintf("%d/%d", round, rounds)})
		}
		for _, name := range c.Compare {
			for _, o := range results {
				if o.System == name && o.Skipped == "" && o.Rate() > 0 && r.Skipped == "" {
					r.Ratios = append(r.Ratios, Ratio{System: name, Value: r.Rate() / o.Rate()})
				}
			}
		}
		results = append(results, r)
		e.Results = append(e.Results, r)
		if e.Out != nil {
			fmt.Fprintln(e.Out, r.Line())
		}
		if r.FirstErr != nil {
			e.logf("%s/%s: first error: %v", s.Name, c.System, r.FirstErr)
		}
	}
	return nil
}

func (e *Env) runCase(ctx context.Context, s *Scenario, c Case) (*Result, error) {
	defer e.stopAll()
	cfg := e.Cfg
	conns := cfg.Conns
	if c.Conns > 0 {
		conns = c.Conns
	}
	if c.Ops > 0 {
		cfg.Ops = c.Ops
	}
	if c.NoWarmup {
		cfg.Warmup = 0
	}
	e.logf("running %s on %s …", s.Name, c.System)
	t0 := time.Now()
	d, err := c.Prepare(ctx, e)
	if err != nil {
		if errors.Is(err, ErrNotInstalled) {
			e.logf("%s/%s: skipped: %v", s.Name, c.System, err)
		}
		return nil, err
	}
	if p := time.Since(t0); p > time.Second {
		e.logf("%s/%s: prepared in %.1fs", s.Name, c.System, p.Seconds())
	}
	r, err := run(ctx, cfg, conns, s.Name, c.System, d, e.Log, &cpuWindow{pids: e.pids})
	if err != nil {
		return nil, err
	}
	if c.Finish != nil {
		c.Finish(r)
	}
	return r, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Summarize reduces the rounds of each (scenario, system) to one result:
// the round with the median throughput, carrying the median of that
// system's per-round ratios (each ratio pairs cases of the same round).
func Summarize(results []*Result) []*Result {
	type key struct{ scenario, system string }
	groups := map[key][]*Result{}
	var keys []key
	for _, r := range results {
		k := key{r.Scenario, r.System}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []*Result
	for _, k := range keys {
		rs := groups[k]
		var ran []*Result
		for _, r := range rs {
			if r.Skipped == "" {
				ran = append(ran, r)
			}
		}
		if len(ran) == 0 {
			out = append(out, rs[0])
			continue
		}
		sort.Slice(ran, func(i, j int) bool { return ran[i].Rate() < ran[j].Rate() })
		med := *ran[len(ran)/2]
		med.Extra = nil
		for _, kv := range ran[len(ran)/2].Extra {
			if kv.Key != "round" {
				med.Extra = append(med.Extra, kv)
			}
		}
		med.Ratios = nil
		for _, ra := range ran[len(ran)/2].Ratios {
			var vs []float64
			for _, r := range ran {
				for _, x := range r.Ratios {
					if x.System == ra.System {
						vs = append(vs, x.Value)
					}
				}
			}
			med.Ratios = append(med.Ratios, Ratio{System: ra.System, Value: median(vs)})
		}
		if len(ran) > 1 {
			med.Extra = append(med.Extra, KV{"rounds", fmt.Sprint(len(ran))},
				KV{"min_ops/s", fmt.Sprintf("%.0f", ran[0].Rate())}, KV{"max_ops/s", fmt.Sprintf("%.0f", ran[len(ran)-1].Rate())})
		}
		out = append(out, &med)
	}
	return out
}

// median is the middle value of vs, or the mean of the two middle ones when
// there is an even number (the higher one would favour one side).
func median(vs []float64) float64 {
	sort.Float64s(vs)
	n := len(vs)
	if n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2
	}
	return vs[n/2]
}

// Markdown renders results as a table: scenario, system, ops/s, p50, p99,
// p999, errors and ratios. Pass it Summarize's output for several rounds.
func Markdown(results []*Result) string {
	var b strings.Builder
	b.WriteString("| Scenario | System | ops/s | p50 | p99 | p999 | errors | ratio |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		if r.Skipped != "" {
			fmt.Fprintf(&b, "| %s | %s | skipped: %s | | | | | |\n", r.Scenario, r.System, r.Skipped)
			continue
		}
		var ratios []string
		for _, ra := range r.Ratios {
			ratios = append(ratios, fmt.Sprintf("%.2f× %s", ra.Value, ra.System))
		}
		rate := fmt.Sprintf("%.0f", r.Rate())
		var lo, hi string
		for _, kv := range r.Extra {
			switch kv.Key {
			case "min_ops/s":
				lo = kv.Value
			case "max_ops/s":
				hi = kv.Value
			}
		}
		if lo != "" {
			rate += fmt.Sprintf(" (%s–%s)", lo, hi)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d | %s |\n", r.Scenario, r.System, rate,
			fmtDur(r.Hist.Quantile(0.5)), fmtDur(r.Hist.Quantile(0.99)), fmtDur(r.Hist.Quantile(0.999)),
			r.Errors, strings.Join(ratios, ", "))
	}
	return b.String()
}
