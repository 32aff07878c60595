package action

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/fsm"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// Limits and defaults (SEMANTICS §5, §6, §8.2). A value over a limit is
// BAD_REQUEST unless noted.
const (
	// MaxNameBytes bounds action names, worker IDs, task types and
	// idempotency keys (each 1–256 bytes).
	MaxNameBytes = 256
	// MaxInputBytes bounds an invoke input and a completion result.
	MaxInputBytes = wire.MaxTaskDataBytes
	// MaxErrorBytes bounds a fail message.
	MaxErrorBytes = wire.MaxFailMessageBytes
	// MaxDescriptionBytes bounds an action description.
	MaxDescriptionBytes = 4096
	// MaxTaskTypes bounds the task types of one register or await.
	MaxTaskTypes = 256
	// MaxAwaitBatch bounds the tasks one await with COUNT claims (clamped);
	// MaxAwaitBatchBytes stops a batch early once its inputs pass it
	// (a batch always holds at least one task).
	MaxAwaitBatch      = 100
	MaxAwaitBatchBytes = 16 << 20
	// MaxLeaseMs bounds an action timeout, an await's TIMEOUT_MS and a
	// touch's extend_ms (24 h).
	MaxLeaseMs = 24 * 3600 * 1000
	// MaxDelayMs bounds an invoke's delay_ms (30 days).
	MaxDelayMs = 30 * 24 * 3600 * 1000
	// MaxRetriesLimit bounds an action's max_retries.
	MaxRetriesLimit = 100_000
	// DefaultTimeoutMs, DefaultMaxRetries and DefaultPriority are what the
	// SDKs send when the caller says nothing (the wire always carries a value).
	DefaultTimeoutMs  = 30_000
	DefaultMaxRetries = 3
	DefaultPriority   = 10
	// BackoffBaseMs and BackoffMaxMs shape the retry delay after a failed
	// attempt a: min(BackoffBaseMs × 2^(a−1), BackoffMaxMs).
	BackoffBaseMs = 1000
	BackoffMaxMs  = 300_000
	// UnhealthyAfterMs is the silence after which a worker is listed unhealthy.
	UnhealthyAfterMs = 90_000
	// RetentionMs is how long a terminal run (and its idempotency key) is
	// kept before the pulse may purge it.
	RetentionMs = 24 * 3600 * 1000
	// ListLimitDefault and ListLimitMax shape action and worker lists
	// (the limit is clamped, never rejected).
	ListLimitDefault = 100
	ListLimitMax     = 1000
	// TimedOutMessage is the error recorded when a lease expires.
	TimedOutMessage = "timed out"
)

// Capacity limits: past them a request that would create one more is
// answered OVERLOADED.
const (
	DefaultMaxActions  = 100_000
	DefaultMaxWorkers  = 100_000
	DefaultMaxLiveRuns = 2_000_000
)

// purgeBatch bounds the terminal runs one pulse deletes, keeping each pulse
// short; the rest go in the next ones.
const purgeBatch = 1000

// inputCacheBytes: inputs up to this size stay in memory while the run is
// live, so claiming one needs no storage read.
const inputCacheBytes = 1024

// Limits are the capacity limits of a Machine.
type Limits struct {
	MaxActions  int
	MaxWorkers  int
	MaxLiveRuns int
}

// Machine is the action/run/worker state machine. mu guards everything
// below it: Apply and Load hold it exclusively, reads and NextDue shared.
type Machine struct {
	db     storage.Reader
	limits Limits

	// reads keeps status and lists off a group that is half applied, so
	// they never see a run, claim or action storage does not have yet.
	reads fsm.ReadGate

	mu           sync.RWMutex
	lastMs       int64                            // latest command time seen; time never goes back
	nextSeq      uint64                           // last run sequence issued
	actions      map[string]map[string]*actionRec // ns -> name -> action
	nActions     int
	runs         map[uint64]*run        // live runs
	ready        map[string]*readyQueue // ns 0x00 task type -> claimable runs
	timers       timerHeap              // backoffs, delays and leases
	workers      map[string]*worker     // ns 0x00 worker id -> worker
	terminalHead int64                  // ended_ms of the oldest retained terminal run; 0 = none
}

// NewWithLimits returns a machine reading committed state from db, with
// capacity limits l; zero fields take the defaults.
func NewWithLimits(db storage.Reader, l Limits) *Machine {
	if l.MaxActions <= 0 {
		l.MaxActions = DefaultMaxActions
	}
	if l.MaxWorkers <= 0 {
		l.MaxWorkers = DefaultMaxWorkers
	}
	if l.MaxLiveRuns <= 0 {
		l.MaxLiveRuns = DefaultMaxLiveRuns
	}
	m := &Machine{db: db, limits: l}
	m.reset()
	return m
}

func (m *Machine) reset() {
	m.lastMs, m.nextSeq, m.nActions, m.terminalHead = 0, 0, 0, 0
	m.actions = map[string]map[string]*actionRec{}
	m.runs = map[uint64]*run{}
	m.ready = map[string]*readyQueue{}
	m.timers = nil
	m.workers = map[string]*worker{}
}

// Handlers implements fsm.Machine.
func (m *Machine) Handlers() map[wire.Op]command.Handler {
	return map[wire.Op]command.Handler{
		wire.OpActionRegister: {Kind: command.Write},
		wire.OpActionInvoke:   {Kind: command.Write},
		wire.OpActionDelete:   {Kind: command.Write},
		wire.OpActionStatus:   {Kind: command.Read, Read: m.reads.Read(m.status), WaitKeys: statusWaitKeys},
		wire.OpActionList:     {Kind: command.Read, Read: m.reads.Read(m.listActions)},
		wire.OpWorkerRegister: {Kind: command.Write},
		wire.OpWorkerAwait:    {Kind: command.Write, WaitKeys: awaitWaitKeys},
		wire.OpWorkerComplete: {Kind: command.Write},
		wire.OpWorkerFail:     {Kind: command.Write},
		wire.OpWorkerTouch:    {Kind: command.Write},
		wire.OpWorkerList:     {Kind: command.Read, Read: m.reads.Read(m.listWorkers)},
	}
}

// WaitKey is the key an await on (ns, taskType) parks under; invokes and
// ending backoffs signal it.
func WaitKey(ns, taskType string) string { return "action\x00" + ns + "\x00" + taskType }

// RunWaitKey is the key a blocking status of run seq in ns parks under;
// the run's end signals it.
func RunWaitKey(ns string, seq uint64) string {
	return "action-run\x00" + ns + "\x00" + strconv.FormatUint(seq, 10)
}

func statusWaitKeys(cmd *command.Command) []string {
	seq, _ := parseRunID(cmd.Key) // a bad ID is answered NOT_FOUND at once
	return []string{RunWaitKey(cmd.Namespace, seq)}
}

func awaitWaitKeys(cmd *command.Command) []string {
	if cmd.Options.Flag(wire.TagCompletions) {
		// Completions are applied by the first attempt and answered with
		// the claims: a call carrying them never waits (a retry would
		// apply them again, later).
		return nil
	}
	types, err := wire.DecodeTaskTypes(cmd.Value)
	if err != nil || len(types) == 0 {
		// Apply will reject the call; the node still needs a key to park on.
		return []string{WaitKey(cmd.Namespace, "")}
	}
	keys := make([]string, 0, len(types))
	seen := make(map[string]bool, len(types))
	for _, t := range types {
		if !seen[t] {
			seen[t] = true
			keys = append(keys, WaitKey(cmd.Namespace, t))
		}
	}
	return keys
}

// NextDue implements fsm.Machine: the earliest timer, or the time the
// oldest terminal run may be purged.
func (m *Machine) NextDue() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var due int64
	if len(m.timers) > 0 {
		due = m.timers[0].due()
	}
	if m.terminalHead != 0 {
		if p := m.terminalHead + RetentionMs; due == 0 || p < due {
			due = p
		}
	}
	return due * 1e6
}

// Committed implements fsm.Committer: the group is in storage, so reads
// may see it.
func (m *Machine) Committed() { m.reads.Committed() }

// Apply implements fsm.Machine. Due timers are applied first, whatever the
// op, so every write sees expired leases and ended backoffs.
func (m *Machine) Apply(cmd *command.Command, b storage.Batch) command.Result {
	m.reads.Applying()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := max(cmd.TimeMs(), m.lastMs)
	m.lastMs = now
	t := txn{m: m, b: b, now: now, ns: cmd.Namespace}
	t.advance()
	var r command.Result
	switch op := wire.Op(cmd.Op); {
	case cmd.Op == command.OpPulse:
		t.purge()
	case op == wire.OpActionRegister:
		r = t.register(cmd)
	case op == wire.OpActionDelete:
		r = t.deleteAction(cmd)
	case op == wire.OpActionInvoke:
		r = t.invoke(cmd)
	case op == wire.OpWorkerRegister:
		r = t.registerWorker(cmd)
	case op == wire.OpWorkerAwait:
		r = t.await(cmd)
	case op == wire.OpWorkerComplete:
		r = t.complete(cmd)
	case op == wire.OpWorkerFail:
		r = t.fail(cmd)
	case op == wire.OpWorkerTouch:
		r = t.touch(cmd)
	}
	if t.err != nil {
		// What the command changed before the failure stays changed (the
		// batch commits), so its wake-ups still go out.
		r = command.Fail(wire.Errorf(wire.StatusInternal, "action: %v", t.err))
	}
	r.Wake = append(r.Wake, t.wake...)
	return r
}

// Load implements fsm.Machine: it rebuilds every in-memory index from
// committed state. Pending runs all start in the timer heap; the first
// Apply moves the claimable ones to their ready heaps.
func (m *Machine) Load(r storage.Reader) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reset()
	if v, err := r.Get(metaKey()); err == nil {
		if len(v) < 9 || v[0] != recordFormat {
			return fmt.Errorf("action: load counter: %w", errCorrupt)
		}
		m.nextSeq = binary.LittleEndian.Uint64(v[1:])
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("action: load counter: %w", err)
	}
	// The counter is persisted only when runs are purged; otherwise the
	// newest run record holds the highest sequence issued.
	lo := []byte{prefix, tagRun}
	err := r.Iterate(lo, storage.PrefixEnd(lo), true, func(k, _ []byte) bool {
		if len(k) == 10 {
			m.nextSeq = max(m.nextSeq, binary.BigEndian.Uint64(k[2:]))
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("action: load counter: %w", err)
	}
	var derr error
	lo = []byte{prefix, tagAction}
	err = r.Iterate(lo, storage.PrefixEnd(lo), false, func(k, v []byte) bool {
		ns, name, ok := splitNsKey(k)
		if !ok {
			derr = errCorrupt
			return false
		}
		a, err := decodeAction(name, v)
		if err != nil {
			derr = err
			return false
		}
		m.putAction(ns, a)
		return true
	})
	if err = errors.Join(err, derr); err != nil {
		return fmt.Errorf("action: load actions: %w", err)
	}
	lo = []byte{prefix, tagWorker}
	err = r.Iterate(lo, storage.PrefixEnd(lo), false, func(k, v []byte) bool {
		ns, id, ok := splitNsKey(k)
		if !ok {
			derr = errCorrupt
			return false
		}
		w, err := decodeWorker(ns, id, v)
		if err != nil {
			derr = err
			return false
		}
		m.workers[ns+"\x00"+id] = w
		return true
	})
	if err = errors.Join(err, derr); err != nil {
		return fmt.Errorf("action: load workers: %w", err)
	}
	lo = []byte{prefix, tagLive}
	err = r.Iterate(lo, storage.PrefixEnd(lo), false, func(k, v []byte) bool {
		if len(k) != 10 {
			derr = errCorrupt
			return false
		}
		seq := binary.BigEndian.Uint64(k[2:])
		if err := m.loadRun(r, seq, bytes.Clone(v)); err != nil {
			derr = fmt.Errorf("run %d: %w", seq, err)
			return false
		}
		return true
	})
	if err = errors.Join(err, derr); err != nil {
		return fmt.Errorf("action: load live runs: %w", err)
	}
	lo = []byte{prefix, tagRetention}
	err = r.Iterate(lo, storage.PrefixEnd(lo), false, func(k, _ []byte) bool {
		if len(k) == 18 {
			m.terminalHead = int64(binary.BigEndian.Uint64(k[2:10]))
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("action: load retention index: %w", err)
	}
	return nil
}

// loadRun loads the live run seq whose live marker holds marker: the
// marker's format byte and, for a small input, the input; an empty marker
// (written before inputs rode in it) means the input has its own key.
func (m *Machine) loadRun(rd storage.Reader, seq uint64, marker []byte) error {
	v, err := rd.Get(seqKey(tagRun, seq))
	if err != nil {
		return err
	}
	r, err := decodeRun(seq, v)
	if err != nil {
		return err
	}
	if r.state.Terminal() {
		return errCorrupt
	}
	switch small := r.inputLen <= inputCacheBytes; {
	case len(marker) == 0:
		r.inputKey = true
		if small {
			if r.input, err = rd.Get(seqKey(tagInput, seq)); err != nil {
				return err
			}
		}
	case marker[0] != recordFormat:
		return errCorrupt
	case small:
		if len(marker) != 1+int(r.inputLen) {
			return errCorrupt
		}
		r.input = marker[1:]
	default:
		r.inputKey = true
	}
	m.runs[seq] = r
	m.timers.Add(r)
	if r.state == wire.RunRunning {
		if w := m.workers[r.ns+"\x00"+r.holder]; w != nil {
			w.held[seq] = r
		}
	}
	return nil
}

// splitNsKey splits prefix tag ns 0x00 name.
func splitNsKey(k []byte) (ns, name string, ok bool) {
	if len(k) < 3 {
		return "", "", false
	}
	rest := k[2:]
	for i, c := range rest {
		if c == 0 {
			return string(rest[:i]), string(rest[i+1:]), true
		}
	}
	return "", "", false
}

func (m *Machine) putAction(ns string, a *actionRec) {
	byName := m.actions[ns]
	if byName == nil {
		byName = map[string]*actionRec{}
		m.actions[ns] = byName
	}
	if byName[a.name] == nil {
		m.nActions++
	}
	byName[a.name] = a
}

// backoff is the delay before a run whose attempt a failed may be claimed
// again: base × 2^(a−1), capped.
func backoff(baseMs, attempt uint32) int64 {
	d := int64(baseMs)
	for i := uint32(1); i < attempt && d < BackoffMaxMs; i++ {
		d *= 2
	}
	return min(d, BackoffMaxMs)
}
