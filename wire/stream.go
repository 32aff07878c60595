package wire

import "encoding/binary"

// Stream extension opcodes. PROTOCOL.md §2 lists these codes as defined but
// never sent by the v1 SDK; flo gives them the layouts below (see
// docs/protocol.md). The v1 group operations are in opcode.go.
const (
	// OpStreamGroupNack makes pending entries redeliverable at once
	// (value: group seq list).
	OpStreamGroupNack Op = 0x29
	// OpStreamGroupTouch resets the ack deadline of pending entries
	// (value: group seq list).
	OpStreamGroupTouch Op = 0x2A
	// OpStreamGroupDLQList lists a group's dead-lettered records
	// (value: [group_len:u16][group]; LIMIT option).
	OpStreamGroupDLQList Op = 0x2D
	// OpStreamGroupDLQRequeue moves dead-lettered records back into the
	// group's pending list, redeliverable at once (value: group seq list).
	OpStreamGroupDLQRequeue Op = 0x2E
)

// TagTimestampMs is the flo extension tag carrying a client-supplied record
// timestamp (u64 Unix ms, > 0) on STREAM_APPEND. The partition key travels in
// TagPartitionKey (0x25).
const TagTimestampMs Tag = 0x70

// StreamIDSize is the size of an encoded StreamID.
const StreamIDSize = 16

// StreamID is a stream position as the v1 STREAM_START and STREAM_END options
// carry it: [timestamp_ms:u64][sequence:u64], little-endian. flo positions by
// offset: Sequence ≠ 0 addresses that offset; Sequence = 0 with TimestampMs ≠ 0
// addresses the first record whose timestamp is ≥ TimestampMs; both zero is
// the beginning.
type StreamID struct {
	TimestampMs uint64
	Sequence    uint64
}

// AppendStreamID appends the 16-byte little-endian form of id.
func AppendStreamID(dst []byte, id StreamID) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, id.TimestampMs)
	return binary.LittleEndian.AppendUint64(dst, id.Sequence)
}

// DecodeStreamID decodes a 16-byte StreamID; ok is false for any other length.
func DecodeStreamID(b []byte) (id StreamID, ok bool) {
	if len(b) != StreamIDSize {
		return StreamID{}, false
	}
	return StreamID{TimestampMs: binary.LittleEndian.Uint64(b), Sequence: binary.LittleEndian.Uint64(b[8:])}, true
}

// StreamAppendReply is the STREAM_APPEND OK payload:
// [sequence:u64][timestamp_ms:i64].
type StreamAppendReply struct {
	Offset      uint64
	TimestampMs int64
}

// AppendStreamAppendReply appends the 16-byte append reply.
func AppendStreamAppendReply(dst []byte, r StreamAppendReply) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, r.Offset)
	return binary.LittleEndian.AppendUint64(dst, uint64(r.TimestampMs))
}

// DecodeStreamAppendReply decodes the append reply; extra bytes are ignored.
func DecodeStreamAppendReply(b []byte) (StreamAppendReply, error) {
	d := NewDecoder(b)
	r := StreamAppendReply{Offset: d.U64(), TimestampMs: d.I64()}
	return r, d.Err()
}

// Record tiers of the v1 record list. flo sends StreamTierHot for a first
// delivery and StreamTierPending for a consumer-group redelivery.
const (
	StreamTierHot     uint8 = 0
	StreamTierPending uint8 = 1
)

// StreamRecord is one record of a READ or GROUP_READ reply (PROTOCOL.md §6):
//
//	[sequence:u64][timestamp_ms:i64][tier:u8][partition:u32]
//	[key_present:u8]([key_len:u32][key])?[payload_len:u32][payload][header_count:u32 = 0]
//
// flo puts the partition key in the record key; HasKey distinguishes an
// absent key from an empty one. Headers are never sent on v1.
type StreamRecord struct {
	Offset      uint64
	TimestampMs int64
	Tier        uint8
	Partition   uint32
	HasKey      bool
	Key         []byte
	Payload     []byte
}

// StreamRecordOverhead is the encoded size of a record without its key and
// payload bytes.
const StreamRecordOverhead = 8 + 8 + 1 + 4 + 1 + 4 + 4

// AppendStreamRecord appends one record of a record list. Callers write the
// [count:u32] prefix themselves (see AppendStreamRecords).
func AppendStreamRecord(dst []byte, r *StreamRecord) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, r.Offset)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.TimestampMs))
	dst = append(dst, r.Tier)
	dst = binary.LittleEndian.AppendUint32(dst, r.Partition)
	if r.HasKey {
		dst = append(dst, 1)
		dst = AppendBytes32(dst, r.Key)
	} else {
		dst = append(dst, 0)
	}
	dst = AppendBytes32(dst, r.Payload)
	return binary.LittleEndian.AppendUint32(dst, 0)
}

// AppendStreamRecords appends a whole record list.
func AppendStreamRecords(dst []byte, rs []StreamRecord) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(rs)))
	for i := range rs {
		dst = AppendStreamRecord(dst, &rs[i])
	}
	return dst
}

// DecodeStreamRecords decodes a record list. A payload shorter than 4 bytes
// holds no records, as the v1 SDK reads it. Headers, if a peer sends any,
// are skipped. The records alias b.
func DecodeStreamRecords(b []byte) ([]StreamRecord, error) {
	var rs []StreamRecord
	err := RangeStreamRecords(b, func(n int) { rs = make([]StreamRecord, 0, n) }, func(r *StreamRecord) { rs = append(rs, *r) })
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// RangeStreamRecords decodes a record list without building a slice: it calls
// count once with the number of records, then fn for each record (r and the
// slices it holds alias b; r itself is reused between calls). On a malformed
// list it stops and returns the error; fn may have seen some records.
func RangeStreamRecords(b []byte, count func(n int), fn func(r *StreamRecord)) error {
	if len(b) < 4 {
		return nil
	}
	d := NewDecoder(b)
	n := d.U32()
	if uint64(n) > uint64(d.Len())/StreamRecordOverhead {
		return ErrTruncated
	}
	if count != nil {
		count(int(n))
	}
	var r StreamRecord
	for i := uint32(0); i < n; i++ {
		r = StreamRecord{Offset: d.U64(), TimestampMs: d.I64(), Tier: d.U8(), Partition: d.U32()}
		if d.U8() != 0 {
			r.HasKey = true
			r.Key = d.Bytes32()
		}
		r.Payload = d.Bytes32()
		for h := d.U32(); h > 0 && d.Err() == nil; h-- {
			d.Bytes32()
			d.Bytes32()
		}
		if d.Err() != nil {
			return d.Err()
		}
		fn(&r)
	}
	return nil
}

// StreamInfo is the STREAM_INFO OK payload, exactly 32 bytes in v1 order:
// [first_seq:u64][last_seq:u64][count:u64][bytes:u64]. All zero for an
// unknown stream; FirstOffset is 0 while the stream holds no records.
type StreamInfo struct {
	FirstOffset uint64
	LastOffset  uint64
	Count       uint64
	Bytes       uint64
}

// AppendStreamInfo appends the 32-byte info reply.
func AppendStreamInfo(dst []byte, i StreamInfo) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, i.FirstOffset)
	dst = binary.LittleEndian.AppendUint64(dst, i.LastOffset)
	dst = binary.LittleEndian.AppendUint64(dst, i.Count)
	return binary.LittleEndian.AppendUint64(dst, i.Bytes)
}

// DecodeStreamInfo decodes the info reply; extra bytes are ignored.
func DecodeStreamInfo(b []byte) (StreamInfo, error) {
	d := NewDecoder(b)
	i := StreamInfo{FirstOffset: d.U64(), LastOffset: d.U64(), Count: d.U64(), Bytes: d.U64()}
	return i, d.Err()
}

// StreamTrimReply is the STREAM_TRIM OK payload (server-defined):
// [deleted_count:u64][first_seq:u64]. FirstOffset is the first offset kept,
// 0 when no record is left. A dry run reports what a trim would do.
type StreamTrimReply struct {
	Deleted     uint64
	FirstOffset uint64
}

// AppendStreamTrimReply appends the 16-byte trim reply.
func AppendStreamTrimReply(dst []byte, r StreamTrimReply) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, r.Deleted)
	return binary.LittleEndian.AppendUint64(dst, r.FirstOffset)
}

// DecodeStreamTrimReply decodes the trim reply.
func DecodeStreamTrimReply(b []byte) (StreamTrimReply, error) {
	d := NewDecoder(b)
	r := StreamTrimReply{Deleted: d.U64(), FirstOffset: d.U64()}
	return r, d.Err()
}

// AppendGroupConsumer appends the GROUP_JOIN, GROUP_LEAVE and GROUP_READ
// value: [group_len:u16][group][consumer_len:u16][consumer].
func AppendGroupConsumer(dst []byte, group, consumer string) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(group)))
	dst = append(dst, group...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(consumer)))
	return append(dst, consumer...)
}

// DecodeGroupConsumer decodes a group+consumer value. Trailing bytes are an
// error, so a value in another layout is not misread.
func DecodeGroupConsumer(b []byte) (group, consumer []byte, err error) {
	d := NewDecoder(b)
	group = d.Bytes16()
	consumer = d.Bytes16()
	if d.Err() != nil {
		return nil, nil, d.Err()
	}
	if d.Len() != 0 {
		return nil, nil, ErrTruncated
	}
	return group, consumer, nil
}

// AppendGroupName appends the DLQ list value: [group_len:u16][group].
func AppendGroupName(dst []byte, group string) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(group)))
	return append(dst, group...)
}

// DecodeGroupName decodes a [group_len:u16][group] value.
func DecodeGroupName(b []byte) ([]byte, error) {
	d := NewDecoder(b)
	g := d.Bytes16()
	if d.Err() != nil {
		return nil, d.Err()
	}
	if d.Len() != 0 {
		return nil, ErrTruncated
	}
	return g, nil
}

// AppendGroupSeqs appends the GROUP_ACK value (also used by the nack, touch
// and DLQ requeue extensions): [group_len:u16][group][count:u32] count × [seq:u64].
// There is no consumer field: any member may ack.
func AppendGroupSeqs(dst []byte, group string, seqs []uint64) []byte {
	dst = AppendGroupName(dst, group)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(seqs)))
	for _, s := range seqs {
		dst = binary.LittleEndian.AppendUint64(dst, s)
	}
	return dst
}

// DecodeGroupSeqs decodes a group seq-list value.
func DecodeGroupSeqs(b []byte) (group []byte, seqs []uint64, err error) {
	d := NewDecoder(b)
	group = d.Bytes16()
	n := d.U32()
	if d.Err() != nil {
		return nil, nil, d.Err()
	}
	if uint64(n)*8 != uint64(d.Len()) {
		return nil, nil, ErrTruncated
	}
	seqs = make([]uint64, n)
	for i := range seqs {
		seqs[i] = d.U64()
	}
	return group, seqs, nil
}

// StreamDeadRecord is one entry of a group's dead-letter list:
//
//	[sequence:u64][timestamp_ms:i64][deliveries:u32][dead_at_ms:i64]
//	[consumer_len:u16][consumer][key_present:u8]([key_len:u32][key])?[payload_len:u32][payload]
//
// Consumer is the last consumer the record was delivered to.
type StreamDeadRecord struct {
	Offset      uint64
	TimestampMs int64
	Deliveries  uint32
	DeadAtMs    int64
	Consumer    []byte
	HasKey      bool
	Key         []byte
	Payload     []byte
}

// AppendStreamDeadRecord appends one dead-letter entry; the list is
// [count:u32] followed by the entries.
func AppendStreamDeadRecord(dst []byte, r *StreamDeadRecord) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, r.Offset)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.TimestampMs))
	dst = binary.LittleEndian.AppendUint32(dst, r.Deliveries)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.DeadAtMs))
	dst = AppendBytes16(dst, r.Consumer)
	if r.HasKey {
		dst = append(dst, 1)
		dst = AppendBytes32(dst, r.Key)
	} else {
		dst = append(dst, 0)
	}
	return AppendBytes32(dst, r.Payload)
}

// AppendStreamDeadRecords appends a whole dead-letter list.
func AppendStreamDeadRecords(dst []byte, rs []StreamDeadRecord) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(rs)))
	for i := range rs {
		dst = AppendStreamDeadRecord(dst, &rs[i])
	}
	return dst
}

// DecodeStreamDeadRecords decodes a dead-letter list. The entries alias b.
func DecodeStreamDeadRecords(b []byte) ([]StreamDeadRecord, error) {
	if len(b) < 4 {
		return nil, nil
	}
	d := NewDecoder(b)
	n := d.U32()
	const overhead = 8 + 8 + 4 + 8 + 2 + 1 + 4
	if uint64(n) > uint64(d.Len())/overhead {
		return nil, ErrTruncated
	}
	rs := make([]StreamDeadRecord, 0, n)
	for i := uint32(0); i < n; i++ {
		r := StreamDeadRecord{Offset: d.U64(), TimestampMs: d.I64(), Deliveries: d.U32(), DeadAtMs: d.I64(), Consumer: d.Bytes16()}
		if d.U8() != 0 {
			r.HasKey = true
			r.Key = d.Bytes32()
		}
		r.Payload = d.Bytes32()
		if d.Err() != nil {
			return nil, d.Err()
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// AppendStreamAppendOptions appends the STREAM_APPEND extension options: the
// partition key (when hasKey) and a client timestamp (when ts > 0).
func AppendStreamAppendOptions(dst []byte, hasKey bool, key string, tsMs int64) []byte {
	if hasKey {
		dst = AppendOption(dst, TagPartitionKey, []byte(key))
	}
	if tsMs > 0 {
		dst = AppendU64(dst, TagTimestampMs, uint64(tsMs))
	}
	return dst
}
