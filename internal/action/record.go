package action

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/floruntime/flo/wire"
)

// errCorrupt marks a stored record this version cannot decode.
var errCorrupt = errors.New("action: corrupt record")

// recordFormat is the first byte of every stored value.
const recordFormat = 1

// Key prefixes under 'a' (see the package doc).
const (
	prefix       = 'a'
	tagMeta      = 'n'
	tagAction    = 'a'
	tagRun       = 'r'
	tagInput     = 'p'
	tagLive      = 'l'
	tagRetention = 't'
	tagIdem      = 'i'
	tagWorker    = 'w'
)

func seqKey(tag byte, seq uint64) []byte {
	k := make([]byte, 10)
	k[0], k[1] = prefix, tag
	binary.BigEndian.PutUint64(k[2:], seq)
	return k
}

func metaKey() []byte { return []byte{prefix, tagMeta} }

// nsKey is prefix tag ns 0x00 name. Namespaces never contain NUL.
func nsKey(tag byte, ns string, name []byte) []byte {
	k := make([]byte, 0, 3+len(ns)+len(name))
	k = append(k, prefix, tag)
	k = append(k, ns...)
	k = append(k, 0)
	return append(k, name...)
}

func idemKey(ns, action string, key []byte) []byte {
	k := make([]byte, 0, 5+len(ns)+len(action)+len(key))
	k = append(k, prefix, tagIdem)
	k = append(k, ns...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint16(k, uint16(len(action)))
	k = append(k, action...)
	return append(k, key...)
}

func retentionKey(endedMs int64, seq uint64) []byte {
	k := make([]byte, 18)
	k[0], k[1] = prefix, tagRetention
	binary.BigEndian.PutUint64(k[2:], uint64(max(endedMs, 0)))
	binary.BigEndian.PutUint64(k[10:], seq)
	return k
}

// runIDPrefix starts every run ID; the rest is the decimal run sequence.
const runIDPrefix = "run-"

// RunID formats a run sequence number as the opaque ID clients see.
func RunID(seq uint64) string { return runIDPrefix + strconv.FormatUint(seq, 10) }

// parseRunID returns the sequence of a run ID, or false for anything this
// server could not have issued.
func parseRunID(id []byte) (uint64, bool) {
	s, ok := strings.CutPrefix(string(id), runIDPrefix)
	if !ok || s == "" || s[0] == '0' || len(s) > 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	return seq, err == nil
}

// actionRec is a registered action.
type actionRec struct {
	name       string
	typ        wire.ActionType
	timeoutMs  uint32
	maxRetries uint32
	version    uint32
	createdMs  int64
	updatedMs  int64
	hasDesc    bool
	desc       []byte
}

// encode: [fmt][type:u8][timeout_ms:u32][max_retries:u32][version:u32]
// [created_ms:i64][updated_ms:i64][has_desc:u8][desc: rest]
func (a *actionRec) encode() []byte {
	out := make([]byte, 0, 32+len(a.desc))
	out = append(out, recordFormat, byte(a.typ))
	out = binary.LittleEndian.AppendUint32(out, a.timeoutMs)
	out = binary.LittleEndian.AppendUint32(out, a.maxRetries)
	out = binary.LittleEndian.AppendUint32(out, a.version)
	out = binary.LittleEndian.AppendUint64(out, uint64(a.createdMs))
	out = binary.LittleEndian.AppendUint64(out, uint64(a.updatedMs))
	if a.hasDesc {
		out = append(out, 1)
		return append(out, a.desc...)
	}
	return append(out, 0)
}

func decodeAction(name string, b []byte) (*actionRec, error) {
	d := wire.NewDecoder(b)
	if d.U8() != recordFormat {
		return nil, errCorrupt
	}
	a := &actionRec{name: name, typ: wire.ActionType(d.U8()), timeoutMs: d.U32(), maxRetries: d.U32(), version: d.U32()}
	a.createdMs, a.updatedMs = d.I64(), d.I64()
	a.hasDesc = d.U8() != 0
	if a.hasDesc {
		a.desc = append([]byte{}, d.Rest()...)
	}
	if d.Err() != nil {
		return nil, errCorrupt
	}
	return a, nil
}

// run is one invocation. Live runs are held in memory (Machine.runs);
// terminal runs only in storage.
type run struct {
	seq        uint64
	ns         string
	action     string
	idem       []byte // nil: none
	state      wire.RunState
	priority   uint8
	timeoutMs  uint32 // snapshot of the action's settings at invoke
	maxRetries uint32
	backoffMs  uint32 // retry base delay
	attempt    uint32 // claims so far
	createdMs  int64
	startedMs  int64 // latest claim
	endedMs    int64 // terminal time
	readyMs    int64 // when the run is (or becomes) claimable
	leaseMs    int64 // lease deadline while running
	holder     string
	hasErr     bool
	errMsg     []byte
	hasResult  bool
	result     []byte // only in decoded terminal records
	inputLen   uint32
	input      []byte // when inputLen <= inputCacheBytes: the live marker's tail
	inputKey   bool   // the input is stored under its own key ('a' 'p')

	q  *readyQueue // non-nil while in a ready heap
	qi int         // index in q.runs
	ti int         // index in the timer heap, -1 when absent
}

// due is the time the run's timer fires: its lease deadline while running,
// otherwise when it becomes claimable.
func (r *run) due() int64 {
	if r.state == wire.RunRunning {
		return r.leaseMs
	}
	return r.readyMs
}

// encode: [fmt][state:u8][priority:u8][timeout_ms:u32][max_retries:u32]
// [backoff_ms:u32][attempt:u32][input_len:u32][created_ms:i64][started_ms:i64]
// [ended_ms:i64][ready_ms:i64][lease_ms:i64][ns:b16][action:b16]
// [has_idem:u8][idem:b16][holder:b16][has_err:u8][err:b32][has_result:u8][result:b32]
func (r *run) encode() []byte {
	out := make([]byte, 0, 96+len(r.ns)+len(r.action)+len(r.idem)+len(r.holder)+len(r.errMsg)+len(r.result))
	out = append(out, recordFormat, byte(r.state), r.priority)
	for _, v := range [...]uint32{r.timeoutMs, r.maxRetries, r.backoffMs, r.attempt, r.inputLen} {
		out = binary.LittleEndian.AppendUint32(out, v)
	}
	for _, v := range [...]int64{r.createdMs, r.startedMs, r.endedMs, r.readyMs, r.leaseMs} {
		out = binary.LittleEndian.AppendUint64(out, uint64(v))
	}
	out = wire.AppendBytes16(out, []byte(r.ns))
	out = wire.AppendBytes16(out, []byte(r.action))
	out = append(out, flag(r.idem != nil))
	out = wire.AppendBytes16(out, r.idem)
	out = wire.AppendBytes16(out, []byte(r.holder))
	out = append(out, flag(r.hasErr))
	out = wire.AppendBytes32(out, r.errMsg)
	out = append(out, flag(r.hasResult))
	return wire.AppendBytes32(out, r.result)
}

func decodeRun(seq uint64, b []byte) (*run, error) {
	d := wire.NewDecoder(b)
	if d.U8() != recordFormat {
		return nil, errCorrupt
	}
	r := &run{seq: seq, state: wire.RunState(d.U8()), priority: d.U8(), ti: -1}
	r.timeoutMs, r.maxRetries, r.backoffMs, r.attempt, r.inputLen = d.U32(), d.U32(), d.U32(), d.U32(), d.U32()
	r.createdMs, r.startedMs, r.endedMs, r.readyMs, r.leaseMs = d.I64(), d.I64(), d.I64(), d.I64(), d.I64()
	r.ns = string(d.Bytes16())
	r.action = string(d.Bytes16())
	hasIdem := d.U8() != 0
	if idem := d.Bytes16(); hasIdem {
		r.idem = append([]byte{}, idem...)
	}
	r.holder = string(d.Bytes16())
	r.hasErr = d.U8() != 0
	if e := d.Bytes32(); r.hasErr {
		r.errMsg = append([]byte{}, e...)
	}
	r.hasResult = d.U8() != 0
	if res := d.Bytes32(); r.hasResult {
		r.result = append([]byte{}, res...)
	}
	if d.Err() != nil {
		return nil, errCorrupt
	}
	return r, nil
}

// typeStat counts one worker's work on one task type.
type typeStat struct {
	name      string
	runs      uint64
	fails     uint64
	lastRunMs int64
}

// worker is a registered (or implicitly registered) worker.
type worker struct {
	ns, id       string
	capacity     uint32
	registeredMs int64
	lastSeenMs   int64
	completed    uint64
	failed       uint64
	types        []typeStat
	held         map[uint64]*run // runs this worker holds a lease on
}

func (w *worker) stat(taskType string) *typeStat {
	for i := range w.types {
		if w.types[i].name == taskType {
			return &w.types[i]
		}
	}
	return nil
}

// encode: [fmt][capacity:u32][registered_ms:i64][last_seen_ms:i64]
// [completed:u64][failed:u64][count:u16] × ([name:b16][runs:u64][fails:u64][last_run_ms:i64])
func (w *worker) encode() []byte {
	out := make([]byte, 0, 40+len(w.types)*40)
	out = append(out, recordFormat)
	out = binary.LittleEndian.AppendUint32(out, w.capacity)
	out = binary.LittleEndian.AppendUint64(out, uint64(w.registeredMs))
	out = binary.LittleEndian.AppendUint64(out, uint64(w.lastSeenMs))
	out = binary.LittleEndian.AppendUint64(out, w.completed)
	out = binary.LittleEndian.AppendUint64(out, w.failed)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(w.types)))
	for _, t := range w.types {
		out = wire.AppendBytes16(out, []byte(t.name))
		out = binary.LittleEndian.AppendUint64(out, t.runs)
		out = binary.LittleEndian.AppendUint64(out, t.fails)
		out = binary.LittleEndian.AppendUint64(out, uint64(t.lastRunMs))
	}
	return out
}

func decodeWorker(ns, id string, b []byte) (*worker, error) {
	d := wire.NewDecoder(b)
	if d.U8() != recordFormat {
		return nil, errCorrupt
	}
	w := &worker{ns: ns, id: id, capacity: d.U32(), registeredMs: d.I64(), lastSeenMs: d.I64(), held: map[uint64]*run{}}
	w.completed, w.failed = d.U64(), d.U64()
	n := int(d.U16())
	for i := 0; i < n && d.Err() == nil; i++ {
		w.types = append(w.types, typeStat{name: string(d.Bytes16()), runs: d.U64(), fails: d.U64(), lastRunMs: d.I64()})
	}
	if d.Err() != nil {
		return nil, errCorrupt
	}
	return w, nil
}

func flag(v bool) byte {
	if v {
		return 1
	}
	return 0
}
