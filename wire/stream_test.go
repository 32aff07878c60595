package wire

import (
	"bytes"
	"reflect"
	"testing"
)

const streamGoldenTs = 1700000000000

// streamGoldenRequest builds a request frame the way the Go SDK does.
func streamGoldenRequest(id uint64, op Op, key string, value []byte, opts Options) []byte {
	return AppendFrame(nil, id, byte(op), AppendRequest(nil, &Request{Namespace: "default", Key: []byte(key), Value: value, Options: opts}))
}

func streamIDOption(t Tag, id StreamID) Options {
	return AppendStreamID(append(Options(nil), byte(t), StreamIDSize), id)
}

func TestGolden_StreamFramesEncodeByteExact(t *testing.T) {
	t.Parallel()
	records := []StreamRecord{
		{Offset: 1, TimestampMs: streamGoldenTs, HasKey: true, Key: []byte("user-1"), Payload: []byte("hello")},
		{Offset: 2, TimestampMs: streamGoldenTs + 1},
	}
	dead := []StreamDeadRecord{{Offset: 3, TimestampMs: streamGoldenTs, Deliveries: 3, DeadAtMs: streamGoldenTs + 5000,
		Consumer: []byte("c1"), HasKey: true, Key: []byte("k"), Payload: []byte("bad")}}
	var readOffset Options
	readOffset = append(readOffset, streamIDOption(TagStreamStart, StreamID{Sequence: 5})...)
	readOffset = AppendU32(readOffset, TagCount, 10)
	readOffset = AppendU32(readOffset, TagBlockMs, 1000)
	readTs := AppendU32(streamIDOption(TagStreamStart, StreamID{TimestampMs: streamGoldenTs}), TagCount, 2)
	cases := []struct {
		file string
		got  []byte
	}{
		{"stream_append_request.hex", streamGoldenRequest(1, OpStreamAppend, "events", []byte("hello"),
			AppendStreamAppendOptions(nil, true, "user-1", streamGoldenTs))},
		{"stream_append_response.hex", AppendFrame(nil, 1, byte(StatusOK),
			AppendStreamAppendReply(nil, StreamAppendReply{Offset: 1, TimestampMs: streamGoldenTs}))},
		{"stream_read_offset_request.hex", streamGoldenRequest(2, OpStreamRead, "events", nil, readOffset)},
		{"stream_read_timestamp_request.hex", streamGoldenRequest(3, OpStreamRead, "events", nil, readTs)},
		{"stream_read_tail_request.hex", streamGoldenRequest(4, OpStreamRead, "events", nil,
			AppendU32(AppendFlag(nil, TagStreamTail), TagCount, 10))},
		{"stream_read_response.hex", AppendFrame(nil, 2, byte(StatusOK), AppendStreamRecords(nil, records))},
		{"stream_info_response.hex", AppendFrame(nil, 5, byte(StatusOK),
			AppendStreamInfo(nil, StreamInfo{FirstOffset: 7, LastOffset: 10, Count: 4, Bytes: 123}))},
		{"stream_trim_request.hex", streamGoldenRequest(6, OpStreamTrim, "events", nil,
			AppendFlag(AppendU64(nil, TagRetentionCount, 4), TagDryRun))},
		{"stream_trim_response.hex", AppendFrame(nil, 6, byte(StatusOK),
			AppendStreamTrimReply(nil, StreamTrimReply{Deleted: 6, FirstOffset: 7}))},
		{"stream_group_read_request.hex", streamGoldenRequest(7, OpStreamGroupRead, "events",
			AppendGroupConsumer(nil, "g", "c1"), AppendU32(AppendU32(nil, TagCount, 10), TagBlockMs, 0))},
		{"stream_group_join_request.hex", streamGoldenRequest(8, OpStreamGroupJoin, "events",
			AppendGroupConsumer(nil, "g", "c1"), AppendU8(AppendU32(nil, TagAckTimeoutMs, 200), TagMaxDeliver, 3))},
		{"stream_group_ack_request.hex", streamGoldenRequest(9, OpStreamGroupAck, "events",
			AppendGroupSeqs(nil, "g", []uint64{1, 2}), nil)},
		{"stream_group_dlq_requeue_request.hex", streamGoldenRequest(10, OpStreamGroupDLQRequeue, "events",
			AppendGroupSeqs(nil, "g", []uint64{3}), nil)},
		{"stream_group_dlq_list_response.hex", AppendFrame(nil, 11, byte(StatusOK), AppendStreamDeadRecords(nil, dead))},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			want := readGolden(t, c.file)
			if !bytes.Equal(c.got, want) {
				t.Fatalf("encode:\n got %x\nwant %x", c.got, want)
			}
			if _, n, err := DecodeFrame(want, DefaultMaxPayloadBytes); err != nil || n != len(want) {
				t.Fatalf("decode frame: n=%d err=%v", n, err)
			}
		})
	}
}

func streamGoldenPayload(t *testing.T, file string) []byte {
	t.Helper()
	f, _, err := DecodeFrame(readGolden(t, file), DefaultMaxPayloadBytes)
	if err != nil {
		t.Fatal(err)
	}
	return f.Payload
}

func TestGolden_StreamRepliesDecode(t *testing.T) {
	t.Parallel()
	rs, err := DecodeStreamRecords(streamGoldenPayload(t, "stream_read_response.hex"))
	if err != nil || len(rs) != 2 {
		t.Fatalf("records: %+v %v", rs, err)
	}
	if r := rs[0]; r.Offset != 1 || r.TimestampMs != streamGoldenTs || !r.HasKey || string(r.Key) != "user-1" || string(r.Payload) != "hello" {
		t.Fatalf("record 0: %+v", r)
	}
	if r := rs[1]; r.Offset != 2 || r.HasKey || len(r.Payload) != 0 {
		t.Fatalf("record 1: %+v", r)
	}
	info, err := DecodeStreamInfo(streamGoldenPayload(t, "stream_info_response.hex"))
	if err != nil || info != (StreamInfo{7, 10, 4, 123}) {
		t.Fatalf("info: %+v %v", info, err)
	}
	tr, err := DecodeStreamTrimReply(streamGoldenPayload(t, "stream_trim_response.hex"))
	if err != nil || tr != (StreamTrimReply{Deleted: 6, FirstOffset: 7}) {
		t.Fatalf("trim: %+v %v", tr, err)
	}
	ar, err := DecodeStreamAppendReply(streamGoldenPayload(t, "stream_append_response.hex"))
	if err != nil || ar != (StreamAppendReply{Offset: 1, TimestampMs: streamGoldenTs}) {
		t.Fatalf("append: %+v %v", ar, err)
	}
	ds, err := DecodeStreamDeadRecords(streamGoldenPayload(t, "stream_group_dlq_list_response.hex"))
	if err != nil || len(ds) != 1 || ds[0].Offset != 3 || ds[0].Deliveries != 3 || string(ds[0].Consumer) != "c1" || string(ds[0].Payload) != "bad" {
		t.Fatalf("dead: %+v %v", ds, err)
	}
	req, err := DecodeRequest(streamGoldenPayload(t, "stream_group_ack_request.hex"))
	if err != nil {
		t.Fatal(err)
	}
	g, seqs, err := DecodeGroupSeqs(req.Value)
	if err != nil || string(g) != "g" || !reflect.DeepEqual(seqs, []uint64{1, 2}) {
		t.Fatalf("group seqs: %q %v %v", g, seqs, err)
	}
	req, err = DecodeRequest(streamGoldenPayload(t, "stream_read_offset_request.hex"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := req.Options.Lookup(TagStreamStart)
	if id, ok := DecodeStreamID(raw); !ok || id != (StreamID{Sequence: 5}) {
		t.Fatalf("start: %+v", id)
	}
}

func TestStreamLayouts_RejectMalformed(t *testing.T) {
	t.Parallel()
	if _, _, err := DecodeGroupConsumer(append(AppendGroupConsumer(nil, "g", "c"), 0)); err == nil {
		t.Fatal("trailing byte after group+consumer must fail")
	}
	if _, _, err := DecodeGroupConsumer([]byte{5, 0, 'g'}); err == nil {
		t.Fatal("short group must fail")
	}
	if _, _, err := DecodeGroupSeqs(AppendGroupSeqs(nil, "g", []uint64{1})[:10]); err == nil {
		t.Fatal("short seq list must fail")
	}
	if _, ok := DecodeStreamID(make([]byte, 15)); ok {
		t.Fatal("15-byte StreamID must fail")
	}
	if rs, err := DecodeStreamRecords([]byte{1, 0}); err != nil || rs != nil {
		t.Fatal("payload under 4 bytes is an empty list")
	}
	if _, err := DecodeStreamRecords([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0}); err == nil {
		t.Fatal("huge count must fail")
	}
	if _, err := DecodeStreamInfo(make([]byte, 31)); err == nil {
		t.Fatal("31-byte info must fail")
	}
}

// FuzzDecodeStreamRecords checks the record-list and dead-letter decoders
// never panic and that what they accept re-encodes to the same bytes.
func FuzzDecodeStreamRecords(f *testing.F) {
	f.Add(AppendStreamRecords(nil, []StreamRecord{{Offset: 1, HasKey: true, Key: []byte("k"), Payload: []byte("p")}}))
	f.Add(AppendStreamDeadRecords(nil, []StreamDeadRecord{{Offset: 2, Consumer: []byte("c"), Payload: []byte("x")}}))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if rs, err := DecodeStreamRecords(b); err == nil && len(rs) > 0 {
			again := AppendStreamRecords(nil, rs)
			if len(again) > len(b) {
				t.Fatalf("re-encoded %d records into %d bytes from %d", len(rs), len(again), len(b))
			}
		}
		if ds, err := DecodeStreamDeadRecords(b); err == nil && len(ds) > 0 {
			// Non-zero key_present bytes other than 1 are canonicalised, so
			// compare decoded values rather than bytes.
			again, err := DecodeStreamDeadRecords(AppendStreamDeadRecords(nil, ds))
			if err != nil || !reflect.DeepEqual(again, ds) {
				t.Fatalf("dead records round trip: %+v %v, want %+v", again, err, ds)
			}
		}
		_, _, _ = DecodeGroupSeqs(b)
		_, _, _ = DecodeGroupConsumer(b)
	})
}
