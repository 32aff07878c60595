package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/internal/storage/storagetest"
	"github.com/floruntime/flo/wire"
)

// fixture is a machine over a real Pebble database, driven by hand.
type fixture struct {
	t   *testing.T
	db  *storage.DB
	m   *Machine
	now int64 // ns; every command advances it by 1 ms unless set
	lim Limits
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

func setup(t *testing.T, lim Limits) *fixture {
	t.Helper()
	db := storagetest.Open(t, t.TempDir(), storage.Options{})
	m := NewWithLimits(db, lim)
	if err := m.Load(db); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, db: db, m: m, now: t0, lim: lim}
}

// reload replaces the machine with one rebuilt from storage.
func (f *fixture) reload() {
	f.t.Helper()
	f.m = NewWithLimits(f.db, f.lim)
	if err := f.m.Load(f.db); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) tick(d time.Duration) { f.now += int64(d) }

// apply runs a write (or pulse) in its own committed batch.
func (f *fixture) apply(op wire.Op, stream string, value []byte, opts wire.Options) command.Result {
	f.t.Helper()
	f.now += int64(time.Millisecond)
	b := f.db.NewBatch()
	r := f.m.Apply(&command.Command{Op: command.Op(op), Time: f.now, Namespace: "ns", Key: []byte(stream), Value: value, Options: opts}, b)
	if err := f.db.Commit(b, false); err != nil {
		f.t.Fatal(err)
	}
	f.m.Committed()
	return r
}

func (f *fixture) pulse() command.Result {
	f.t.Helper()
	b := f.db.NewBatch()
	r := f.m.Apply(&command.Command{Op: command.OpPulse, Time: f.now}, b)
	if err := f.db.Commit(b, false); err != nil {
		f.t.Fatal(err)
	}
	f.m.Committed()
	return r
}

func (f *fixture) readCmd(op wire.Op, stream string, value []byte, opts wire.Options) command.Result {
	f.t.Helper()
	h := f.m.Handlers()[op]
	return h.Read(&command.Command{Op: command.Op(op), Time: f.now, Namespace: "ns", Key: []byte(stream), Value: value, Options: opts})
}

func (f *fixture) append(stream, payload string, opts wire.Options) wire.StreamAppendReply {
	f.t.Helper()
	r := f.apply(wire.OpStreamAppend, stream, []byte(payload), opts)
	if r.Err != nil {
		f.t.Fatalf("append: %v", r.Err)
	}
	a, err := wire.DecodeStreamAppendReply(r.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

func offsetsOf(t *testing.T, r command.Result) []uint64 {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("unexpected error: %v", r.Err)
	}
	rs, err := wire.DecodeStreamRecords(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := []uint64{}
	for _, x := range rs {
		out = append(out, x.Offset)
	}
	if (len(out) == 0) != r.Empty {
		t.Fatalf("Empty = %v with %d records", r.Empty, len(out))
	}
	return out
}

func (f *fixture) read(stream string, opts wire.Options) []uint64 {
	f.t.Helper()
	return offsetsOf(f.t, f.readCmd(wire.OpStreamRead, stream, nil, opts))
}

func (f *fixture) info(stream string) wire.StreamInfo {
	f.t.Helper()
	r := f.readCmd(wire.OpStreamInfo, stream, nil, nil)
	if len(r.Body) != 32 {
		f.t.Fatalf("info body is %d bytes", len(r.Body))
	}
	i, _ := wire.DecodeStreamInfo(r.Body)
	return i
}

func startAt(id wire.StreamID) wire.Options {
	return wire.AppendStreamID(wire.Options{byte(wire.TagStreamStart), wire.StreamIDSize}, id)
}

func seq(from, to uint64) []uint64 {
	out := []uint64{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func wantStatus(t *testing.T, r command.Result, s wire.Status) {
	t.Helper()
	var we *wire.Error
	if !errors.As(r.Err, &we) || we.Status != s {
		t.Fatalf("err = %v, want status %v", r.Err, s)
	}
}

func TestMachine_AppendOffsetsAndTimestamps(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	a1 := f.append("s", "a", nil)
	a2 := f.append("s", "b", nil)
	if a1.Offset != 1 || a2.Offset != 2 || a2.TimestampMs < a1.TimestampMs {
		t.Fatalf("appends: %+v %+v", a1, a2)
	}
	// The clock steps back: the server timestamp is reused, never lower.
	f.now -= int64(time.Hour)
	a3 := f.append("s", "c", nil)
	if a3.Offset != 3 || a3.TimestampMs != a2.TimestampMs {
		t.Fatalf("clock step back: %+v after %+v", a3, a2)
	}
	// A client timestamp is stored as given and does not move the server's.
	a4 := f.append("s", "d", wire.AppendU64(nil, wire.TagTimestampMs, 42))
	a5 := f.append("s", "e", nil)
	if a4.TimestampMs != 42 || a5.TimestampMs != a3.TimestampMs {
		t.Fatalf("client ts: %+v then %+v", a4, a5)
	}
	// Streams are independent and per namespace.
	if a := f.append("other", "x", nil); a.Offset != 1 {
		t.Fatalf("other stream: %+v", a)
	}
	// The partition key round-trips; an empty key is present.
	f.append("k", "p", wire.AppendOption(nil, wire.TagPartitionKey, []byte("user-1")))
	f.append("k", "q", wire.AppendOption(nil, wire.TagPartitionKey, nil))
	f.append("k", "r", nil)
	rs, _ := wire.DecodeStreamRecords(f.readCmd(wire.OpStreamRead, "k", nil, nil).Body)
	if len(rs) != 3 || !rs[0].HasKey || string(rs[0].Key) != "user-1" || !rs[1].HasKey || len(rs[1].Key) != 0 || rs[2].HasKey {
		t.Fatalf("keys: %+v", rs)
	}
	if i := f.info("s"); i != (wire.StreamInfo{FirstOffset: 1, LastOffset: 5, Count: 5, Bytes: 5}) {
		t.Fatalf("info: %+v", i)
	}
	if i := f.info("k"); i.Bytes != 6+3 {
		t.Fatalf("bytes count key and payload: %+v", i)
	}
	if i := f.info("unknown"); i != (wire.StreamInfo{}) {
		t.Fatalf("unknown: %+v", i)
	}
}

func TestMachine_AppendLimits(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{MaxStreams: 2})
	name := bytes.Repeat([]byte("n"), MaxNameBytes)
	if r := f.apply(wire.OpStreamAppend, string(name), nil, nil); r.Err != nil {
		t.Fatalf("name at limit: %v", r.Err)
	}
	wantStatus(t, f.apply(wire.OpStreamAppend, string(name)+"n", nil, nil), wire.StatusBadRequest)
	wantStatus(t, f.apply(wire.OpStreamAppend, "", nil, nil), wire.StatusBadRequest)
	big := make([]byte, MaxPayloadBytes+1)
	wantStatus(t, f.apply(wire.OpStreamAppend, "s", big, nil), wire.StatusBadRequest)
	if r := f.apply(wire.OpStreamAppend, "s", big[:MaxPayloadBytes], nil); r.Err != nil {
		t.Fatalf("payload at limit: %v", r.Err)
	}
	wantStatus(t, f.apply(wire.OpStreamAppend, "third", nil, nil), wire.StatusOverloaded)
	if r := f.apply(wire.OpStreamAppend, "s", nil, wire.AppendU64(nil, wire.TagTimestampMs, math.MaxInt64)); r.Err != nil {
		t.Fatalf("timestamp at the limit: %v", r.Err)
	}
	over := f.apply(wire.OpStreamAppend, "s", nil, wire.AppendU64(nil, wire.TagTimestampMs, 1<<63))
	wantStatus(t, over, wire.StatusBadRequest)
	if !strings.Contains(over.Err.Error(), "limit of 9223372036854775807") {
		t.Fatalf("refusal does not name the limit: %v", over.Err)
	}
}

func TestMachine_ReadModes(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	for i := 0; i < 20; i++ {
		f.append("s", fmt.Sprint(i), wire.AppendU64(nil, wire.TagTimestampMs, uint64(1000+100*i)))
	}
	cases := []struct {
		name string
		opts wire.Options
		want []uint64
	}{
		{"beginning", nil, seq(1, 20)},
		{"count", wire.AppendU32(nil, wire.TagCount, 3), seq(1, 3)},
		{"count 0 is default", wire.AppendU32(nil, wire.TagCount, 0), seq(1, 20)},
		{"offset inclusive", startAt(wire.StreamID{Sequence: 15}), seq(15, 20)},
		{"offset past end", startAt(wire.StreamID{Sequence: 21}), []uint64{}},
		{"zero id is beginning", startAt(wire.StreamID{}), seq(1, 20)},
		{"tail", wire.AppendU32(wire.AppendFlag(nil, wire.TagStreamTail), wire.TagCount, 4), seq(17, 20)},
		{"tail wins over start", append(wire.AppendFlag(nil, wire.TagStreamTail), startAt(wire.StreamID{Sequence: 2})...), seq(1, 20)},
		{"timestamp exact", startAt(wire.StreamID{TimestampMs: 1500}), seq(6, 20)},
		{"timestamp between", startAt(wire.StreamID{TimestampMs: 1550}), seq(7, 20)},
		{"timestamp before all", startAt(wire.StreamID{TimestampMs: 1}), seq(1, 20)},
		{"timestamp after all", startAt(wire.StreamID{TimestampMs: 99999}), []uint64{}},
		{"end offset", append(startAt(wire.StreamID{Sequence: 3}), wire.AppendStreamID(wire.Options{byte(wire.TagStreamEnd), 16}, wire.StreamID{Sequence: 5})...), seq(3, 5)},
		{"end timestamp", wire.AppendStreamID(wire.Options{byte(wire.TagStreamEnd), 16}, wire.StreamID{TimestampMs: 1250}), seq(1, 3)},
	}
	for _, c := range cases {
		if got := f.read("s", c.opts); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	if got := f.read("s", wire.AppendU32(nil, wire.TagCount, 5000)); len(got) != 20 {
		t.Errorf("count over max is clamped: %d", len(got))
	}
	for i := 0; i < 1100; i++ {
		f.append("big", "x", nil)
	}
	if got := f.read("big", wire.AppendU32(nil, wire.TagCount, 5000)); len(got) != ReadCountMax {
		t.Errorf("count clamps to %d: %d", ReadCountMax, len(got))
	}
	if got := f.read("big", nil); len(got) != ReadCountDefault {
		t.Errorf("default count: %d", len(got))
	}
	wantStatus(t, f.readCmd(wire.OpStreamRead, "s", nil, wire.Options{byte(wire.TagStreamStart), 3, 1, 2, 3}), wire.StatusBadRequest)
	if got := f.read("unknown", nil); len(got) != 0 {
		t.Errorf("unknown stream: %v", got)
	}
}

func TestMachine_TimestampSearchWithOutOfOrderClientTimes(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	for _, ts := range []uint64{100, 500, 200, 300, 600, 400} {
		f.append("s", "x", wire.AppendU64(nil, wire.TagTimestampMs, ts))
	}
	// Earliest offset whose timestamp ≥ T; then offset order.
	if got := f.read("s", startAt(wire.StreamID{TimestampMs: 250})); !reflect.DeepEqual(got, seq(2, 6)) {
		t.Fatalf("ts 250: %v", got)
	}
	if got := f.read("s", startAt(wire.StreamID{TimestampMs: 550})); !reflect.DeepEqual(got, seq(5, 6)) {
		t.Fatalf("ts 550: %v", got)
	}
	// Trim the record holding the running maximum: the search must still
	// start at a record with timestamp ≥ T.
	f.apply(wire.OpStreamTrim, "s", nil, wire.AppendU64(nil, wire.TagRetentionCount, 4)) // keeps 3..6 (200,300,600,400)
	if got := f.read("s", startAt(wire.StreamID{TimestampMs: 250})); !reflect.DeepEqual(got, seq(4, 6)) {
		t.Fatalf("ts 250 after trim: %v", got)
	}
}

func TestMachine_BlockingTailPinsStart(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	f.append("s", "a", nil)
	f.append("s", "b", nil)
	cmd := &command.Command{Op: command.Op(wire.OpStreamRead), Time: f.now, Namespace: "ns", Key: []byte("s"),
		Options: wire.AppendU32(wire.AppendFlag(nil, wire.TagStreamTail), wire.TagBlockMs, 1000)}
	read := f.m.Handlers()[wire.OpStreamRead].Read
	if r := read(cmd); !r.Empty {
		t.Fatalf("first attempt must be empty: %v", offsetsOf(t, r))
	}
	f.append("s", "c", nil)
	f.append("s", "d", nil)
	if got := offsetsOf(t, read(cmd)); !reflect.DeepEqual(got, []uint64{3, 4}) {
		t.Fatalf("re-run: %v", got)
	}
	// A blocking read on an unknown stream waits for offset 1.
	cmd = &command.Command{Op: command.Op(wire.OpStreamRead), Time: f.now, Namespace: "ns", Key: []byte("new"),
		Options: wire.AppendU32(wire.AppendFlag(nil, wire.TagStreamTail), wire.TagBlockMs, 0)}
	if r := read(cmd); !r.Empty {
		t.Fatal("unknown stream: not empty")
	}
	f.append("new", "first", nil)
	if got := offsetsOf(t, read(cmd)); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("new stream re-run: %v", got)
	}
}

func trimOpts(tag wire.Tag, v uint64, dry bool) wire.Options {
	o := wire.AppendU64(nil, tag, v)
	if dry {
		o = wire.AppendFlag(o, wire.TagDryRun)
	}
	return o
}

func (f *fixture) trim(stream string, opts wire.Options) wire.StreamTrimReply {
	f.t.Helper()
	r := f.apply(wire.OpStreamTrim, stream, nil, opts)
	if r.Err != nil {
		f.t.Fatal(r.Err)
	}
	tr, err := wire.DecodeStreamTrimReply(r.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return tr
}

func TestMachine_Trim(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	for i := 1; i <= 10; i++ {
		f.append("s", "0123456789"[:i], nil) // record i has i bytes
		f.tick(time.Second)
	}
	before := f.info("s")
	// Dry runs change nothing.
	for _, o := range []wire.Options{trimOpts(wire.TagRetentionCount, 4, true), trimOpts(wire.TagRetentionBytes, 10, true), trimOpts(wire.TagRetentionAge, 3, true)} {
		tr := f.trim("s", o)
		if tr.Deleted == 0 || f.info("s") != before {
			t.Fatalf("dry run %x: %+v, info %+v", o, tr, f.info("s"))
		}
	}
	if tr := f.trim("s", trimOpts(wire.TagRetentionCount, 4, true)); tr != (wire.StreamTrimReply{Deleted: 6, FirstOffset: 7}) {
		t.Fatalf("dry count: %+v", tr)
	}
	// By count.
	if tr := f.trim("s", trimOpts(wire.TagRetentionCount, 8, false)); tr != (wire.StreamTrimReply{Deleted: 2, FirstOffset: 3}) {
		t.Fatalf("count: %+v", tr)
	}
	if i := f.info("s"); i != (wire.StreamInfo{FirstOffset: 3, LastOffset: 10, Count: 8, Bytes: 52}) {
		t.Fatalf("after count: %+v", i)
	}
	// By bytes: keep at most 30 bytes = records 8, 9, 10 (27 bytes).
	if tr := f.trim("s", trimOpts(wire.TagRetentionBytes, 30, false)); tr != (wire.StreamTrimReply{Deleted: 5, FirstOffset: 8}) {
		t.Fatalf("bytes: %+v", tr)
	}
	if i := f.info("s"); i.Bytes != 27 || i.Count != 3 {
		t.Fatalf("after bytes: %+v", i)
	}
	// By age: records are 1 s apart; now is ~1 s after record 10.
	if tr := f.trim("s", trimOpts(wire.TagRetentionAge, 3, false)); tr.Deleted != 1 || tr.FirstOffset != 9 {
		t.Fatalf("age: %+v", tr)
	}
	if got := f.read("s", nil); !reflect.DeepEqual(got, []uint64{9, 10}) {
		t.Fatalf("read after trims: %v", got)
	}
	// Everything, then offsets continue, across a reload too.
	if tr := f.trim("s", trimOpts(wire.TagRetentionCount, 0, false)); tr != (wire.StreamTrimReply{Deleted: 2}) {
		t.Fatalf("all: %+v", tr)
	}
	if i := f.info("s"); i != (wire.StreamInfo{LastOffset: 10}) {
		t.Fatalf("empty info: %+v", i)
	}
	f.reload()
	if i := f.info("s"); i != (wire.StreamInfo{LastOffset: 10}) {
		t.Fatalf("empty info after reload: %+v", i)
	}
	if a := f.append("s", "next", nil); a.Offset != 11 {
		t.Fatalf("offset after trimming all: %+v", a)
	}
	if i := f.info("s"); i != (wire.StreamInfo{FirstOffset: 11, LastOffset: 11, Count: 1, Bytes: 4}) {
		t.Fatalf("info after: %+v", i)
	}
	f.reload()
	if i := f.info("s"); i != (wire.StreamInfo{FirstOffset: 11, LastOffset: 11, Count: 1, Bytes: 4}) {
		t.Fatalf("info after reload: %+v", i)
	}
	if tr := f.trim("unknown", trimOpts(wire.TagRetentionCount, 0, false)); tr != (wire.StreamTrimReply{}) {
		t.Fatalf("unknown: %+v", tr)
	}
}

func gc(group, consumer string) []byte { return wire.AppendGroupConsumer(nil, group, consumer) }

func (f *fixture) groupRead(group, consumer string, count uint32, extra wire.Options) command.Result {
	f.t.Helper()
	return f.apply(wire.OpStreamGroupRead, "s", gc(group, consumer), append(wire.AppendU32(nil, wire.TagCount, count), extra...))
}

func (f *fixture) dead(group string) []uint64 {
	f.t.Helper()
	r := f.readCmd(wire.OpStreamGroupDLQList, "s", wire.AppendGroupName(nil, group), wire.AppendU32(nil, wire.TagLimit, 1000))
	if r.Err != nil {
		f.t.Fatal(r.Err)
	}
	ds, err := wire.DecodeStreamDeadRecords(r.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	out := []uint64{}
	for _, d := range ds {
		out = append(out, d.Offset)
	}
	return out
}

func TestMachine_GroupDeliveryAckLeave(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	for i := 0; i < 30; i++ {
		f.append("s", "x", nil)
	}
	if got := offsetsOf(t, f.apply(wire.OpStreamGroupRead, "s", gc("g", "a"), nil)); !reflect.DeepEqual(got, seq(1, 10)) {
		t.Fatalf("default count 10: %v", got)
	}
	if got := offsetsOf(t, f.groupRead("g", "b", 5, nil)); !reflect.DeepEqual(got, seq(11, 15)) {
		t.Fatalf("b: %v", got)
	}
	ack := f.apply(wire.OpStreamGroupAck, "s", wire.AppendGroupSeqs(nil, "g", append(seq(1, 10), 999)), nil)
	if binary.LittleEndian.Uint64(ack.Body) != 10 {
		t.Fatalf("acked %x", ack.Body)
	}
	leave := f.apply(wire.OpStreamGroupLeave, "s", gc("g", "b"), nil)
	if len(leave.Wake) != 1 {
		t.Fatalf("leave wakes the group: %v", leave.Wake)
	}
	r := f.groupRead("g", "a", 7, nil)
	rs, _ := wire.DecodeStreamRecords(r.Body)
	if got := offsetsOf(t, r); !reflect.DeepEqual(got, seq(11, 17)) || rs[0].Tier != wire.StreamTierPending || rs[6].Tier != wire.StreamTierHot {
		t.Fatalf("after leave: %v %+v", got, rs)
	}
	// A new group starts at the beginning; groups are independent.
	if got := offsetsOf(t, f.groupRead("other", "z", 100, nil)); len(got) != 30 {
		t.Fatalf("other group: %d", len(got))
	}
	// Nothing new: empty. Ack/nack/touch on an unknown group: no-op.
	if r := f.groupRead("other", "z", 10, nil); !r.Empty {
		t.Fatal("exhausted group must be empty")
	}
	for _, op := range []wire.Op{wire.OpStreamGroupAck, wire.OpStreamGroupNack, wire.OpStreamGroupTouch, wire.OpStreamGroupDLQRequeue} {
		if r := f.apply(op, "s", wire.AppendGroupSeqs(nil, "nope", []uint64{1}), nil); r.Err != nil || binary.LittleEndian.Uint64(r.Body) != 0 {
			t.Fatalf("op %x on unknown group: %+v", op, r)
		}
	}
	if r := f.apply(wire.OpStreamGroupLeave, "s", gc("nope", "x"), nil); r.Err != nil {
		t.Fatal(r.Err)
	}
	// State survives a reload: g holds 11..17 (a), cursor 17.
	f.reload()
	if got := offsetsOf(t, f.groupRead("g", "c", 100, nil)); !reflect.DeepEqual(got, seq(18, 30)) {
		t.Fatalf("after reload: %v", got)
	}
}

func TestMachine_GroupRedeliveryMaxDeliverAndDeadLetters(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	for i := 0; i < 3; i++ {
		f.append("s", fmt.Sprint("p", i), nil)
	}
	settings := wire.AppendU8(wire.AppendU32(nil, wire.TagAckTimeoutMs, 100), wire.TagMaxDeliver, 2)
	if r := f.apply(wire.OpStreamGroupJoin, "s", gc("g", "a"), settings); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := offsetsOf(t, f.groupRead("g", "a", 10, nil)); !reflect.DeepEqual(got, seq(1, 3)) {
		t.Fatalf("first: %v", got)
	}
	f.apply(wire.OpStreamGroupAck, "s", wire.AppendGroupSeqs(nil, "g", []uint64{2}), nil)
	// Within the deadline nobody gets them again, the holder included.
	if r := f.groupRead("g", "b", 10, nil); !r.Empty {
		t.Fatalf("before deadline: %v", offsetsOf(t, r))
	}
	due := f.m.NextDue()
	if due == 0 || due > f.now+int64(100*time.Millisecond) {
		t.Fatalf("NextDue = %d, now %d", due, f.now)
	}
	f.now = due
	if r := f.pulse(); len(r.Wake) != 1 {
		t.Fatalf("pulse wakes the group: %v", r.Wake)
	}
	if got := offsetsOf(t, f.groupRead("g", "b", 10, nil)); !reflect.DeepEqual(got, []uint64{1, 3}) {
		t.Fatalf("redelivered: %v", got)
	}
	// Touch keeps 3 alive; 1 expires again with 2 deliveries: dead letter.
	f.tick(60 * time.Millisecond)
	f.apply(wire.OpStreamGroupTouch, "s", wire.AppendGroupSeqs(nil, "g", []uint64{3}), nil)
	f.tick(60 * time.Millisecond)
	f.pulse()
	if got := f.dead("g"); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("dead: %v", got)
	}
	// Nack of 3 (2 deliveries) dead-letters it at once.
	f.apply(wire.OpStreamGroupNack, "s", wire.AppendGroupSeqs(nil, "g", []uint64{3}), nil)
	if got := f.dead("g"); !reflect.DeepEqual(got, []uint64{1, 3}) {
		t.Fatalf("dead after nack: %v", got)
	}
	if r := f.groupRead("g", "b", 10, nil); !r.Empty {
		t.Fatalf("dead letters are not delivered: %v", offsetsOf(t, r))
	}
	// Dead letters survive a reload; requeue hands them out first, count reset.
	f.reload()
	if got := f.dead("g"); !reflect.DeepEqual(got, []uint64{1, 3}) {
		t.Fatalf("dead after reload: %v", got)
	}
	rq := f.apply(wire.OpStreamGroupDLQRequeue, "s", wire.AppendGroupSeqs(nil, "g", []uint64{3, 1, 77}), nil)
	if binary.LittleEndian.Uint64(rq.Body) != 2 || len(rq.Wake) != 1 {
		t.Fatalf("requeue: %+v", rq)
	}
	f.append("s", "new", nil)
	if got := offsetsOf(t, f.groupRead("g", "c", 10, nil)); !reflect.DeepEqual(got, []uint64{1, 3, 4}) {
		t.Fatalf("after requeue: %v", got)
	}
	if got := f.dead("g"); len(got) != 0 {
		t.Fatalf("dead after requeue: %v", got)
	}
}

func TestMachine_GroupLimits(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{MaxGroupsPerStream: 2, MaxPendingPerGroup: 5, MaxDeadLetters: 3})
	for i := 0; i < 10; i++ {
		f.append("s", "x", nil)
	}
	f.groupRead("g1", "c", 1, nil)
	f.groupRead("g2", "c", 1, nil)
	wantStatus(t, f.groupRead("g3", "c", 1, nil), wire.StatusOverloaded)
	// The PEL holds at most 5: 1 + 4 more, then nothing new until an ack.
	if got := offsetsOf(t, f.groupRead("g1", "c", 100, nil)); !reflect.DeepEqual(got, seq(2, 5)) {
		t.Fatalf("up to the PEL limit: %v", got)
	}
	if r := f.groupRead("g1", "c", 100, nil); !r.Empty {
		t.Fatal("PEL full: must be empty")
	}
	if ack := f.apply(wire.OpStreamGroupAck, "s", wire.AppendGroupSeqs(nil, "g1", []uint64{1}), nil); len(ack.Wake) != 1 {
		t.Fatalf("ack of a full PEL wakes readers: %v", ack.Wake)
	}
	if got := offsetsOf(t, f.groupRead("g1", "c", 100, nil)); !reflect.DeepEqual(got, []uint64{6}) {
		t.Fatalf("after ack: %v", got)
	}
	// Dead-letter list keeps the 3 highest offsets.
	f.apply(wire.OpStreamGroupJoin, "s", gc("g1", "c"), wire.AppendU8(nil, wire.TagMaxDeliver, 1))
	f.apply(wire.OpStreamGroupNack, "s", wire.AppendGroupSeqs(nil, "g1", seq(2, 6)), nil)
	if got := f.dead("g1"); !reflect.DeepEqual(got, []uint64{4, 5, 6}) {
		t.Fatalf("dead list cap: %v", got)
	}
	f.reload()
	if got := f.dead("g1"); !reflect.DeepEqual(got, []uint64{4, 5, 6}) {
		t.Fatalf("dead list after reload: %v", got)
	}
	// Settings at and past their limits.
	maxMs := uint64(AckTimeoutMax / time.Millisecond)
	if r := f.apply(wire.OpStreamGroupJoin, "s", gc("g1", "c"), wire.AppendU64(nil, wire.TagAckTimeoutMs, maxMs)); r.Err != nil {
		t.Fatal(r.Err)
	}
	wantStatus(t, f.apply(wire.OpStreamGroupJoin, "s", gc("g1", "c"), wire.AppendU64(nil, wire.TagAckTimeoutMs, maxMs+1)), wire.StatusBadRequest)
	if r := f.apply(wire.OpStreamGroupJoin, "s", gc("g1", "c"), wire.AppendU32(nil, wire.TagMaxDeliver, MaxDeliverMax)); r.Err != nil {
		t.Fatal(r.Err)
	}
	wantStatus(t, f.apply(wire.OpStreamGroupJoin, "s", gc("g1", "c"), wire.AppendU32(nil, wire.TagMaxDeliver, MaxDeliverMax+1)), wire.StatusBadRequest)
	long := string(bytes.Repeat([]byte("c"), MaxNameBytes))
	if r := f.apply(wire.OpStreamGroupJoin, "s", gc("g1", long), nil); r.Err != nil {
		t.Fatal(r.Err)
	}
	wantStatus(t, f.apply(wire.OpStreamGroupJoin, "s", gc("g1", long+"c"), nil), wire.StatusBadRequest)
	wantStatus(t, f.apply(wire.OpStreamGroupJoin, "s", gc("", "c"), nil), wire.StatusBadRequest)
	wantStatus(t, f.apply(wire.OpStreamGroupRead, "s", []byte{1}, nil), wire.StatusBadRequest)
	wantStatus(t, f.apply(wire.OpStreamGroupAck, "s", []byte{1, 0, 'g', 5, 0, 0, 0}, nil), wire.StatusBadRequest)
}

func TestMachine_GroupSkipsTrimmedRecords(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	for i := 0; i < 6; i++ {
		f.append("s", "x", nil)
	}
	f.groupRead("g", "a", 2, wire.AppendU32(nil, wire.TagAckTimeoutMs, 10)) // 1, 2 pending
	f.trim("s", trimOpts(wire.TagRetentionCount, 3, false))                 // keeps 4..6
	f.tick(20 * time.Millisecond)
	if got := offsetsOf(t, f.groupRead("g", "b", 10, nil)); !reflect.DeepEqual(got, seq(4, 6)) {
		t.Fatalf("trimmed pending and new: %v", got)
	}
}

// dump returns every key and value of the database, in order.
func dump(t *testing.T, db *storage.DB) []byte {
	t.Helper()
	var out []byte
	if err := db.Iterate(nil, []byte{0xFF}, false, func(k, v []byte) bool {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMachine_GroupCountAndDeadListClamp(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	for i := 0; i < 1001; i++ {
		f.append("s", "x", nil)
	}
	f.apply(wire.OpStreamGroupJoin, "s", gc("g", "c"), wire.AppendU8(nil, wire.TagMaxDeliver, 1))
	first := offsetsOf(t, f.groupRead("g", "c", GroupReadCountMax+1, nil))
	if len(first) != GroupReadCountMax {
		t.Fatalf("group read count clamps to %d: %d", GroupReadCountMax, len(first))
	}
	rest := offsetsOf(t, f.groupRead("g", "c", GroupReadCountMax, nil))
	if !reflect.DeepEqual(rest, []uint64{1001}) {
		t.Fatalf("rest: %v", rest)
	}
	f.apply(wire.OpStreamGroupNack, "s", wire.AppendGroupSeqs(nil, "g", seq(1, 1001)), nil)
	list := func(limit uint32) int {
		r := f.readCmd(wire.OpStreamGroupDLQList, "s", wire.AppendGroupName(nil, "g"), wire.AppendU32(nil, wire.TagLimit, limit))
		ds, err := wire.DecodeStreamDeadRecords(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}
	if n := list(DeadListMax + 1); n != DeadListMax {
		t.Fatalf("dead list limit clamps to %d: %d", DeadListMax, n)
	}
	if n := list(0); n != DeadListDefault {
		t.Fatalf("dead list default: %d", n)
	}
}

// TestMachine_RefusedGroupCommandStillWakes: a join refused at the group
// limit has already moved expired entries back to ready; its result must
// still wake that group's parked readers (no pulse is due for them).
func TestMachine_RefusedGroupCommandStillWakes(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{MaxGroupsPerStream: 1})
	f.append("s", "x", nil)
	f.apply(wire.OpStreamGroupJoin, "s", gc("g1", "c"), wire.AppendU64(nil, wire.TagAckTimeoutMs, 100))
	if got := offsetsOf(t, f.groupRead("g1", "c", 1, nil)); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("first read: %v", got)
	}
	f.tick(200 * time.Millisecond) // the entry's ack timeout has passed
	r := f.apply(wire.OpStreamGroupJoin, "s", gc("g2", "c"), nil)
	wantStatus(t, r, wire.StatusOverloaded)
	if len(r.Wake) != 1 {
		t.Fatalf("refused join made an entry redeliverable but wakes %v", r.Wake)
	}
}

// TestMachine_TailWithUnreadableBlockMsDoesNotBlock: a BLOCK_MS the server
// cannot read (3 bytes) does not park the call, so the TAIL read must
// answer like a non-blocking one.
func TestMachine_TailWithUnreadableBlockMsDoesNotBlock(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	f.append("s", "a", nil)
	f.append("s", "b", nil)
	opts := wire.AppendOption(wire.AppendU32(wire.AppendFlag(nil, wire.TagStreamTail), wire.TagCount, 1), wire.TagBlockMs, []byte{1, 2, 3})
	if got := f.read("s", opts); !reflect.DeepEqual(got, []uint64{2}) {
		t.Fatalf("tail read with a 3-byte BLOCK_MS: %v", got)
	}
}

// TestMachine_TailReadIgnoresUncommittedAppends: while a group with an
// append is being applied (not committed), a TAIL read answers the newest
// committed records, not an empty range past them.
func TestMachine_TailReadIgnoresUncommittedAppends(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	f.append("s", "a", nil)
	f.append("s", "b", nil)
	b := f.db.NewBatch() // a group in progress: applied, not committed
	f.m.Apply(&command.Command{Op: command.Op(wire.OpStreamAppend), Time: f.now + 1, Namespace: "ns", Key: []byte("s"), Value: []byte("c")}, b)
	tail := wire.AppendU32(wire.AppendFlag(nil, wire.TagStreamTail), wire.TagCount, 1)
	if got := f.read("s", tail); !reflect.DeepEqual(got, []uint64{2}) {
		t.Fatalf("tail read during an uncommitted append: %v", got)
	}
	if err := f.db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	f.m.Committed()
	if got := f.read("s", tail); !reflect.DeepEqual(got, []uint64{3}) {
		t.Fatalf("tail read after the commit: %v", got)
	}
}

// TestMachine_DeadLetteringFromAFullPELWakesReaders: a group read parked on
// a full PEL must be woken when entries leave it for the dead-letter list
// (by their deadline or by a nack), since new records can then be read.
func TestMachine_DeadLetteringFromAFullPELWakesReaders(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{MaxPendingPerGroup: 1})
	for range 3 {
		f.append("s", "x", nil)
	}
	f.apply(wire.OpStreamGroupJoin, "s", gc("g", "c"), append(wire.AppendU64(nil, wire.TagAckTimeoutMs, 100), wire.AppendU32(nil, wire.TagMaxDeliver, 1)...))
	if got := offsetsOf(t, f.groupRead("g", "c", 10, nil)); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("first read: %v", got)
	}
	if r := f.groupRead("g", "c", 10, nil); !r.Empty {
		t.Fatal("PEL full: must be empty")
	}
	f.tick(200 * time.Millisecond)
	if r := f.pulse(); len(r.Wake) != 1 {
		t.Fatalf("entry dead-lettered by its deadline, PEL has room, but the pulse wakes %v", r.Wake)
	}
	if got := offsetsOf(t, f.groupRead("g", "c", 10, nil)); !reflect.DeepEqual(got, []uint64{2}) {
		t.Fatalf("after the dead-letter: %v", got)
	}
	if r := f.apply(wire.OpStreamGroupNack, "s", wire.AppendGroupSeqs(nil, "g", []uint64{2}), nil); len(r.Wake) != 1 {
		t.Fatalf("nack that dead-letters from a full PEL wakes %v", r.Wake)
	}
}

// TestMachine_EndTimestampAfterTrimmingTheRunningMaximum: with client
// timestamps 1000, 500, 600 and the first trimmed, END at 700 covers the
// two records left (both ≤ 700), although the running maximum the search
// uses still says 1000.
func TestMachine_EndTimestampAfterTrimmingTheRunningMaximum(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	for _, ts := range []uint64{1000, 500, 600} {
		f.append("s", "x", wire.AppendU64(nil, wire.TagTimestampMs, ts))
	}
	end := func(ts uint64) wire.Options {
		return wire.AppendStreamID(wire.Options{byte(wire.TagStreamEnd), 16}, wire.StreamID{TimestampMs: ts})
	}
	if got := f.read("s", end(700)); len(got) != 0 {
		t.Fatalf("before the trim, END 700 stops at the first record (1000): %v", got)
	}
	f.apply(wire.OpStreamTrim, "s", nil, wire.AppendU64(nil, wire.TagRetentionCount, 2)) // keeps 2, 3
	if got := f.read("s", end(700)); !reflect.DeepEqual(got, seq(2, 3)) {
		t.Fatalf("after the trim, END 700: %v", got)
	}
	if got := f.read("s", end(550)); !reflect.DeepEqual(got, seq(2, 2)) {
		t.Fatalf("after the trim, END 550: %v", got)
	}
}

// TestMachine_RecordListsStopAtMaxReplyBytes: reads and group reads stop
// once the list passes MaxReplyBytes, but always carry at least one record.
func TestMachine_RecordListsStopAtMaxReplyBytes(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{MaxReplyBytes: 250})
	big := string(bytes.Repeat([]byte("b"), 1000))
	f.append("s", big, nil)
	for range 5 {
		f.append("s", string(bytes.Repeat([]byte("x"), 100)), nil)
	}
	if got := f.read("s", wire.AppendU32(nil, wire.TagCount, 10)); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("a record over the limit still comes alone: %v", got)
	}
	got := f.read("s", append(startAt(wire.StreamID{Sequence: 2}), wire.AppendU32(nil, wire.TagCount, 10)...))
	if len(got) < 1 || len(got) >= 5 || got[0] != 2 {
		t.Fatalf("read of five 100-byte records under a 250-byte limit: %v", got)
	}
	first := offsetsOf(t, f.groupRead("g", "c", 10, nil))
	if !reflect.DeepEqual(first, []uint64{1}) {
		t.Fatalf("group read: %v", first)
	}
	if more := offsetsOf(t, f.groupRead("g", "c", 10, nil)); len(more) < 1 || len(more) >= 5 {
		t.Fatalf("second group read under the limit: %v", more)
	}
}

// TestMachine_InfoIgnoresUncommittedAppends: while a group with an append
// is being applied (not committed), STREAM_INFO answers the committed
// stream, like reads: it must not name a last offset that a read of that
// offset cannot return yet.
func TestMachine_InfoIgnoresUncommittedAppends(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	f.append("s", "a", nil)
	f.append("s", "bb", nil)
	want := f.info("s")
	b := f.db.NewBatch() // a group in progress: applied, not committed
	f.m.Apply(&command.Command{Op: command.Op(wire.OpStreamAppend), Time: f.now + 1, Namespace: "ns", Key: []byte("s"), Value: []byte("ccc")}, b)
	if got := f.info("s"); got != want {
		t.Fatalf("info during an uncommitted append: %+v, want %+v", got, want)
	}
	if got := f.read("s", startAt(wire.StreamID{Sequence: 3})); len(got) != 0 {
		t.Fatalf("read of the uncommitted offset: %v", got)
	}
	if err := f.db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	f.m.Committed()
	if got := f.info("s"); got != (wire.StreamInfo{FirstOffset: 1, LastOffset: 3, Count: 3, Bytes: 6}) {
		t.Fatalf("info after the commit: %+v", got)
	}
}

// TestMachine_GroupDefaultAckTimeoutIs30s: without settings a delivery's
// deadline is 30 s after it (D10); nobody gets the record before then, the
// next reader does after.
func TestMachine_GroupDefaultAckTimeoutIs30s(t *testing.T) {
	t.Parallel()
	f := setup(t, Limits{})
	f.append("s", "x", nil)
	if got := offsetsOf(t, f.groupRead("g", "a", 10, nil)); !reflect.DeepEqual(got, seq(1, 1)) {
		t.Fatalf("first: %v", got)
	}
	delivered := f.now
	if due := f.m.NextDue(); due != delivered+int64(AckTimeoutDefault) || AckTimeoutDefault != 30*time.Second {
		t.Fatalf("NextDue = %d, want delivery time %d + 30 s", due, delivered)
	}
	f.now = delivered + int64(AckTimeoutDefault) - int64(2*time.Millisecond) // apply adds 1 ms
	if r := f.groupRead("g", "b", 10, nil); !r.Empty {
		t.Fatalf("redelivered before 30 s: %v", offsetsOf(t, r))
	}
	f.now = delivered + int64(AckTimeoutDefault)
	if got := offsetsOf(t, f.groupRead("g", "b", 10, nil)); !reflect.DeepEqual(got, seq(1, 1)) {
		t.Fatalf("after 30 s: %v", got)
	}
}
