package journal

import (
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
)

// ErrClosed is returned by Submit after Close.
var ErrClosed = errors.New("journal: closed")

// Durability is the fsync policy of a Local journal.
type Durability string

const (
	// Sync acknowledges a command only once it is on disk. Commands that
	// arrive while one fsync is in flight share the next one (group commit).
	Sync Durability = "sync"
	// Interval acknowledges once applied and syncs every FlushInterval, so
	// a crash loses at most the last interval, like Redis appendfsync everysec.
	Interval Durability = "interval"
)

// LocalOptions configures a Local journal.
type LocalOptions struct {
	Durability    Durability
	FlushInterval time.Duration // Interval mode only
	// MaxGroupCommands and MaxGroupBytes bound one group commit.
	MaxGroupCommands int
	MaxGroupBytes    int
}

// Local is the single-node journal. Each group of commands is applied into
// one storage batch and committed with one write to Pebble's WAL, which is
// therefore the command log: a batch is recovered whole or not at all, so
// replay after a crash never half-applies a command. In Sync mode the next
// group is applied while the previous group's fsync is in flight.
type Local struct {
	db      *storage.DB
	applier Applier
	opts    LocalOptions

	submit chan Proposal
	synced chan syncedGroup
	wake   func(keys []string) []Proposal // see WakeWriters
	mu     sync.RWMutex                   // guards closed against concurrent Submit
	closed bool
	done   chan struct{}
	fatal  func(error)
}

// Proposal is a command with its done callback, as Submit takes them.
type Proposal struct {
	Cmd  *command.Command
	Done func(command.Result)
}

// WakeWriters sets the hook through which a group takes in the parked
// writes its own commands wake: after a command is applied, wake gets the
// keys its result signals and returns commands to apply next in the same
// group (a claim woken by an invoke, a dequeue woken by an enqueue), so one
// commit — and in Sync one fsync — covers both. Their done callbacks run
// like any other's, after the group is durable. wake runs on the apply
// goroutine and must not block or call Submit. Set it before the first
// Submit.
func (l *Local) WakeWriters(wake func(keys []string) []Proposal) { l.wake = wake }

type syncedGroup struct {
	wait    func() error
	props   []Proposal
	results []command.Result
}

// NewLocal starts a Local journal over db. fatal is called if the storage
// engine fails to commit, after which the in-memory state can no longer be
// trusted and the node must stop.
func NewLocal(db *storage.DB, applier Applier, o LocalOptions, fatal func(error)) *Local {
	if o.MaxGroupCommands <= 0 {
		o.MaxGroupCommands = 4096
	}
	if o.MaxGroupBytes <= 0 {
		o.MaxGroupBytes = 64 << 20
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	l := &Local{
		db:      db,
		applier: applier,
		opts:    o,
		submit:  make(chan Proposal, 8192),
		synced:  make(chan syncedGroup, 4),
		done:    make(chan struct{}),
		fatal:   fatal,
	}
	go l.applyLoop()
	return l
}

// Submit implements Journal.
func (l *Local) Submit(cmd *command.Command, done func(command.Result)) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	l.submit <- Proposal{Cmd: cmd, Done: done}
	return nil
}

// Close implements Journal.
func (l *Local) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.submit)
	l.mu.Unlock()
	<-l.done
	return l.db.Sync()
}

func (l *Local) applyLoop() {
	defer close(l.done)
	completer := make(chan struct{})
	if l.opts.Durability == Sync {
		go l.completeLoop(completer)
	} else {
		close(completer)
		// The flusher is stopped, and has returned, before done closes:
		// Close's caller may close the database next.
		stop, stopped := make(chan struct{}), make(chan struct{})
		defer func() { close(stop); <-stopped }()
		go l.flushLoop(stop, stopped)
	}
	for {
		first, ok := <-l.submit
		if !ok {
			break
		}
		props := []Proposal{first}
		size := len(first.Cmd.Value) + len(first.Cmd.Key)
		if len(l.submit) == 0 {
			// Let readers that are already running submit too, so the
			// group (and its one commit) serves more commands.
			runtime.Gosched()
		}
	drain:
		for len(props) < l.opts.MaxGroupCommands && size < l.opts.MaxGroupBytes {
			select {
			case p, ok := <-l.submit:
				if !ok {
					break drain
				}
				props = append(props, p)
				size += len(p.Cmd.Value) + len(p.Cmd.Key)
			default:
				break drain
			}
		}
		l.applyGroup(props)
	}
	if l.opts.Durability == Sync {
		close(l.synced)
		<-completer
	}
}

func (l *Local) applyGroup(props []Proposal) {
	b := l.db.NewBatch()
	results := make([]command.Result, 0, len(props))
	for i := 0; i < len(props); i++ { // props grows with woken writes
		r := l.applier.Apply(props[i].Cmd, b)
		results = append(results, r)
		if l.wake != nil && len(r.Wake) > 0 {
			// A woken write goes right after its waker: it was waiting
			// before anything later in the group arrived.
			props = slices.Insert(props, i+1, l.wake(r.Wake)...)
		}
	}
	if l.opts.Durability != Sync {
		if err := l.db.Commit(b, false); err != nil {
			l.fatal(err)
			return
		}
		l.applier.Committed()
		for i, p := range props {
			p.Done(results[i])
		}
		return
	}
	wait, err := l.db.CommitAsync(b)
	if err != nil {
		l.fatal(err)
		return
	}
	l.applier.Committed()
	l.synced <- syncedGroup{wait: wait, props: props, results: results}
}

// completeLoop waits for each group's fsync, in commit order, and then
// acknowledges its commands.
func (l *Local) completeLoop(done chan struct{}) {
	defer close(done)
	for g := range l.synced {
		if err := g.wait(); err != nil {
			l.fatal(err)
			return
		}
		for i, p := range g.props {
			p.Done(g.results[i])
		}
	}
}

func (l *Local) flushLoop(stop, stopped chan struct{}) {
	defer close(stopped)
	t := time.NewTicker(l.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := l.db.Sync(); err != nil {
				l.fatal(err)
				return
			}
		}
	}
}
