package wire

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var rewriteQueueGolden = flag.Bool("rewrite-queue-golden", false, "rewrite wire/testdata/queue_*.hex from the encoders")

// queueGolden is one golden queue frame: how to build it, and what its
// payload must decode back to.
type queueGolden struct {
	file    string
	comment string
	frame   func() []byte
	check   func(t *testing.T, payload []byte)
}

func queueRequest(id uint64, op Op, key string, value []byte, opts Options) func() []byte {
	return func() []byte {
		return AppendFrame(nil, id, byte(op), AppendRequest(nil, &Request{Namespace: "default", Key: []byte(key), Value: value, Options: opts}))
	}
}

func queueReply(id uint64, payload []byte) func() []byte {
	return func() []byte { return AppendFrame(nil, id, byte(StatusOK), payload) }
}

func queueOpts(parts ...[]byte) Options {
	var o Options
	for _, p := range parts {
		o = append(o, p...)
	}
	return o
}

var queueGoldens = []queueGolden{
	{
		file:    "queue_enqueue_request.hex",
		comment: `QUEUE_ENQUEUE 0x40, ns "default", queue "jobs", payload "hello", request id 1; options PRIORITY=10 (u8), DELAY_MS=60000 (u64), DEDUP_KEY="task-123".`,
		frame: queueRequest(1, OpQueueEnqueue, "jobs", []byte("hello"), queueOpts(
			AppendU8(nil, TagPriority, 10), AppendU64(nil, TagDelayMs, 60000), AppendOption(nil, TagDedupKey, []byte("task-123")))),
		check: func(t *testing.T, p []byte) {
			r := queueMustRequest(t, p)
			if v, _ := r.Options.Uint(TagPriority); v != 10 {
				t.Errorf("priority %d", v)
			}
			if v, _ := r.Options.Uint(TagDelayMs); v != 60000 {
				t.Errorf("delay %d", v)
			}
			if v, _ := r.Options.Lookup(TagDedupKey); string(v) != "task-123" {
				t.Errorf("dedup %q", v)
			}
		},
	},
	{
		file:    "queue_enqueue_response.hex",
		comment: "OK reply to request id 1: [seq:u64] = 1.",
		frame:   queueReply(1, []byte{1, 0, 0, 0, 0, 0, 0, 0}),
	},
	{
		file:    "queue_dequeue_request.hex",
		comment: `QUEUE_DEQUEUE 0x41, queue "jobs", request id 2; COUNT=10 (u32), VISIBILITY_TIMEOUT_MS=30000 (u32), BLOCK_MS=5000 (u32).`,
		frame: queueRequest(2, OpQueueDequeue, "jobs", nil, queueOpts(
			AppendU32(nil, TagCount, 10), AppendU32(nil, TagVisibilityTimeoutMs, 30000), AppendU32(nil, TagBlockMs, 5000))),
		check: func(t *testing.T, p []byte) {
			r := queueMustRequest(t, p)
			if v, _ := r.Options.Uint(TagCount); v != 10 {
				t.Errorf("count %d", v)
			}
		},
	},
	{
		file:    "queue_dequeue_response.hex",
		comment: `OK reply to request id 2, v1 message list: [count:u32] count × ([seq:u64][payload_len:u32][payload]) — seq 1 "hello", seq 2 "" (empty payload).`,
		frame:   queueReply(2, AppendQueueMessages(nil, []QueueMessage{{Seq: 1, Payload: []byte("hello")}, {Seq: 2}}, false)),
		check: func(t *testing.T, p []byte) {
			ms, err := DecodeQueueMessages(p, false)
			if err != nil || len(ms) != 2 || ms[0].Seq != 1 || string(ms[0].Payload) != "hello" || ms[1].Seq != 2 || len(ms[1].Payload) != 0 {
				t.Errorf("%+v %v", ms, err)
			}
		},
	},
	{
		file:    "queue_dequeue_empty_response.hex",
		comment: "OK reply to request id 2 with no messages (empty queue, or a block that timed out): [count:u32] = 0.",
		frame:   queueReply(2, []byte{0, 0, 0, 0}),
	},
	{
		file: "queue_dequeue_detail_request.hex",
		comment: `QUEUE_DEQUEUE 0x41, queue "jobs", request id 3; COUNT=1 (u32), MESSAGE_DETAIL flag (extension tag 0x72)` +
			"\n# selecting the detailed record layout.",
		frame: queueRequest(3, OpQueueDequeue, "jobs", nil, queueOpts(AppendU32(nil, TagCount, 1), AppendFlag(nil, TagMessageDetail))),
	},
	{
		file: "queue_dequeue_detail_response.hex",
		comment: "OK reply to request id 3, detailed message list: [count:u32] count × ([seq:u64][payload_len:u32][payload]" +
			"\n# [priority:u8][deliveries:u32][enqueued_at_ms:i64][dlq_at_ms:i64][reason_len:u16][reason]) —" +
			"\n# seq 7 \"hello\", priority 5, 2nd delivery, enqueued at 1700000000000, not in the DLQ, reason \"nacked\".",
		frame: queueReply(3, AppendQueueMessages(nil, []QueueMessage{{Seq: 7, Payload: []byte("hello"), Priority: 5, Deliveries: 2, EnqueuedAtMs: 1700000000000, Reason: []byte("nacked")}}, true)),
		check: func(t *testing.T, p []byte) {
			ms, err := DecodeQueueMessages(p, true)
			want := []QueueMessage{{Seq: 7, Payload: []byte("hello"), Priority: 5, Deliveries: 2, EnqueuedAtMs: 1700000000000, Reason: []byte("nacked")}}
			if err != nil || !reflect.DeepEqual(ms, want) {
				t.Errorf("%+v %v", ms, err)
			}
		},
	},
	{
		file:    "queue_ack_request.hex",
		comment: `QUEUE_COMPLETE (ack) 0x42, queue "jobs", request id 4; value = seq list [count:u32] count × [seq:u64] = [1, 2].`,
		frame:   queueRequest(4, OpQueueAck, "jobs", AppendSeqList(nil, []uint64{1, 2}), nil),
		check: func(t *testing.T, p []byte) {
			seqs, err := DecodeSeqList(queueMustRequest(t, p).Value)
			if err != nil || !reflect.DeepEqual(seqs, []uint64{1, 2}) {
				t.Errorf("%v %v", seqs, err)
			}
		},
	},
	{
		file:    "queue_nack_dlq_request.hex",
		comment: `QUEUE_FAIL (nack) 0x44, queue "jobs", request id 5; seq list [3]; SEND_TO_DLQ=1 (u8), as the v1 SDK sends it.`,
		frame:   queueRequest(5, OpQueueNack, "jobs", AppendSeqList(nil, []uint64{3}), AppendU8(nil, TagSendToDLQ, 1)),
		check: func(t *testing.T, p []byte) {
			if !queueMustRequest(t, p).Options.Flag(TagSendToDLQ) {
				t.Error("SEND_TO_DLQ not set")
			}
		},
	},
	{
		file: "queue_nack_retry_request.hex",
		comment: `QUEUE_FAIL (nack) 0x44, queue "jobs", request id 6; seq list [3]; extensions: DELAY_MS=2000 (u64) redelivers` +
			"\n# after 2 s, NACK_REASON (tag 0x71) = \"db down\" is kept as the last failure reason.",
		frame: queueRequest(6, OpQueueNack, "jobs", AppendSeqList(nil, []uint64{3}), queueOpts(
			AppendU64(nil, TagDelayMs, 2000), AppendOption(nil, TagNackReason, []byte("db down")))),
		check: func(t *testing.T, p []byte) {
			r := queueMustRequest(t, p)
			if v, _ := r.Options.Lookup(TagNackReason); string(v) != "db down" {
				t.Errorf("reason %q", v)
			}
		},
	},
	{
		file:    "queue_touch_request.hex",
		comment: `QUEUE_TOUCH 0x4D, queue "jobs", request id 7; seq list [9].`,
		frame:   queueRequest(7, OpQueueTouch, "jobs", AppendSeqList(nil, []uint64{9}), nil),
	},
	{
		file:    "queue_peek_request.hex",
		comment: `QUEUE_PEEK 0x4C, queue "jobs", request id 8; COUNT=5 (u32).`,
		frame:   queueRequest(8, OpQueuePeek, "jobs", nil, AppendU32(nil, TagCount, 5)),
	},
	{
		file:    "queue_dlq_list_request.hex",
		comment: `QUEUE_DLQ_LIST 0x46, queue "jobs", request id 9; LIMIT=100 (u32), MESSAGE_DETAIL flag (extension tag 0x72).`,
		frame:   queueRequest(9, OpQueueDLQList, "jobs", nil, queueOpts(AppendU32(nil, TagLimit, 100), AppendFlag(nil, TagMessageDetail))),
	},
	{
		file: "queue_dlq_list_response.hex",
		comment: "OK reply to request id 9, detailed layout: seq 3 \"bad\", priority 0, 5 deliveries, enqueued at 1700000000000," +
			"\n# dead-lettered at 1700000060000, reason \"visibility timeout expired\".",
		frame: queueReply(9, AppendQueueMessages(nil, []QueueMessage{{Seq: 3, Payload: []byte("bad"), Deliveries: 5, EnqueuedAtMs: 1700000000000, DLQAtMs: 1700000060000, Reason: []byte("visibility timeout expired")}}, true)),
		check: func(t *testing.T, p []byte) {
			ms, err := DecodeQueueMessages(p, true)
			if err != nil || len(ms) != 1 || ms[0].DLQAtMs != 1700000060000 || string(ms[0].Reason) != "visibility timeout expired" {
				t.Errorf("%+v %v", ms, err)
			}
		},
	},
	{
		file:    "queue_dlq_requeue_request.hex",
		comment: `QUEUE_DLQ_REQUEUE 0x48, queue "jobs", request id 10; seq list [3].`,
		frame:   queueRequest(10, OpQueueDLQRequeue, "jobs", AppendSeqList(nil, []uint64{3}), nil),
	},
	{
		file:    "queue_dlq_purge_request.hex",
		comment: `QUEUE_DLQ_DELETE 0x47 (extension), queue "jobs", request id 11; empty value, DLQ_ALL flag (extension tag 0x73): purge.`,
		frame:   queueRequest(11, OpQueueDLQDelete, "jobs", nil, AppendFlag(nil, TagDLQAll)),
	},
	{
		file:    "queue_dlq_purge_response.hex",
		comment: "OK reply to request id 11: [deleted:u64] = 4.",
		frame:   queueReply(11, []byte{4, 0, 0, 0, 0, 0, 0, 0}),
	},
	{
		file:    "queue_stats_request.hex",
		comment: `QUEUE_STATS 0x4B (extension), queue "jobs", request id 12; no options.`,
		frame:   queueRequest(12, OpQueueStats, "jobs", nil, nil),
	},
	{
		file:    "queue_stats_response.hex",
		comment: "OK reply to request id 12: [ready:u64][delayed:u64][in_flight:u64][dlq:u64] = 3, 1, 2, 4.",
		frame:   queueReply(12, AppendQueueStats(nil, &QueueStats{Ready: 3, Delayed: 1, InFlight: 2, DLQ: 4})),
		check: func(t *testing.T, p []byte) {
			s, err := DecodeQueueStats(p)
			if err != nil || s != (QueueStats{Ready: 3, Delayed: 1, InFlight: 2, DLQ: 4}) {
				t.Errorf("%+v %v", s, err)
			}
		},
	},
}

func queueMustRequest(t *testing.T, p []byte) Request {
	t.Helper()
	r, err := DecodeRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGolden_QueueFrames(t *testing.T) {
	for _, g := range queueGoldens {
		t.Run(g.file, func(t *testing.T) {
			got := g.frame()
			if *rewriteQueueGolden {
				writeQueueGolden(t, g.file, g.comment, got)
			}
			want := readGolden(t, g.file)
			if !bytes.Equal(got, want) {
				t.Fatalf("encode:\n got %x\nwant %x", got, want)
			}
			f, n, err := DecodeFrame(want, DefaultMaxPayloadBytes)
			if err != nil || n != len(want) {
				t.Fatalf("decode frame: n=%d err=%v", n, err)
			}
			if g.check != nil {
				g.check(t, f.Payload)
			}
		})
	}
}

// writeQueueGolden writes a frame as a commented hex file: the header on the
// first line, then the payload 16 bytes per line.
func writeQueueGolden(t *testing.T, name, comment string, frame []byte) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# %s\n", comment)
	line := func(b []byte) {
		parts := make([]string, len(b))
		for i := range b {
			parts[i] = strings.ToUpper(hex.EncodeToString(b[i : i+1]))
		}
		sb.WriteString(strings.Join(parts, " ") + "\n")
	}
	line(frame[:HeaderSize])
	for p := frame[HeaderSize:]; len(p) > 0; {
		n := min(16, len(p))
		line(p[:n])
		p = p[n:]
	}
	if err := os.WriteFile(filepath.Join("testdata", name), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestQueueMessages_RejectTruncated(t *testing.T) {
	t.Parallel()
	full := AppendQueueMessages(nil, []QueueMessage{{Seq: 1, Payload: []byte("abc"), Reason: []byte("r")}}, true)
	for cut := 1; cut < len(full); cut++ {
		if _, err := DecodeQueueMessages(full[:cut], true); err == nil {
			t.Fatalf("detailed list cut at %d decoded", cut)
		}
	}
	v1 := AppendQueueMessages(nil, []QueueMessage{{Seq: 1, Payload: []byte("abc")}}, false)
	for cut := 1; cut < len(v1); cut++ {
		if _, err := DecodeQueueMessages(v1[:cut], false); err == nil {
			t.Fatalf("v1 list cut at %d decoded", cut)
		}
	}
	// A count far beyond the body must fail before allocating.
	if _, err := DecodeQueueMessages([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0}, false); err == nil {
		t.Fatal("huge count decoded")
	}
	if _, err := DecodeSeqList([]byte{3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}); err == nil {
		t.Fatal("short seq list decoded")
	}
	if s, err := DecodeSeqList(nil); err != nil || len(s) != 0 {
		t.Fatal("empty seq list")
	}
	if _, err := DecodeQueueStats(make([]byte, 31)); err == nil {
		t.Fatal("short stats decoded")
	}
}

func FuzzDecodeQueueMessages(f *testing.F) {
	f.Add(AppendQueueMessages(nil, []QueueMessage{{Seq: 1, Payload: []byte("x")}}, false), false)
	f.Add(AppendQueueMessages(nil, []QueueMessage{{Seq: 1, Payload: []byte("x"), Reason: []byte("r")}}, true), true)
	f.Fuzz(func(t *testing.T, b []byte, detailed bool) {
		ms, err := DecodeQueueMessages(b, detailed)
		if err != nil {
			return
		}
		again := AppendQueueMessages(nil, ms, detailed)
		if len(ms) > 0 && !bytes.Equal(again, b[:len(again)]) {
			t.Fatalf("round trip: %x vs %x", again, b)
		}
		_, _ = DecodeSeqList(b)
	})
}
