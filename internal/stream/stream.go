package stream

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/indexheap"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// Limits of the stream primitive (SEMANTICS §8.2). Counts are clamped where
// SEMANTICS says so; everything else over a limit is BAD_REQUEST, or
// OVERLOADED for capacity.
const (
	MaxNameBytes          = 256                 // stream, group and consumer names
	MaxPartitionKeyBytes  = wire.MaxOptionBytes // one TLV option
	MaxPayloadBytes       = 16 << 20            // one record
	ReadCountDefault      = 100
	ReadCountMax          = 1000
	GroupReadCountDefault = 10
	GroupReadCountMax     = 1000
	AckTimeoutDefault     = 30 * time.Second
	AckTimeoutMax         = 12 * time.Hour
	MaxDeliverDefault     = 10
	MaxDeliverMax         = 255 // MAX_DELIVER is a u8 option
	DeadListDefault       = 100
	DeadListMax           = 1000
	// MaxOffsetsPerCall bounds the offset list of a group ack, nack, touch
	// or DLQ requeue, as for a queue's seq lists.
	MaxOffsetsPerCall = wire.MaxSeqListLen
)

// Limits are the capacity limits of a Machine; the zero value of a field
// means its default.
type Limits struct {
	// MaxStreams bounds the streams of the whole server (default 1,000,000).
	// Creating one more is OVERLOADED.
	MaxStreams int
	// MaxGroupsPerStream bounds the consumer groups of one stream
	// (default 1,000). Creating one more is OVERLOADED.
	MaxGroupsPerStream int
	// MaxPendingPerGroup bounds a group's PEL (default 100,000): group_read
	// hands out no new record while the PEL is full, like JetStream's
	// MaxAckPending; redeliveries are still served.
	MaxPendingPerGroup int
	// MaxDeadLetters bounds a group's dead-letter list (default 10,000, as
	// for queues); past it the lowest offset is evicted.
	MaxDeadLetters int
	// MaxReplyBytes bounds one record list (read, group read, dead-letter
	// list; default 64 MiB, as for queues): it stops early, with at least
	// one record, once it passes this. 1,000 records of 16 MiB would not
	// fit a frame.
	MaxReplyBytes int
}

// DefaultLimits returns the limits New uses.
func DefaultLimits() Limits {
	return Limits{MaxStreams: 1_000_000, MaxGroupsPerStream: 1_000, MaxPendingPerGroup: 100_000, MaxDeadLetters: 10_000, MaxReplyBytes: command.MaxReplyBytes}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxStreams <= 0 {
		l.MaxStreams = d.MaxStreams
	}
	if l.MaxGroupsPerStream <= 0 {
		l.MaxGroupsPerStream = d.MaxGroupsPerStream
	}
	if l.MaxPendingPerGroup <= 0 {
		l.MaxPendingPerGroup = d.MaxPendingPerGroup
	}
	if l.MaxReplyBytes <= 0 {
		l.MaxReplyBytes = d.MaxReplyBytes
	}
	if l.MaxDeadLetters <= 0 {
		l.MaxDeadLetters = d.MaxDeadLetters
	}
	return l
}

// Machine is the stream state machine. It is safe for concurrent use: Apply
// runs on the journal goroutine, reads on connection goroutines.
type Machine struct {
	db  storage.Reader
	lim Limits

	mu sync.RWMutex
	// streams maps ns 0x00 name to the stream's counters.
	streams map[string]*log
	// deadlines holds every delivered PEL entry of every group, earliest
	// deadline first.
	deadlines deadlineHeap

	// tails caches the newest records of each stream (tail.go).
	tails tailCache

	// Scratch buffers for Apply, which runs on one goroutine at a time.
	kbuf, vbuf, mapKey []byte
}

// log is one stream's in-memory state. Records first..last exist (dense);
// first == last+1 means the stream is empty.
type log struct {
	ns, name string
	prefix   []byte
	// wake is returned as Result.Wake by every append: the stream's key and
	// every group's key. It is replaced, never modified, when a group is
	// added, since the node reads it after the command commits.
	wake  []string
	first uint64
	last  uint64 // newest offset applied
	// visible is the newest offset committed (Committed): where readers'
	// tail is, since the records after it are not in storage yet.
	visible uint64
	// visibleCum is cum as of visible: what info counts bytes up to.
	visibleCum uint64
	bytes      uint64 // key+payload bytes of the retained records
	cum        uint64 // key+payload bytes of every record ever appended
	maxTs      int64  // largest timestamp ever appended
	serverTs   int64  // latest server-assigned timestamp
	groups     map[string]*group
	tail       tail // newest committed records, encoded
}

func (l *log) count() uint64 {
	if l.last < l.first {
		return 0
	}
	return l.last - l.first + 1
}

// group is one consumer group's in-memory state.
type group struct {
	log        *log
	name       string
	wakeKey    string
	gprefix    []byte // prefix 'g' group
	dprefix    []byte // prefix 'd' group
	cursor     uint64 // highest offset ever handed out
	ackTimeout int64  // ns
	maxDeliver uint32
	pel        map[uint64]*entry
	ready      readyHeap
	dead       map[uint64]struct{}
	deadOrder  offsetHeap // lowest offset first; may hold stale offsets
}

// entry is one pending record of a group.
type entry struct {
	g          *group
	offset     uint64
	consumer   string
	deliveries uint32
	deadline   int64 // ns; meaningful while in the deadline heap
	dIdx       int   // index in Machine.deadlines, -1 if absent
	rIdx       int   // index in group.ready, -1 if absent
}

// NewWithLimits returns a stream machine reading committed state from db,
// with the given capacity limits (zero fields take the defaults).
func NewWithLimits(db storage.Reader, lim Limits) *Machine {
	return &Machine{db: db, lim: lim.withDefaults(), streams: make(map[string]*log), tails: tailCache{budget: TailCacheBytes, maxRecord: TailRecordMax, segmentSize: TailSegmentBytes}}
}

// Committed implements fsm.Committer: the records the group appended are
// in storage now, so reads may be served them from the tail cache.
func (m *Machine) Committed() {
	if len(m.tails.appended) == 0 {
		return
	}
	m.mu.Lock()
	m.tails.publish()
	m.mu.Unlock()
}

// WaitKey is the key plain readers of a stream park under; every append
// signals it.
func WaitKey(ns string, name []byte) string {
	return "stream\x00" + ns + "\x00" + string(name)
}

// GroupWaitKey is the key a group's readers park under. Every append signals
// it, and so does anything that makes pending entries redeliverable or gives
// a full PEL room. Each group has its own key because the node hands a
// signal to one parked write at a time: a reader of one group must not
// absorb the wake-up another group needs for the same append.
func GroupWaitKey(ns string, name, group []byte) string {
	return "streamgroup\x00" + ns + "\x00" + string(name) + "\x00" + string(group)
}

// Handlers implements fsm.Machine.
func (m *Machine) Handlers() map[wire.Op]command.Handler {
	return map[wire.Op]command.Handler{
		wire.OpStreamAppend:          {Kind: command.Write},
		wire.OpStreamRead:            {Kind: command.Read, Read: m.read, WaitKeys: readWaitKeys},
		wire.OpStreamTrim:            {Kind: command.Write},
		wire.OpStreamInfo:            {Kind: command.Read, Read: m.info},
		wire.OpStreamGroupJoin:       {Kind: command.Write},
		wire.OpStreamGroupLeave:      {Kind: command.Write},
		wire.OpStreamGroupRead:       {Kind: command.Write, WaitKeys: groupReadWaitKeys},
		wire.OpStreamGroupAck:        {Kind: command.Write},
		wire.OpStreamGroupNack:       {Kind: command.Write},
		wire.OpStreamGroupTouch:      {Kind: command.Write},
		wire.OpStreamGroupDLQList:    {Kind: command.Read, Read: m.deadList},
		wire.OpStreamGroupDLQRequeue: {Kind: command.Write},
	}
}

func readWaitKeys(cmd *command.Command) []string {
	return []string{WaitKey(cmd.Namespace, cmd.Key)}
}

func groupReadWaitKeys(cmd *command.Command) []string {
	g, _, err := wire.DecodeGroupConsumer(cmd.Value)
	if err != nil {
		return []string{WaitKey(cmd.Namespace, cmd.Key)} // the attempt fails anyway
	}
	return []string{GroupWaitKey(cmd.Namespace, cmd.Key, g)}
}

// Apply implements fsm.Machine.
func (m *Machine) Apply(cmd *command.Command, b storage.Batch) command.Result {
	if cmd.Op == command.OpPulse {
		m.mu.Lock()
		defer m.mu.Unlock()
		return command.Result{Wake: m.expireDue(cmd.Time, b)}
	}
	switch wire.Op(cmd.Op) {
	case wire.OpStreamAppend:
		return m.append(cmd, b)
	case wire.OpStreamTrim:
		return m.trim(cmd, b)
	case wire.OpStreamGroupJoin, wire.OpStreamGroupLeave, wire.OpStreamGroupRead,
		wire.OpStreamGroupAck, wire.OpStreamGroupNack, wire.OpStreamGroupTouch, wire.OpStreamGroupDLQRequeue:
		return m.applyGroup(cmd, b)
	}
	return command.Fail(wire.Errorf(wire.StatusBadRequest, "stream: unknown opcode 0x%02x", uint8(cmd.Op)))
}

// NextDue implements fsm.Machine: the earliest ack deadline of any group.
func (m *Machine) NextDue() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.deadlines) == 0 {
		return 0
	}
	return m.deadlines[0].deadline
}

func validateName(what string, name []byte) error {
	if len(name) == 0 {
		return wire.Errorf(wire.StatusBadRequest, "%s name must not be empty", what)
	}
	if len(name) > MaxNameBytes {
		return wire.Errorf(wire.StatusBadRequest, "%s name is %d bytes, over the %d-byte limit", what, len(name), MaxNameBytes)
	}
	return nil
}

func internal(err error) command.Result {
	return command.Fail(wire.Errorf(wire.StatusInternal, "stream: %v", err))
}

// lookup returns the stream (ns, name) or nil. Callers hold mu. It does not
// allocate.
func (m *Machine) lookup(ns string, name []byte) *log {
	k := append(append(append(m.mapKey[:0], ns...), 0), name...)
	m.mapKey = k
	return m.streams[string(k)]
}

// lookupRead is lookup for readers, which must not share the scratch buffer.
// Callers hold mu for reading.
func (m *Machine) lookupRead(ns string, name []byte) *log {
	return m.streams[ns+"\x00"+string(name)]
}

// create adds an empty stream. Callers hold mu.
func (m *Machine) create(ns string, name []byte) (*log, error) {
	if len(m.streams) >= m.lim.MaxStreams {
		return nil, wire.Errorf(wire.StatusOverloaded, "too many streams (limit %d)", m.lim.MaxStreams)
	}
	l := newLog(ns, string(name), streamPrefix(ns, name))
	m.streams[ns+"\x00"+string(name)] = l
	return l, nil
}

func newLog(ns, name string, prefix []byte) *log {
	return &log{
		ns: ns, name: name, prefix: prefix,
		wake:   []string{WaitKey(ns, []byte(name))},
		first:  1,
		groups: make(map[string]*group),
	}
}

// addGroup registers a new group on l and rebuilds l.wake.
func (l *log) addGroup(g *group) {
	l.groups[g.name] = g
	w := make([]string, 0, len(l.wake)+1)
	l.wake = append(append(w, l.wake...), g.wakeKey)
}

func newGroup(l *log, name string) *group {
	return &group{
		log:        l,
		name:       name,
		wakeKey:    GroupWaitKey(l.ns, []byte(l.name), []byte(name)),
		gprefix:    groupPrefix(l.prefix, name),
		dprefix:    deadPrefix(l.prefix, name),
		ackTimeout: int64(AckTimeoutDefault),
		maxDeliver: MaxDeliverDefault,
		pel:        make(map[uint64]*entry),
		dead:       make(map[uint64]struct{}),
	}
}

// Load implements fsm.Machine: it rebuilds every stream's counters and every
// group's cursor, PEL and dead-letter set with a few seeks per stream.
func (m *Machine) Load(r storage.Reader) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.streams = make(map[string]*log)
	m.deadlines = nil
	lower := []byte{prefixByte}
	upper := []byte{prefixByte + 1}
	for {
		var key []byte
		if err := r.Iterate(lower, upper, false, func(k, _ []byte) bool {
			key = append([]byte(nil), k...)
			return false
		}); err != nil {
			return fmt.Errorf("stream: load: %w", err)
		}
		if key == nil {
			return nil
		}
		ns, name, prefix, ok := parseStreamKey(key)
		if !ok {
			return fmt.Errorf("stream: load: unreadable key %x: %w", key, errCorrupt)
		}
		prefix = append([]byte(nil), prefix...)
		l := newLog(ns, name, prefix)
		if err := m.loadLog(r, l); err != nil {
			return fmt.Errorf("stream: load %s/%s: %w", ns, name, err)
		}
		m.streams[ns+"\x00"+name] = l
		lower = storage.PrefixEnd(prefix)
		if lower == nil {
			return nil
		}
	}
}

func (m *Machine) loadLog(r storage.Reader, l *log) error {
	var mt meta
	hasMeta := false
	if v, err := r.Get(metaKey(l.prefix)); err == nil {
		if mt, hasMeta = decodeMeta(v); !hasMeta {
			return errCorrupt
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if hasMeta {
		l.first, l.last, l.maxTs, l.serverTs, l.cum = mt.first, mt.last, mt.maxTs, mt.serverTs, mt.cum
	}
	end := recordsEnd(l.prefix)
	var bad bool
	// The newest record carries every running counter.
	err := r.Iterate(recordKey(l.prefix, 0), end, true, func(k, v []byte) bool {
		h, ok := decodeRecordHeader(v)
		if !ok {
			bad = true
			return false
		}
		if off := recordOffset(k); off > l.last || !hasMeta {
			l.last, l.maxTs, l.serverTs, l.cum = off, h.maxTsMs, h.serverTsMs, h.cumBytes
		}
		return false
	})
	if err != nil {
		return err
	}
	found := false
	err = r.Iterate(recordKey(l.prefix, l.first), end, false, func(k, v []byte) bool {
		h, ok := decodeRecordHeader(v)
		if !ok {
			bad = true
			return false
		}
		found = true
		l.first = recordOffset(k)
		l.bytes = l.cum - (h.cumBytes - h.size(v))
		return false
	})
	if err != nil {
		return err
	}
	if bad {
		return errCorrupt
	}
	if !found {
		l.first, l.bytes = l.last+1, 0
	}
	l.visible, l.visibleCum = l.last, l.cum
	return m.loadGroups(r, l)
}

func (m *Machine) loadGroups(r storage.Reader, l *log) error {
	groupOf := func(name string) *group {
		g := l.groups[name]
		if g == nil {
			g = newGroup(l, name)
			l.addGroup(g)
		}
		return g
	}
	lower := append(append([]byte(nil), l.prefix...), subGroup)
	base := len(lower)
	var bad error
	err := r.Iterate(lower, storage.PrefixEnd(lower), false, func(k, v []byte) bool {
		name, tail, ok := parseGroupKey(k[base:])
		if !ok || len(tail) == 0 {
			bad = errCorrupt
			return false
		}
		g := groupOf(name)
		switch {
		case tail[0] == groupMeta && len(tail) == 1:
			cursor, ack, md, ok := decodeGroup(v)
			if !ok {
				bad = errCorrupt
				return false
			}
			g.cursor, g.ackTimeout, g.maxDeliver = cursor, int64(ack)*int64(time.Millisecond), md
		case tail[0] == groupPending && len(tail) == 9:
			n, deadline, consumer, ok := decodeEntry(v)
			if !ok {
				bad = errCorrupt
				return false
			}
			e := &entry{g: g, offset: recordOffset(tail), consumer: consumer, deliveries: n, deadline: deadline, dIdx: -1, rIdx: -1}
			g.pel[e.offset] = e
			if deadline == 0 {
				heap.Push(&g.ready, e)
			} else {
				m.deadlines = append(m.deadlines, e)
				e.dIdx = len(m.deadlines) - 1
			}
		default:
			bad = errCorrupt
			return false
		}
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return err
	}
	heap.Init(&m.deadlines)
	lower = append(append([]byte(nil), l.prefix...), subDead)
	base = len(lower)
	err = r.Iterate(lower, storage.PrefixEnd(lower), false, func(k, _ []byte) bool {
		name, tail, ok := parseGroupKey(k[base:])
		if !ok || len(tail) != 8 {
			bad = errCorrupt
			return false
		}
		g := groupOf(name)
		off := recordOffset(tail)
		g.dead[off] = struct{}{}
		g.deadOrder = append(g.deadOrder, off) // keys ascend: already a heap
		return true
	})
	if err == nil {
		err = bad
	}
	return err
}

// deadlineHeap orders delivered entries by deadline, then offset.
type deadlineHeap = indexheap.Heap[*entry, byDeadline]

type byDeadline struct{}

func (byDeadline) Less(a, b *entry) bool {
	if a.deadline != b.deadline {
		return a.deadline < b.deadline
	}
	return a.offset < b.offset
}
func (byDeadline) Index(e *entry) *int { return &e.dIdx }

// readyHeap orders a group's redeliverable entries by offset.
type readyHeap = indexheap.Heap[*entry, byOffset]

type byOffset struct{}

func (byOffset) Less(a, b *entry) bool { return a.offset < b.offset }
func (byOffset) Index(e *entry) *int   { return &e.rIdx }

// offsetHeap is a min-heap of offsets.
type offsetHeap []uint64

func (h offsetHeap) Len() int           { return len(h) }
func (h offsetHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h offsetHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *offsetHeap) Push(x any)        { *h = append(*h, x.(uint64)) }
func (h *offsetHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}
