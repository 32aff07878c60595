package flo

import (
	"context"
	"time"

	"github.com/floruntime/flo/wire"
)

// Stream is the append-only log: records with dense offsets from 1, read
// from the beginning, an offset, a timestamp or the tail, and consumer
// groups that hand each record to one member and redeliver what is not
// acknowledged. Streams and groups are created on first use; reading an
// unknown stream or group returns no records.
type Stream struct{ c *Client }

// StreamRecord is one record of a stream.
type StreamRecord struct {
	Offset    uint64
	Timestamp time.Time // millisecond precision
	// PartitionKey is the key given at append ("" when none).
	PartitionKey string
	Payload      []byte
	// Redelivered is set by GroupRead when the record was delivered before
	// (its ack deadline passed, its consumer left or nacked it, or it was
	// requeued from the dead-letter list).
	Redelivered bool
}

// StreamAppendOptions configures Stream.Append. The zero value appends with
// the server's clock and no partition key.
type StreamAppendOptions struct {
	Namespace string
	// PartitionKey is stored with the record and returned with it; "" means
	// none. At most 255 bytes.
	PartitionKey string
	// Timestamp, if non-zero, replaces the server clock (milliseconds after
	// the Unix epoch, > 0). It never affects offset order.
	Timestamp time.Time
}

// StreamAppendResult is where an append landed.
type StreamAppendResult struct {
	Offset    uint64
	Timestamp time.Time
}

// Append adds payload to the end of stream and returns its offset and
// timestamp. The payload may be empty and is not retained by the client.
func (s *Stream) Append(ctx context.Context, stream string, payload []byte, o *StreamAppendOptions) (StreamAppendResult, error) {
	if o == nil {
		o = &StreamAppendOptions{}
	}
	if len(o.PartitionKey) > wire.MaxOptionBytes {
		return StreamAppendResult{}, streamBadRequest("partition key is %d bytes, over the %d-byte limit", len(o.PartitionKey), wire.MaxOptionBytes)
	}
	var ts int64
	if !o.Timestamp.IsZero() {
		if ts = o.Timestamp.UnixMilli(); ts <= 0 {
			return StreamAppendResult{}, streamBadRequest("timestamp must be after the Unix epoch")
		}
	}
	opts := wire.AppendStreamAppendOptions(nil, o.PartitionKey != "", o.PartitionKey, ts)
	body, err := s.c.call(ctx, request{op: wire.OpStreamAppend, namespace: o.Namespace, key: []byte(stream), value: payload, options: opts})
	if err != nil {
		return StreamAppendResult{}, err
	}
	r, err := wire.DecodeStreamAppendReply(body)
	if err != nil {
		return StreamAppendResult{}, err
	}
	return StreamAppendResult{Offset: r.Offset, Timestamp: time.UnixMilli(r.TimestampMs)}, nil
}

// StreamReadOptions configures Stream.Read. The zero value reads the first
// 100 retained records without waiting. At most one of Offset, Since and
// Tail may be set.
type StreamReadOptions struct {
	Namespace string
	// Offset starts the read at this offset, inclusive; 0 is the beginning.
	// An offset before the first retained record starts there.
	Offset uint64
	// Since starts the read at the earliest record whose timestamp is at or
	// after it (Kafka's offsets-for-times).
	Since time.Time
	// Tail reads the newest Count records (still in ascending order). With
	// Block it instead waits for records appended after the call.
	Tail bool
	// EndOffset, if non-zero, is the last offset returned (inclusive).
	EndOffset uint64
	// Count is the most records returned: 0 means 100, at most 1000.
	Count int
	// Block waits up to this long when nothing is available yet; Forever
	// waits without limit; 0 does not wait. A timeout returns no records
	// and no error.
	Block time.Duration
}

// Read returns records in ascending offset order.
func (s *Stream) Read(ctx context.Context, stream string, o *StreamReadOptions) ([]StreamRecord, error) {
	if o == nil {
		o = &StreamReadOptions{}
	}
	modes := 0
	for _, set := range []bool{o.Offset > 0, !o.Since.IsZero(), o.Tail} {
		if set {
			modes++
		}
	}
	if modes > 1 {
		return nil, streamBadRequest("at most one of Offset, Since and Tail may be set")
	}
	var opts wire.Options
	switch {
	case o.Tail:
		opts = wire.AppendFlag(opts, wire.TagStreamTail)
	case o.Offset > 0:
		opts = appendStreamID(opts, wire.TagStreamStart, wire.StreamID{Sequence: o.Offset})
	case !o.Since.IsZero():
		ms := o.Since.UnixMilli()
		if ms <= 0 {
			return nil, streamBadRequest("Since must be after the Unix epoch")
		}
		opts = appendStreamID(opts, wire.TagStreamStart, wire.StreamID{TimestampMs: uint64(ms)})
	}
	if o.EndOffset > 0 {
		opts = appendStreamID(opts, wire.TagStreamEnd, wire.StreamID{Sequence: o.EndOffset})
	}
	if o.Count > 0 {
		opts = wire.AppendU32(opts, wire.TagCount, uint32(min(o.Count, 1<<31)))
	}
	body, err := s.c.call(ctx, request{op: wire.OpStreamRead, namespace: o.Namespace, key: []byte(stream), options: opts, block: o.Block})
	if err != nil {
		return nil, err
	}
	return decodeStreamRecords(body)
}

func appendStreamID(opts wire.Options, t wire.Tag, id wire.StreamID) wire.Options {
	opts = append(opts, byte(t), wire.StreamIDSize)
	return wire.AppendStreamID(opts, id)
}

// decodeStreamRecords decodes a record list in one pass; payloads alias body,
// which each reply owns.
func decodeStreamRecords(body []byte) ([]StreamRecord, error) {
	out := []StreamRecord{}
	err := wire.RangeStreamRecords(body, func(n int) { out = make([]StreamRecord, 0, n) }, func(r *wire.StreamRecord) {
		rec := StreamRecord{
			Offset:      r.Offset,
			Timestamp:   time.UnixMilli(r.TimestampMs),
			Payload:     r.Payload,
			Redelivered: r.Tier == wire.StreamTierPending,
		}
		if r.HasKey {
			rec.PartitionKey = string(r.Key)
		}
		out = append(out, rec)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StreamInfoOptions configures Stream.Info.
type StreamInfoOptions struct {
	Namespace string
}

// StreamInfo describes a stream's retained records. Everything is zero for
// an unknown stream; FirstOffset is 0 while no record is retained, and
// LastOffset stays the last offset ever assigned.
type StreamInfo struct {
	FirstOffset uint64
	LastOffset  uint64
	Count       uint64
	// Bytes is the payload and partition-key bytes of the retained records.
	Bytes uint64
}

// Info returns a stream's first and last offsets, record count and size.
func (s *Stream) Info(ctx context.Context, stream string, o *StreamInfoOptions) (StreamInfo, error) {
	if o == nil {
		o = &StreamInfoOptions{}
	}
	body, err := s.c.call(ctx, request{op: wire.OpStreamInfo, namespace: o.Namespace, key: []byte(stream)})
	if err != nil {
		return StreamInfo{}, err
	}
	i, err := wire.DecodeStreamInfo(body)
	return StreamInfo(i), err
}

// StreamTrimOptions configures Stream.Trim. Each policy that is set drops the
// oldest records until it holds; a zero field is no limit.
type StreamTrimOptions struct {
	Namespace string
	// MaxLen keeps at most this many records.
	MaxLen uint64
	// MaxAge drops records older than this (whole seconds, rounded up).
	MaxAge time.Duration
	// MaxBytes keeps at most this many payload and partition-key bytes.
	MaxBytes uint64
	// All drops every record (offsets still continue after the last one).
	All bool
	// DryRun reports what would be dropped and changes nothing.
	DryRun bool
}

// StreamTrimResult reports a trim.
type StreamTrimResult struct {
	// Deleted is the number of records dropped (or that would be, for a dry run).
	Deleted uint64
	// FirstOffset is the first offset kept, 0 if none.
	FirstOffset uint64
}

// Trim drops a stream's oldest records.
func (s *Stream) Trim(ctx context.Context, stream string, o *StreamTrimOptions) (StreamTrimResult, error) {
	if o == nil {
		o = &StreamTrimOptions{}
	}
	var opts wire.Options
	switch {
	case o.All:
		opts = wire.AppendU64(opts, wire.TagRetentionCount, 0)
	case o.MaxLen > 0:
		opts = wire.AppendU64(opts, wire.TagRetentionCount, o.MaxLen)
	}
	if o.MaxAge > 0 {
		opts = wire.AppendU64(opts, wire.TagRetentionAge, uint64((o.MaxAge+time.Second-1)/time.Second))
	}
	if o.MaxBytes > 0 {
		opts = wire.AppendU64(opts, wire.TagRetentionBytes, o.MaxBytes)
	}
	if o.DryRun {
		opts = wire.AppendFlag(opts, wire.TagDryRun)
	}
	body, err := s.c.call(ctx, request{op: wire.OpStreamTrim, namespace: o.Namespace, key: []byte(stream), options: opts})
	if err != nil {
		return StreamTrimResult{}, err
	}
	r, err := wire.DecodeStreamTrimReply(body)
	return StreamTrimResult{Deleted: r.Deleted, FirstOffset: r.FirstOffset}, err
}

// StreamGroupJoinOptions configures Stream.GroupJoin.
type StreamGroupJoinOptions struct {
	Namespace string
	// AckTimeout, if set, becomes the group's ack timeout: a delivered record
	// not acked within it goes to the next reader (server default 30s, at
	// most 12h, millisecond precision).
	AckTimeout time.Duration
	// MaxDeliver, if set, becomes the group's delivery limit: a record
	// delivered this many times that misses its deadline again moves to the
	// group's dead-letter list (server default 10, at most 255).
	MaxDeliver int
}

// GroupJoin registers consumer in group, creating the group at the
// beginning of the stream if needed. Joining is idempotent. The settings,
// when given, apply to the whole group.
func (s *Stream) GroupJoin(ctx context.Context, stream, group, consumer string, o *StreamGroupJoinOptions) error {
	if o == nil {
		o = &StreamGroupJoinOptions{}
	}
	opts, err := groupSettings(o.AckTimeout, o.MaxDeliver)
	if err != nil {
		return err
	}
	_, err = s.c.call(ctx, request{op: wire.OpStreamGroupJoin, namespace: o.Namespace, key: []byte(stream),
		value: wire.AppendGroupConsumer(nil, group, consumer), options: opts})
	return err
}

func groupSettings(ackTimeout time.Duration, maxDeliver int) (wire.Options, error) {
	var opts wire.Options
	if ackTimeout > 0 {
		ms := max(ackTimeout.Milliseconds(), 1)
		if ms > 1<<32-1 {
			return nil, streamBadRequest("ack timeout %v is too long", ackTimeout)
		}
		opts = wire.AppendU32(opts, wire.TagAckTimeoutMs, uint32(ms))
	}
	if maxDeliver > 0 {
		if maxDeliver > 255 {
			return nil, streamBadRequest("max deliver %d is over the limit of 255", maxDeliver)
		}
		opts = wire.AppendU8(opts, wire.TagMaxDeliver, uint8(maxDeliver))
	}
	return opts, nil
}

// StreamGroupOptions configures the group calls that take no other option.
type StreamGroupOptions struct {
	Namespace string
}

// GroupLeave removes consumer from group: the records it holds become
// redeliverable to the other members at once.
func (s *Stream) GroupLeave(ctx context.Context, stream, group, consumer string, o *StreamGroupOptions) error {
	if o == nil {
		o = &StreamGroupOptions{}
	}
	_, err := s.c.call(ctx, request{op: wire.OpStreamGroupLeave, namespace: o.Namespace, key: []byte(stream),
		value: wire.AppendGroupConsumer(nil, group, consumer)})
	return err
}

// StreamGroupReadOptions configures Stream.GroupRead.
type StreamGroupReadOptions struct {
	Namespace string
	// Count is the most records returned: 0 means 10, at most 1000.
	Count int
	// Block waits up to this long when nothing is deliverable; Forever waits
	// without limit; 0 does not wait.
	Block time.Duration
	// AckTimeout and MaxDeliver, if set, change the group's settings as in
	// StreamGroupJoinOptions.
	AckTimeout time.Duration
	MaxDeliver int
}

// GroupRead delivers records to consumer, creating the group and joining
// the consumer if needed: first records whose ack deadline passed (or whose
// consumer left), oldest first, then new records. Each record goes to one
// member at a time and must be acked within the group's ack timeout.
func (s *Stream) GroupRead(ctx context.Context, stream, group, consumer string, o *StreamGroupReadOptions) ([]StreamRecord, error) {
	if o == nil {
		o = &StreamGroupReadOptions{}
	}
	opts, err := groupSettings(o.AckTimeout, o.MaxDeliver)
	if err != nil {
		return nil, err
	}
	if o.Count > 0 {
		opts = wire.AppendU32(opts, wire.TagCount, uint32(min(o.Count, 1<<31)))
	}
	body, err := s.c.call(ctx, request{op: wire.OpStreamGroupRead, namespace: o.Namespace, key: []byte(stream),
		value: wire.AppendGroupConsumer(nil, group, consumer), options: opts, block: o.Block})
	if err != nil {
		return nil, err
	}
	return decodeStreamRecords(body)
}

// groupSeqs sends a group offset-list operation, skipping an empty list.
func (s *Stream) groupSeqs(ctx context.Context, op wire.Op, stream, group string, offsets []uint64, o *StreamGroupOptions) error {
	if len(offsets) == 0 {
		return nil
	}
	if o == nil {
		o = &StreamGroupOptions{}
	}
	_, err := s.c.call(ctx, request{op: op, namespace: o.Namespace, key: []byte(stream), value: wire.AppendGroupSeqs(nil, group, offsets)})
	return err
}

// GroupAck acknowledges records for group, whichever member holds them;
// they are never delivered to the group again. Unknown offsets are ignored.
func (s *Stream) GroupAck(ctx context.Context, stream, group string, offsets []uint64, o *StreamGroupOptions) error {
	return s.groupSeqs(ctx, wire.OpStreamGroupAck, stream, group, offsets, o)
}

// GroupNack hands delivered records back at once, so the next GroupRead by
// any member gets them (a flo extension). A record that has used up the
// group's deliveries moves to the dead-letter list instead.
func (s *Stream) GroupNack(ctx context.Context, stream, group string, offsets []uint64, o *StreamGroupOptions) error {
	return s.groupSeqs(ctx, wire.OpStreamGroupNack, stream, group, offsets, o)
}

// GroupTouch restarts the ack timeout of delivered records, for work that
// takes longer than it (a flo extension). Records whose deadline already
// passed are not touched.
func (s *Stream) GroupTouch(ctx context.Context, stream, group string, offsets []uint64, o *StreamGroupOptions) error {
	return s.groupSeqs(ctx, wire.OpStreamGroupTouch, stream, group, offsets, o)
}

// StreamDeadRecord is a record in a group's dead-letter list. The record
// itself stays in the stream; only this group stopped delivering it.
type StreamDeadRecord struct {
	StreamRecord
	// Deliveries is how many times the group delivered the record.
	Deliveries int
	// DeadAt is when the record was dead-lettered.
	DeadAt time.Time
	// Consumer is the member it was last delivered to.
	Consumer string
}

// StreamDLQOptions configures Stream.GroupDLQList.
type StreamDLQOptions struct {
	Namespace string
	// Limit is the most entries returned: 0 means 100, at most 1000.
	Limit int
}

// GroupDLQList lists group's dead-lettered records in offset order (a flo
// extension). Records trimmed from the stream are not listed.
func (s *Stream) GroupDLQList(ctx context.Context, stream, group string, o *StreamDLQOptions) ([]StreamDeadRecord, error) {
	if o == nil {
		o = &StreamDLQOptions{}
	}
	var opts wire.Options
	if o.Limit > 0 {
		opts = wire.AppendU32(opts, wire.TagLimit, uint32(min(o.Limit, 1<<31)))
	}
	body, err := s.c.call(ctx, request{op: wire.OpStreamGroupDLQList, namespace: o.Namespace, key: []byte(stream),
		value: wire.AppendGroupName(nil, group), options: opts})
	if err != nil {
		return nil, err
	}
	ds, err := wire.DecodeStreamDeadRecords(body)
	if err != nil {
		return nil, err
	}
	out := make([]StreamDeadRecord, len(ds))
	for i := range ds {
		d := &ds[i]
		out[i] = StreamDeadRecord{
			StreamRecord: StreamRecord{Offset: d.Offset, Timestamp: time.UnixMilli(d.TimestampMs), Payload: d.Payload},
			Deliveries:   int(d.Deliveries),
			DeadAt:       time.UnixMilli(d.DeadAtMs),
			Consumer:     string(d.Consumer),
		}
		if d.HasKey {
			out[i].PartitionKey = string(d.Key)
		}
	}
	return out, nil
}

// GroupDLQRequeue moves dead-lettered records back to the group with a fresh
// delivery count; the next GroupRead by any member gets them first (a flo
// extension). Offsets not in the list are ignored.
func (s *Stream) GroupDLQRequeue(ctx context.Context, stream, group string, offsets []uint64, o *StreamGroupOptions) error {
	return s.groupSeqs(ctx, wire.OpStreamGroupDLQRequeue, stream, group, offsets, o)
}

// streamBadRequest builds a client-side validation error matching ErrBadRequest.
func streamBadRequest(format string, args ...any) error {
	return wire.Errorf(wire.StatusBadRequest, format, args...)
}
