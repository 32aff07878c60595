package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/internal/node"
	"github.com/floruntime/flo/internal/server"
)

func serverCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "server", Short: "Run the flo server"}
	cfg := config.Default()
	var checkOnly bool
	start := &cobra.Command{
		Use:   "start",
		Short: "Start the server in the foreground",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			if checkOnly {
				fmt.Println("configuration ok")
				return nil
			}
			return runServer(cfg)
		},
	}
	f := start.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "client address (host:port; port 0 picks a free port)")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for all durable state")
	f.StringVar(&cfg.Durability, "durability", cfg.Durability, "sync (ack after fsync) or interval (fsync every --flush-interval)")
	f.DurationVar(&cfg.FlushInterval, "flush-interval", cfg.FlushInterval, "fsync period in interval durability")
	f.StringVar(&cfg.ReadyFile, "ready-file", cfg.ReadyFile, "write the bound address to this file once listening")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	f.Int64Var(&cfg.CacheBytes, "cache-size", cfg.CacheBytes, "storage block cache in bytes")
	f.IntVar(&cfg.MaxFrameBytes, "max-frame-bytes", cfg.MaxFrameBytes, "largest request payload accepted")
	f.IntVar(&cfg.MaxConnections, "max-connections", cfg.MaxConnections, "open client connections allowed")
	f.IntVar(&cfg.MaxInflightPerConn, "max-inflight-per-conn", cfg.MaxInflightPerConn, "unanswered requests per connection before reading pauses")
	f.IntVar(&cfg.MaxReplyBytesPerConn, "max-reply-bytes-per-conn", cfg.MaxReplyBytesPerConn, "reply bytes a connection may hold unread before reading pauses")
	f.IntVar(&cfg.MaxWaiters, "max-waiters", cfg.MaxWaiters, "blocked calls allowed server-wide")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long a graceful stop waits for in-flight requests")
	f.IntVar(&cfg.QueueMaxDeliveries, "queue-max-deliveries", cfg.QueueMaxDeliveries, "deliveries before a queue message moves to its DLQ")
	f.IntVar(&cfg.QueueDLQMax, "queue-dlq-max", cfg.QueueDLQMax, "entries per queue DLQ (oldest evicted)")
	f.DurationVar(&cfg.QueueDedupHold, "queue-dedup-hold", cfg.QueueDedupHold, "least time a queue dedup key is held")
	f.IntVar(&cfg.StreamMaxStreams, "stream-max-streams", cfg.StreamMaxStreams, "streams server-wide")
	f.IntVar(&cfg.StreamMaxGroups, "stream-max-groups", cfg.StreamMaxGroups, "consumer groups per stream")
	f.IntVar(&cfg.StreamMaxPending, "stream-max-pending", cfg.StreamMaxPending, "pending entries per consumer group")
	f.IntVar(&cfg.StreamMaxDeadLetters, "stream-max-dead-letters", cfg.StreamMaxDeadLetters, "dead letters per consumer group (oldest evicted)")
	f.IntVar(&cfg.ActionMaxActions, "action-max-actions", cfg.ActionMaxActions, "registered actions server-wide")
	f.IntVar(&cfg.ActionMaxWorkers, "action-max-workers", cfg.ActionMaxWorkers, "registered workers server-wide")
	f.IntVar(&cfg.ActionMaxLiveRuns, "action-max-live-runs", cfg.ActionMaxLiveRuns, "unfinished runs server-wide")
	f.VisitAll(func(fl *pflag.Flag) { fl.Usage += " (env " + envName(fl.Name) + ")" })
	f.BoolVar(&checkOnly, "check-config", false, "validate the configuration and exit")
	cmd.AddCommand(start)
	return cmd
}

// applyEnv sets every flag not given on the command line from its FLO_
// environment variable (--data-dir ← FLO_DATA_DIR; --listen ← FLO_LISTEN_ADDR).
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", name, serr)
			}
		}
	})
	return err
}

// envName is the environment variable a server flag reads: FLO_ and the
// flag's name in capitals with _ for - (FLO_LISTEN_ADDR for --listen).
func envName(flag string) string {
	if flag == "listen" {
		return "FLO_LISTEN_ADDR"
	}
	return "FLO_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	ho := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, ho))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, ho))
}

func runServer(cfg config.Config) error {
	log := newLogger(cfg)
	stack, err := node.Open(cfg, log, nil)
	if err != nil {
		return err
	}
	// Catch the signals before listening: one that arrives once clients
	// can connect or the ready file exists must stop the server gracefully,
	// not kill it. (Until now, one may: nothing has been acknowledged.)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	srv := server.New(stack.Node, server.OptionsFrom(cfg, log))
	addr, err := srv.Listen(cfg.Listen)
	if err != nil {
		stack.Close()
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	log.Info("flo server started", "addr", addr.String(), "data_dir", cfg.DataDir, "durability", cfg.Durability)
	if cfg.ReadyFile != "" {
		if err := server.WriteReadyFile(cfg.ReadyFile, addr); err != nil {
			srv.Shutdown()
			stack.Close()
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	s := <-sig
	log.Info("shutting down", "signal", s.String())
	srv.Shutdown()
	if err := stack.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	log.Info("flo server stopped")
	return nil
}
