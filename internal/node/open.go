package node

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/floruntime/flo/internal/action"
	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/internal/fsm"
	"github.com/floruntime/flo/internal/journal"
	"github.com/floruntime/flo/internal/kv"
	"github.com/floruntime/flo/internal/queue"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/internal/stream"
)

// machines lists every primitive, in a fixed order (the order pulses run
// in), with the limits cfg sets.
func machines(db *storage.DB, cfg config.Config) []fsm.Machine {
	ql := queue.DefaultLimits()
	ql.MaxDeliveries, ql.DLQMax, ql.DedupHold = cfg.QueueMaxDeliveries, cfg.QueueDLQMax, cfg.QueueDedupHold
	return []fsm.Machine{
		kv.New(db),
		queue.NewWithLimits(db, ql),
		stream.NewWithLimits(db, stream.Limits{
			MaxStreams:         cfg.StreamMaxStreams,
			MaxGroupsPerStream: cfg.StreamMaxGroups,
			MaxPendingPerGroup: cfg.StreamMaxPending,
			MaxDeadLetters:     cfg.StreamMaxDeadLetters,
		}),
		action.NewWithLimits(db, action.Limits{
			MaxActions:  cfg.ActionMaxActions,
			MaxWorkers:  cfg.ActionMaxWorkers,
			MaxLiveRuns: cfg.ActionMaxLiveRuns,
		}),
	}
}

// Stack is a running single-node flo: storage, state machines, journal and
// node, opened from a Config and closed in reverse order.
type Stack struct {
	*Node
	db      *storage.DB
	journal journal.Journal
}

// Open opens the data directory, rebuilds in-memory indexes and starts the
// journal and node. fatal is called if storage fails underneath a running
// node; nil means log and exit(1), since state in memory can no longer be
// trusted.
func Open(cfg config.Config, log *slog.Logger, fatal func(error)) (*Stack, error) {
	if fatal == nil {
		fatal = func(err error) {
			log.Error("storage failure; stopping", "err", err)
			os.Exit(1)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("node: create data dir: %w", err)
	}
	db, err := storage.Open(cfg.DataDir, storage.Options{CacheBytes: cfg.CacheBytes, Logger: log})
	if err != nil {
		return nil, err
	}
	f, err := fsm.New(machines(db, cfg)...)
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := f.Load(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("node: load state: %w", err)
	}
	j := journal.NewLocal(db, f, journal.LocalOptions{
		Durability:    journal.Durability(cfg.Durability),
		FlushInterval: cfg.FlushInterval,
	}, fatal)
	n := New(f, j, Options{MaxWaiters: cfg.MaxWaiters})
	return &Stack{Node: n, db: db, journal: j}, nil
}

// Close stops the node, syncs and closes the journal, then the database.
func (s *Stack) Close() error {
	s.Node.Close()
	jerr := s.journal.Close()
	derr := s.db.Close()
	if jerr != nil {
		return jerr
	}
	return derr
}
