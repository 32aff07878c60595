package flo

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/floruntime/flo/wire"
)

// Queue is the message queue: priorities, delays, deduplication, leases
// with a visibility timeout, ack/nack and a dead-letter queue (DLQ) per
// queue. Delivery is at-least-once: a dequeued message that is not acked
// before its lease ends comes back (or, after 5 deliveries, moves to the
// DLQ), so handlers must be idempotent. Queues need no creation: using a
// name creates it, and an unknown queue reads as empty.
type Queue struct{ c *Client }

// QueueMessage is one message as dequeued, peeked or listed from the DLQ.
type QueueMessage struct {
	Seq     uint64
	Payload []byte
	// Priority is 0–255, higher first.
	Priority uint8
	// Deliveries counts the times the message was handed out, this one
	// included (0 in a peek of a message never delivered).
	Deliveries int
	EnqueuedAt time.Time
	// DeadAt is when the message entered the DLQ (zero outside it).
	DeadAt time.Time
	// Reason is the last failure: a nack's reason, or the server's note
	// that a lease expired. Empty if it never failed.
	Reason string
}

// QueueEnqueueOptions configures Queue.Enqueue. The zero value enqueues at
// priority 0, ready at once, without deduplication.
type QueueEnqueueOptions struct {
	Namespace string
	// Priority is 0–255; a higher priority is dequeued first.
	Priority uint8
	// Delay keeps the message invisible this long (millisecond precision).
	Delay time.Duration
	// DedupKey, if set (1–255 bytes), makes the enqueue idempotent: while
	// the key is held (at least 5 minutes, and as long as its message is
	// queued) a repeat enqueue adds nothing and returns the original seq.
	DedupKey string
}

// Enqueue adds a message and returns its seq (strictly increasing per
// queue). A payload over 16 MiB, or a key over its limit, returns an error
// matching ErrBadRequest.
func (q *Queue) Enqueue(ctx context.Context, queue string, payload []byte, o *QueueEnqueueOptions) (uint64, error) {
	if o == nil {
		o = &QueueEnqueueOptions{}
	}
	var opts wire.Options
	if o.Priority != 0 {
		opts = wire.AppendU8(opts, wire.TagPriority, o.Priority)
	}
	if o.Delay > 0 {
		opts = wire.AppendU64(opts, wire.TagDelayMs, uint64(roundUpMs(o.Delay)))
	}
	if o.DedupKey != "" {
		if len(o.DedupKey) > wire.MaxOptionBytes {
			return 0, fmt.Errorf("%w: dedup key is %d bytes, over the %d-byte limit", ErrBadRequest, len(o.DedupKey), wire.MaxOptionBytes)
		}
		opts = wire.AppendOption(opts, wire.TagDedupKey, []byte(o.DedupKey))
	}
	body, err := q.c.call(ctx, request{op: wire.OpQueueEnqueue, namespace: o.Namespace, key: []byte(queue), value: payload, options: opts})
	if err != nil {
		return 0, err
	}
	if len(body) < 8 {
		return 0, fmt.Errorf("%w: enqueue reply is %d bytes", ErrConnection, len(body))
	}
	return binary.LittleEndian.Uint64(body), nil
}

// QueueDequeueOptions configures Queue.Dequeue. The zero value does not
// wait and leases for the server default (30 s).
type QueueDequeueOptions struct {
	Namespace string
	// Block waits up to this long for a message when none is ready;
	// Forever waits without limit; 0 does not wait. A wait that ends
	// empty is not an error.
	Block time.Duration
	// Visibility is the lease: the messages stay invisible this long
	// unless acked, nacked or touched (0 = 30 s; at most 12 h).
	Visibility time.Duration
	// Ack lists seqs to acknowledge before dequeuing, in the same request
	// and the same durable write: a consumer that finished a message and
	// wants the next one pays one round trip instead of two. The acks
	// count even if the call then waits or returns nothing; unknown seqs
	// are ignored as by Ack. At most 10,000.
	Ack []uint64
}

// Dequeue leases up to count ready messages (count is clamped to 1–100),
// highest priority first, then oldest. It returns what is ready without
// waiting to fill the batch, and an empty slice when nothing is.
func (q *Queue) Dequeue(ctx context.Context, queue string, count int, o *QueueDequeueOptions) ([]QueueMessage, error) {
	if o == nil {
		o = &QueueDequeueOptions{}
	}
	opts := wire.AppendU32(nil, wire.TagCount, uint32(min(max(count, 0), 1<<16)))
	if o.Visibility > 0 {
		opts = wire.AppendU32(opts, wire.TagVisibilityTimeoutMs, uint32(min(roundUpMs(o.Visibility), 1<<32-1)))
	}
	opts = wire.AppendFlag(opts, wire.TagMessageDetail)
	var value []byte
	if len(o.Ack) > 0 {
		value = wire.AppendSeqList(nil, o.Ack)
	}
	body, err := q.c.call(ctx, request{op: wire.OpQueueDequeue, namespace: o.Namespace, key: []byte(queue), value: value, options: opts, block: o.Block})
	if err != nil {
		return nil, err
	}
	return decodeQueueMessages(body)
}

// QueueOptions configures the queue calls that take only a namespace.
type QueueOptions struct {
	Namespace string
}

// Ack removes messages for good. Seqs that are unknown, already acked or
// in the DLQ are ignored; an ack after the lease expired still succeeds
// while the message exists.
func (q *Queue) Ack(ctx context.Context, queue string, seqs []uint64, o *QueueOptions) error {
	return q.seqCall(ctx, wire.OpQueueAck, queue, seqs, o, nil)
}

// QueueNackOptions configures Queue.Nack. The zero value returns the
// messages to the queue at once.
type QueueNackOptions struct {
	Namespace string
	// ToDLQ moves leased or ready messages straight to the DLQ.
	ToDLQ bool
	// Delay keeps a returned message invisible this long before it is
	// ready again (a retry backoff; our extension of v1).
	Delay time.Duration
	// Reason (at most 255 bytes, cut at a character boundary) is kept as
	// the message's last failure and shown by DLQList.
	Reason string
}

// Nack ends the leases of messages that failed. Each returns to its original
// position (after Delay, if set), or to the DLQ once it has been delivered
// 5 times. Seqs not leased are ignored, except with ToDLQ, which also
// dead-letters ready messages.
func (q *Queue) Nack(ctx context.Context, queue string, seqs []uint64, o *QueueNackOptions) error {
	if o == nil {
		o = &QueueNackOptions{}
	}
	var opts wire.Options
	if o.ToDLQ {
		opts = wire.AppendU8(opts, wire.TagSendToDLQ, 1)
	}
	if o.Delay > 0 {
		opts = wire.AppendU64(opts, wire.TagDelayMs, uint64(roundUpMs(o.Delay)))
	}
	if o.Reason != "" {
		opts = wire.AppendOption(opts, wire.TagNackReason, []byte(cutUTF8(o.Reason, wire.MaxOptionBytes)))
	}
	return q.seqCall(ctx, wire.OpQueueNack, queue, seqs, &QueueOptions{Namespace: o.Namespace}, opts)
}

// Touch renews leases: each leased message's deadline becomes now plus the
// visibility timeout it was dequeued with. Seqs not leased are ignored.
func (q *Queue) Touch(ctx context.Context, queue string, seqs []uint64, o *QueueOptions) error {
	return q.seqCall(ctx, wire.OpQueueTouch, queue, seqs, o, nil)
}

// QueuePeekOptions configures Queue.Peek.
type QueuePeekOptions struct {
	Namespace string
}

// Peek returns up to count (1–100) ready messages in the order Dequeue
// would take them, without leasing them or counting a delivery.
func (q *Queue) Peek(ctx context.Context, queue string, count int, o *QueuePeekOptions) ([]QueueMessage, error) {
	if o == nil {
		o = &QueuePeekOptions{}
	}
	opts := wire.AppendU32(nil, wire.TagCount, uint32(min(max(count, 0), 1<<16)))
	opts = wire.AppendFlag(opts, wire.TagMessageDetail)
	body, err := q.c.call(ctx, request{op: wire.OpQueuePeek, namespace: o.Namespace, key: []byte(queue), options: opts})
	if err != nil {
		return nil, err
	}
	return decodeQueueMessages(body)
}

// QueueDLQListOptions configures Queue.DLQList.
type QueueDLQListOptions struct {
	Namespace string
	// Limit is the number of entries: 0 means 100, at most 1000.
	Limit int
}

// DLQList returns the queue's dead letters, oldest first, with their
// delivery counts, the time they entered the DLQ and their last reason.
func (q *Queue) DLQList(ctx context.Context, queue string, o *QueueDLQListOptions) ([]QueueMessage, error) {
	if o == nil {
		o = &QueueDLQListOptions{}
	}
	limit := 100
	if o.Limit > 0 {
		limit = min(o.Limit, 1<<16)
	}
	opts := wire.AppendU32(nil, wire.TagLimit, uint32(limit))
	opts = wire.AppendFlag(opts, wire.TagMessageDetail)
	body, err := q.c.call(ctx, request{op: wire.OpQueueDLQList, namespace: o.Namespace, key: []byte(queue), options: opts})
	if err != nil {
		return nil, err
	}
	return decodeQueueMessages(body)
}

// DLQRequeue moves dead letters back to the queue: same seq, priority and
// payload, delivery count reset, at the back of their priority. Seqs not in
// the DLQ are ignored.
func (q *Queue) DLQRequeue(ctx context.Context, queue string, seqs []uint64, o *QueueOptions) error {
	return q.seqCall(ctx, wire.OpQueueDLQRequeue, queue, seqs, o, nil)
}

// DLQDelete deletes the listed dead letters and returns how many it
// deleted. Seqs not in the DLQ are ignored.
func (q *Queue) DLQDelete(ctx context.Context, queue string, seqs []uint64, o *QueueOptions) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	return q.dlqDelete(ctx, queue, wire.AppendSeqList(nil, seqs), nil, o)
}

// DLQPurge deletes every dead letter of the queue and returns how many.
func (q *Queue) DLQPurge(ctx context.Context, queue string, o *QueueOptions) (int, error) {
	return q.dlqDelete(ctx, queue, nil, wire.AppendFlag(nil, wire.TagDLQAll), o)
}

func (q *Queue) dlqDelete(ctx context.Context, queue string, value []byte, opts wire.Options, o *QueueOptions) (int, error) {
	if o == nil {
		o = &QueueOptions{}
	}
	body, err := q.c.call(ctx, request{op: wire.OpQueueDLQDelete, namespace: o.Namespace, key: []byte(queue), value: value, options: opts})
	if err != nil {
		return 0, err
	}
	if len(body) < 8 {
		return 0, fmt.Errorf("%w: DLQ delete reply is %d bytes", ErrConnection, len(body))
	}
	return int(binary.LittleEndian.Uint64(body)), nil
}

// QueueStats is a queue's depth by state.
type QueueStats struct {
	Ready    int64 // deliverable now
	Delayed  int64 // waiting for a delay (or a nack's delay) to end
	InFlight int64 // leased to consumers
	DLQ      int64 // dead letters
}

// Stats reports how many messages the queue holds in each state. An
// unknown queue reports zeros.
func (q *Queue) Stats(ctx context.Context, queue string, o *QueueOptions) (QueueStats, error) {
	if o == nil {
		o = &QueueOptions{}
	}
	body, err := q.c.call(ctx, request{op: wire.OpQueueStats, namespace: o.Namespace, key: []byte(queue)})
	if err != nil {
		return QueueStats{}, err
	}
	s, err := wire.DecodeQueueStats(body)
	if err != nil {
		return QueueStats{}, fmt.Errorf("%w: stats reply: %w", ErrConnection, err)
	}
	return QueueStats{Ready: int64(s.Ready), Delayed: int64(s.Delayed), InFlight: int64(s.InFlight), DLQ: int64(s.DLQ)}, nil
}

// seqCall sends a seq-list operation. An empty list sends nothing.
func (q *Queue) seqCall(ctx context.Context, op wire.Op, queue string, seqs []uint64, o *QueueOptions, opts wire.Options) error {
	if len(seqs) == 0 {
		return nil
	}
	if o == nil {
		o = &QueueOptions{}
	}
	_, err := q.c.call(ctx, request{op: op, namespace: o.Namespace, key: []byte(queue), value: wire.AppendSeqList(nil, seqs), options: opts})
	return err
}

func decodeQueueMessages(body []byte) ([]QueueMessage, error) {
	ms, err := wire.DecodeQueueMessages(body, true)
	if err != nil {
		return nil, fmt.Errorf("%w: message list: %w", ErrConnection, err)
	}
	out := make([]QueueMessage, len(ms))
	for i, m := range ms {
		out[i] = QueueMessage{
			Seq:        m.Seq,
			Payload:    m.Payload,
			Priority:   m.Priority,
			Deliveries: int(m.Deliveries),
			EnqueuedAt: time.UnixMilli(m.EnqueuedAtMs),
			Reason:     string(m.Reason),
		}
		if out[i].Payload == nil {
			out[i].Payload = []byte{}
		}
		if m.DLQAtMs != 0 {
			out[i].DeadAt = time.UnixMilli(m.DLQAtMs)
		}
	}
	return out, nil
}

// roundUpMs rounds d up to whole milliseconds, so a positive duration
// never becomes 0 (which would mean "none" or "default" on the wire).
func roundUpMs(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
