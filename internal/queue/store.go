package queue

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/floruntime/flo/internal/storage"
)

// Storage layout. Metadata and payloads live under different first bytes so
// that Load, which reads every metadata record, never reads a payload.
//
//	'q' ns 0x00 [name_len:u16 BE] name 'c'               -> counters
//	'q' ns 0x00 [name_len:u16 BE] name 'k' dedup_key     -> dedup record
//	'q' ns 0x00 [name_len:u16 BE] name 'm' [seq:u64 BE]  -> message metadata
//	'Q' ns 0x00 [name_len:u16 BE] name [seq:u64 BE]      -> payload (raw bytes)
//
// counters: [last_seq:u64][last_pos:u64][last_dlq:u64]
// dedup:    [seq:u64][until_ns:i64]
// metadata: [format:u8=1][state:u8][priority:u8][deliveries:u32][visibility_ms:u32]
//
//	[pos:u64][enqueued_ns:i64][due_ns:i64][dlq_pos:u64][dlq_at_ns:i64][reason_len:u16][reason]
//
// All integers in values are little-endian; times are Unix nanoseconds.
const (
	kindCounters = 'c'
	kindDedup    = 'k'
	kindMeta     = 'm'

	metaFormat    = 1
	metaFixedSize = 1 + 1 + 1 + 4 + 4 + 8 + 8 + 8 + 8 + 8 + 2
)

// ErrCorrupt reports a queue record that cannot be decoded.
var ErrCorrupt = errors.New("queue: corrupt record")

// prefix builds kind ns 0x00 [len:u16 BE] name.
func prefix(kind byte, ns, name string) []byte {
	p := make([]byte, 0, 4+len(ns)+len(name))
	p = append(p, kind)
	p = append(p, ns...)
	p = append(p, 0)
	p = binary.BigEndian.AppendUint16(p, uint16(len(name)))
	return append(p, name...)
}

// metaKey builds the metadata key of seq into the machine's key buffer. The
// result is valid until the next key is built; Batch.Set copies it.
func (m *Machine) metaKey(q *queue, seq uint64) []byte {
	k := append(append(m.kbuf[:0], q.meta...), kindMeta)
	m.kbuf = binary.BigEndian.AppendUint64(k, seq)
	return m.kbuf
}

// payloadKey builds the payload key of seq (see metaKey for lifetime).
func (m *Machine) payloadKey(q *queue, seq uint64) []byte {
	m.kbuf = binary.BigEndian.AppendUint64(append(m.kbuf[:0], q.data...), seq)
	return m.kbuf
}

func payloadKey(q *queue, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), q.data...), seq)
}

func (m *Machine) dedupKey(q *queue, key string) []byte {
	m.kbuf = append(append(append(m.kbuf[:0], q.meta...), kindDedup), key...)
	return m.kbuf
}

// putMeta writes msg's metadata record.
func (m *Machine) putMeta(b storage.Batch, q *queue, msg *message) {
	v := m.vbuf[:0]
	v = append(v, metaFormat, byte(msg.state), msg.prio)
	v = binary.LittleEndian.AppendUint32(v, msg.deliveries)
	v = binary.LittleEndian.AppendUint32(v, msg.visMs)
	v = binary.LittleEndian.AppendUint64(v, msg.pos)
	v = binary.LittleEndian.AppendUint64(v, uint64(msg.enqueued))
	v = binary.LittleEndian.AppendUint64(v, uint64(msg.due))
	v = binary.LittleEndian.AppendUint64(v, msg.dlqPos)
	v = binary.LittleEndian.AppendUint64(v, uint64(msg.dlqAt))
	v = binary.LittleEndian.AppendUint16(v, uint16(len(msg.reason)))
	v = append(v, msg.reason...)
	m.vbuf = v
	b.Set(m.metaKey(q, msg.seq), v)
}

// putCounters writes q's counters if they changed.
func (m *Machine) putCounters(b storage.Batch, q *queue) {
	if !q.countersDirty {
		return
	}
	q.countersDirty = false
	v := binary.LittleEndian.AppendUint64(m.vbuf[:0], q.lastSeq)
	v = binary.LittleEndian.AppendUint64(v, q.lastPos)
	v = binary.LittleEndian.AppendUint64(v, q.lastDLQ)
	m.vbuf = v
	k := append(append(m.kbuf[:0], q.meta...), kindCounters)
	m.kbuf = k
	b.Set(k, v)
}

func (m *Machine) putDedup(b storage.Batch, q *queue, e *dedupEntry) {
	v := binary.LittleEndian.AppendUint64(m.vbuf[:0], e.seq)
	v = binary.LittleEndian.AppendUint64(v, uint64(e.until))
	m.vbuf = v
	b.Set(m.dedupKey(q, e.key), v)
}

func decodeMeta(seq uint64, v []byte) (*message, error) {
	if len(v) < metaFixedSize || v[0] != metaFormat {
		return nil, fmt.Errorf("%w: message %d metadata (%d bytes)", ErrCorrupt, seq, len(v))
	}
	msg := &message{
		seq:        seq,
		state:      state(v[1]),
		prio:       v[2],
		deliveries: binary.LittleEndian.Uint32(v[3:]),
		visMs:      binary.LittleEndian.Uint32(v[7:]),
		pos:        binary.LittleEndian.Uint64(v[11:]),
		enqueued:   int64(binary.LittleEndian.Uint64(v[19:])),
		due:        int64(binary.LittleEndian.Uint64(v[27:])),
		dlqPos:     binary.LittleEndian.Uint64(v[35:]),
		dlqAt:      int64(binary.LittleEndian.Uint64(v[43:])),
		idx:        -1,
	}
	n := int(binary.LittleEndian.Uint16(v[51:]))
	if len(v) != metaFixedSize+n || msg.state < stateDelayed || msg.state > stateDLQ {
		return nil, fmt.Errorf("%w: message %d metadata", ErrCorrupt, seq)
	}
	msg.reason = string(v[metaFixedSize:])
	return msg, nil
}

// splitKey parses 'q' ns 0x00 [len:u16] name kind rest.
func splitKey(k []byte) (ns, name string, kind byte, rest []byte, ok bool) {
	if len(k) < 1 || k[0] != 'q' {
		return "", "", 0, nil, false
	}
	i := bytes.IndexByte(k[1:], 0)
	if i < 0 {
		return "", "", 0, nil, false
	}
	ns = string(k[1 : 1+i])
	k = k[2+i:]
	if len(k) < 2 {
		return "", "", 0, nil, false
	}
	n := int(binary.BigEndian.Uint16(k))
	if len(k) < 2+n+1 {
		return "", "", 0, nil, false
	}
	return ns, string(k[2 : 2+n]), k[2+n], k[3+n:], true
}

// Load implements fsm.Machine: it rebuilds every queue from its metadata,
// counter and dedup records. Payloads are not read.
func (m *Machine) Load(r storage.Reader) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queues = make(map[string]map[string]*queue)
	m.sched = nil
	m.payloadBytes = 0 // loaded messages hold no payloads
	var loadErr error
	var cur *queue
	dlq := map[*queue][]*message{}
	err := r.Iterate([]byte{'q'}, []byte{'q' + 1}, false, func(k, v []byte) bool {
		ns, name, kind, rest, ok := splitKey(k)
		if !ok {
			loadErr = fmt.Errorf("%w: key %q", ErrCorrupt, k)
			return false
		}
		if cur == nil || cur.ns != ns || cur.name != name {
			cur = m.queueFor(ns, name)
		}
		q := cur
		switch kind {
		case kindCounters:
			if len(v) != 24 {
				loadErr = fmt.Errorf("%w: counters of queue %q", ErrCorrupt, name)
				return false
			}
			q.lastSeq = max(q.lastSeq, binary.LittleEndian.Uint64(v))
			q.lastPos = max(q.lastPos, binary.LittleEndian.Uint64(v[8:]))
			q.lastDLQ = max(q.lastDLQ, binary.LittleEndian.Uint64(v[16:]))
		case kindDedup:
			if len(v) != 16 {
				loadErr = fmt.Errorf("%w: dedup record of queue %q", ErrCorrupt, name)
				return false
			}
			e := &dedupEntry{key: string(rest), seq: binary.LittleEndian.Uint64(v), until: int64(binary.LittleEndian.Uint64(v[8:]))}
			q.dedups[e.key] = e
			q.dedupFIFO = append(q.dedupFIFO, e)
		case kindMeta:
			if len(rest) != 8 {
				loadErr = fmt.Errorf("%w: key %q", ErrCorrupt, k)
				return false
			}
			msg, err := decodeMeta(binary.BigEndian.Uint64(rest), v)
			if err != nil {
				loadErr = err
				return false
			}
			q.msgs[msg.seq] = msg
			q.lastPos = max(q.lastPos, msg.pos)
			q.lastDLQ = max(q.lastDLQ, msg.dlqPos)
			switch msg.state {
			case stateReady:
				q.ready.s = append(q.ready.s, msg)
			case stateDelayed:
				q.timers.s = append(q.timers.s, msg)
				q.delayed++
			case stateLeased:
				q.timers.s = append(q.timers.s, msg)
				q.leased++
			case stateDLQ:
				dlq[q] = append(dlq[q], msg)
			}
		default:
			loadErr = fmt.Errorf("%w: key %q", ErrCorrupt, k)
			return false
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("queue: load: %w", err)
	}
	if loadErr != nil {
		return fmt.Errorf("queue: load: %w", loadErr)
	}
	for _, byName := range m.queues {
		for _, q := range byName {
			q.ready.init()
			q.timers.init()
			es := dlq[q]
			slices.SortFunc(es, func(a, b *message) int { return cmp.Compare(a.dlqPos, b.dlqPos) })
			for _, msg := range es {
				q.dlqAppend(msg)
			}
			slices.SortFunc(q.dedupFIFO, func(a, b *dedupEntry) int {
				if a.until != b.until {
					return cmp.Compare(a.until, b.until)
				}
				return cmp.Compare(a.key, b.key)
			})
			for _, e := range q.dedupFIFO {
				if msg := q.msgs[e.seq]; msg != nil {
					msg.dedup = e
				}
			}
			m.reschedule(q)
		}
	}
	return nil
}
