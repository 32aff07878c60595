package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/floruntime/flo/bench"
)

// benchCmd is `flo bench`: it starts its own servers (flo in sync and
// interval durability, Redis with AOF, NATS JetStream — peers only if
// installed), drives each with the same load and prints one line per case
// with the ratio of flo to its peer.
func benchCmd() *cobra.Command {
	var (
		cfg        bench.Config
		durability string
		server     string
		peers      string
		floBin     string
		markdown   bool
		rounds     int
	)
	cmd := &cobra.Command{
		Use:   "bench [scenario…]",
		Short: "Measure flo against Redis and NATS JetStream (run `flo bench list` for scenarios)",
		Long: `Run benchmark scenarios. Each case starts fresh servers in temporary
directories on free loopback ports: flo (this binary) with --durability sync
and/or interval, redis-server with appendonly yes and appendfsync always
(compared with sync) or everysec (compared with interval), and nats-server
-js. A peer that is not installed is skipped with a message.

Every case prints one line:
  scenario=… system=… conns=… size=… secs=… ops=… ops/s=… p50=… p99=… p999=… max=… errors=… [vs_PEER=RATIOx]

With --rounds N every scenario runs N times, its cases in the same order
each round, and "median …" lines summarise the median round of each system
(ratios: the median of the per-round ratios).

With no scenario, all run. "list" prints the scenarios.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] == "list" {
				for _, s := range bench.Scenarios() {
					fmt.Printf("%-18s %s\n", s.Name, s.Doc)
				}
				return nil
			}
			var scenarios []*bench.Scenario
			if len(args) == 0 {
				scenarios = bench.Scenarios()
			}
			for _, a := range args {
				s, ok := bench.Lookup(a)
				if !ok {
					return fmt.Errorf("unknown scenario %q (see `flo bench list`)", a)
				}
				scenarios = append(scenarios, s)
			}
			env := &bench.Env{Cfg: cfg, FloBin: floBin, External: server, Rounds: rounds, Out: os.Stdout, Log: os.Stderr}
			switch durability {
			case "both", "":
				env.Durability = []string{"sync", "interval"}
			case "sync", "interval":
				env.Durability = []string{durability}
			default:
				return fmt.Errorf("--durability must be sync, interval or both, not %q", durability)
			}
			env.Peers = map[string]bool{}
			for _, p := range strings.Split(peers, ",") {
				switch p = strings.TrimSpace(p); p {
				case "", "none":
				case "redis", "nats":
					env.Peers[p] = true
				default:
					return fmt.Errorf("--peers: unknown peer %q (redis, nats or none)", p)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			err := env.Run(ctx, scenarios)
			summary := bench.Summarize(env.Results)
			if rounds > 1 {
				for _, r := range summary {
					fmt.Println("median", r.Line())
				}
			}
			if markdown {
				fmt.Println()
				fmt.Print(bench.Markdown(summary))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Conns, "conns", 50, "concurrent connections, each waiting for its reply before the next request")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time of each case")
	f.Int64Var(&cfg.Ops, "ops", 0, "measure this many operations instead of --duration")
	f.DurationVar(&cfg.Warmup, "warmup", time.Second, "load before measuring (negative: none)")
	f.IntVar(&cfg.Size, "size", 100, "payload bytes")
	f.IntVar(&cfg.Keys, "keys", 100_000, "key space of the KV scenarios")
	f.DurationVar(&cfg.Interval, "interval", 0, "print a progress line this often (0: only the final line)")
	f.IntVar(&cfg.PipeClients, "pipe-clients", 2, "flo.Clients shared by the pipelined scenario")
	f.IntVar(&cfg.PipeDepth, "pipe-depth", 256, "goroutines of the pipelined scenario")
	f.IntVar(&cfg.Records, "records", 1_000_000, "records read by stream-read")
	f.IntVar(&cfg.Batch, "batch", 1000, "records per read in stream-read")
	f.IntVar(&cfg.Messages, "messages", 200_000, "messages queue-cycle prefills (a case ends early once they are consumed)")
	f.IntVar(&cfg.Workers, "workers", 8, "worker connections of action-e2e")
	f.IntVar(&cfg.WorkerConcurrency, "worker-concurrency", 16, "tasks each action worker runs at once")
	f.IntVar(&cfg.LatencyOps, "latency-ops", 2000, "invokes measured by action-latency")
	f.StringVar(&durability, "durability", "both", "flo durability to run: sync, interval or both")
	f.StringVar(&server, "server", "", "use this running flo server instead of starting one")
	f.StringVar(&peers, "peers", "redis,nats", "peers to compare with: redis, nats (comma-separated) or none")
	f.StringVar(&floBin, "flo-bin", "", "flo binary for the servers (default: this executable)")
	f.BoolVar(&markdown, "markdown", false, "print a Markdown table of all results at the end")
	f.IntVar(&rounds, "rounds", 1, "run every scenario this many times, alternating systems; summaries take the median round")
	return cmd
}
