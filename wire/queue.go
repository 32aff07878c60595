package wire

import "encoding/binary"

// Queue opcodes that are extensions: PROTOCOL.md §2 defines the codes but the
// v1 SDK never sends them, so the layouts are ours (docs/protocol.md).
const (
	// OpQueueDLQDelete deletes DLQ entries: the value is a seq list, or
	// TagDLQAll purges every entry. OK payload: [deleted:u64].
	OpQueueDLQDelete Op = 0x47
	// OpQueueStats reports a queue's depth by state. OK payload: QueueStats.
	OpQueueStats Op = 0x4B
)

// Queue extension tags (docs/protocol.md). Tags are only ever appended.
const (
	// TagNackReason (string ≤ 255) on QUEUE_FAIL records why the message
	// failed; the DLQ shows the last reason.
	TagNackReason Tag = 0x71
	// TagMessageDetail (flag) on DEQUEUE, PEEK and DLQ_LIST selects the
	// detailed message layout. Without it the v1 layout is sent unchanged.
	TagMessageDetail Tag = 0x72
	// TagDLQAll (flag) on QUEUE_DLQ_DELETE deletes every DLQ entry.
	TagDLQAll Tag = 0x73
)

// MaxSeqListLen bounds the seqs (offsets, for stream groups) of one ack,
// nack, touch, requeue or DLQ delete: one command is applied in one go,
// holding up every write behind it. The servers refuse a longer list with
// BAD_REQUEST; the SDKs' helpers split theirs.
const MaxSeqListLen = 10_000

// AppendSeqList appends a seq list: [count:u32] count × [seq:u64].
func AppendSeqList(dst []byte, seqs []uint64) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(seqs)))
	for _, s := range seqs {
		dst = binary.LittleEndian.AppendUint64(dst, s)
	}
	return dst
}

// DecodeSeqList decodes a seq list. An empty body is an empty list; a count
// that runs past the body is ErrTruncated. Bytes after the last seq are
// ignored.
func DecodeSeqList(b []byte) ([]uint64, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d := NewDecoder(b)
	n := d.U32()
	if d.Err() != nil || uint64(n) > uint64(d.Len())/8 {
		return nil, ErrTruncated
	}
	seqs := make([]uint64, n)
	for i := range seqs {
		seqs[i] = d.U64()
	}
	return seqs, nil
}

// QueueMessage is one record of a message list (DEQUEUE, PEEK, DLQ_LIST).
//
// The v1 layout carries exactly [seq:u64][payload_len:u32][payload]; the v1
// SDK's parser breaks on anything more. With TagMessageDetail the record
// continues:
//
//	[priority:u8][deliveries:u32][enqueued_at_ms:i64][dlq_at_ms:i64][reason_len:u16][reason]
//
// DLQAtMs is 0 for a message that is not in the DLQ; Reason is the last
// failure reason (a nack's reason, or the server's note for an expired lease).
type QueueMessage struct {
	Seq          uint64
	Payload      []byte
	Priority     uint8
	Deliveries   uint32
	EnqueuedAtMs int64
	DLQAtMs      int64
	Reason       []byte
}

// queueMessageDetailBytes is the fixed part of the detailed extension.
const queueMessageDetailBytes = 1 + 4 + 8 + 8 + 2

// AppendQueueMessage appends one record, detailed or v1.
func AppendQueueMessage(dst []byte, m *QueueMessage, detailed bool) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, m.Seq)
	dst = AppendBytes32(dst, m.Payload)
	if !detailed {
		return dst
	}
	dst = append(dst, m.Priority)
	dst = binary.LittleEndian.AppendUint32(dst, m.Deliveries)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.EnqueuedAtMs))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.DLQAtMs))
	return AppendBytes16(dst, m.Reason)
}

// AppendQueueMessages appends a message list: [count:u32] and the records.
func AppendQueueMessages(dst []byte, ms []QueueMessage, detailed bool) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(ms)))
	for i := range ms {
		dst = AppendQueueMessage(dst, &ms[i], detailed)
	}
	return dst
}

// DecodeQueueMessages decodes a message list in the layout the request
// asked for. An empty body is an empty list. Payloads and reasons alias b.
func DecodeQueueMessages(b []byte, detailed bool) ([]QueueMessage, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d := NewDecoder(b)
	n := d.U32()
	minRecord := 12
	if detailed {
		minRecord += queueMessageDetailBytes
	}
	if d.Err() != nil || uint64(n) > uint64(d.Len())/uint64(minRecord) {
		return nil, ErrTruncated
	}
	ms := make([]QueueMessage, n)
	for i := range ms {
		m := &ms[i]
		m.Seq = d.U64()
		m.Payload = d.Bytes32()
		if detailed {
			m.Priority = d.U8()
			m.Deliveries = d.U32()
			m.EnqueuedAtMs = d.I64()
			m.DLQAtMs = d.I64()
			m.Reason = d.Bytes16()
		}
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return ms, nil
}

// QueueStats is the QUEUE_STATS reply:
//
//	[ready:u64][delayed:u64][in_flight:u64][dlq:u64]
//
// Decoders must accept (and ignore) fields appended after these.
type QueueStats struct {
	Ready    uint64
	Delayed  uint64
	InFlight uint64
	DLQ      uint64
}

// queueStatsBytes is the size of the QueueStats layout.
const queueStatsBytes = 32

// AppendQueueStats appends the stats layout.
func AppendQueueStats(dst []byte, s *QueueStats) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, s.Ready)
	dst = binary.LittleEndian.AppendUint64(dst, s.Delayed)
	dst = binary.LittleEndian.AppendUint64(dst, s.InFlight)
	return binary.LittleEndian.AppendUint64(dst, s.DLQ)
}

// DecodeQueueStats decodes the stats layout.
func DecodeQueueStats(b []byte) (QueueStats, error) {
	if len(b) < queueStatsBytes {
		return QueueStats{}, ErrTruncated
	}
	d := NewDecoder(b)
	return QueueStats{Ready: d.U64(), Delayed: d.U64(), InFlight: d.U64(), DLQ: d.U64()}, nil
}
