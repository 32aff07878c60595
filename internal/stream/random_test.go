package stream

import (
	"bytes"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// TestMachine_ReloadAnswersLikeNeverReloaded feeds seeded random command
// streams (appends with client timestamps, every group operation, trims
// of every policy and dry runs, pulses) to two machines with tight limits,
// one of which is rebuilt from storage at random points. After every
// command both must give the same answer to every write and to every read
// (reads from the start, an offset, a timestamp or the tail, up to an end
// timestamp; info; dead-letter lists) and have the same NextDue: whatever
// memory holds must be exactly what Load rebuilds.
//
// Seeds 1–4 run with tight limits, so refusals and evictions are common;
// seed 5 with roomy ones and longer, so groups build up deep pending lists.
func TestMachine_ReloadAnswersLikeNeverReloaded(t *testing.T) {
	t.Parallel()
	tight := Limits{MaxStreams: 2, MaxGroupsPerStream: 2, MaxPendingPerGroup: 4, MaxDeadLetters: 3, MaxReplyBytes: 600}
	roomy := Limits{MaxPendingPerGroup: 40, MaxDeadLetters: 8}
	for seed := int64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			if seed == 5 {
				runReloadCompare(t, seed, 1500, roomy)
				return
			}
			runReloadCompare(t, seed, 1000, tight)
		})
	}
}

func runReloadCompare(t *testing.T, seed int64, steps int, lim Limits) {
	a, b := setup(t, lim), setup(t, lim)
	// a's tail cache is tiny, so it keeps evicting and resetting; b's is
	// the default and starts empty at every reload.
	a.m.tails.budget, a.m.tails.segmentSize, a.m.tails.maxRecord = 400, 150, 100
	rng := rand.New(rand.NewSource(seed))
	streams := []string{"s1", "s2", "s3"}
	groups := []string{"g1", "g2", "g3"}
	consumers := []string{"c1", "c2"}
	last := map[string]uint64{}
	ts := func() uint64 { return uint64(rng.Intn(2000) + 1) }
	id := func(tag wire.Tag, sid wire.StreamID) wire.Options {
		return wire.AppendStreamID(wire.Options{byte(tag), wire.StreamIDSize}, sid)
	}
	var group *storage.PebbleBatch // a's open batch
	for i := 0; i < steps; i++ {
		s := streams[rng.Intn(len(streams))]
		g := groups[rng.Intn(len(groups))]
		c := consumers[rng.Intn(len(consumers))]
		var offs []uint64
		for range rng.Intn(4) {
			offs = append(offs, uint64(rng.Intn(int(last[s])+3)+1))
		}
		var op wire.Op
		var value []byte
		var opts wire.Options
		switch x := rng.Intn(100); {
		case x < 35:
			op, value = wire.OpStreamAppend, bytes.Repeat([]byte{'v'}, rng.Intn(80))
			if rng.Intn(2) == 0 {
				opts = wire.AppendU64(nil, wire.TagTimestampMs, ts())
			}
		case x < 50:
			op, value = wire.OpStreamGroupRead, gc(g, c)
			opts = wire.AppendU32(nil, wire.TagCount, uint32(rng.Intn(6)))
			if rng.Intn(6) == 0 {
				opts = wire.AppendU32(opts, wire.TagAckTimeoutMs, uint32(rng.Intn(60)+1))
			}
			if rng.Intn(6) == 0 {
				opts = wire.AppendU8(opts, wire.TagMaxDeliver, uint8(rng.Intn(3)+1))
			}
		case x < 60:
			op, value = wire.OpStreamGroupAck, wire.AppendGroupSeqs(nil, g, offs)
		case x < 65:
			op, value = wire.OpStreamGroupNack, wire.AppendGroupSeqs(nil, g, offs)
		case x < 69:
			op, value = wire.OpStreamGroupTouch, wire.AppendGroupSeqs(nil, g, offs)
		case x < 73:
			op, value = wire.OpStreamGroupDLQRequeue, wire.AppendGroupSeqs(nil, g, offs)
		case x < 76:
			op, value = wire.OpStreamGroupLeave, gc(g, c)
		case x < 78:
			op, value = wire.OpStreamGroupJoin, gc(g, c)
		case x < 84:
			op = wire.OpStreamTrim
			for _, tag := range []wire.Tag{wire.TagRetentionCount, wire.TagRetentionBytes, wire.TagRetentionAge} {
				if rng.Intn(2) == 0 {
					opts = wire.AppendU64(opts, tag, uint64(rng.Intn(20)))
				}
			}
			if rng.Intn(4) == 0 {
				opts = append(opts, byte(wire.TagDryRun), 0)
			}
		default:
			op = 0 // time passes, then a pulse
		}
		step := time.Duration(rng.Intn(30)) * time.Millisecond
		if rng.Intn(50) == 0 {
			step = time.Second
		}
		a.tick(step)
		b.tick(step)
		// a applies commands in groups sharing one batch, as the journal
		// does; b commits each on its own.
		if group == nil {
			group = a.db.NewBatch()
		}
		cmd := &command.Command{Op: command.Op(op), Time: a.now, Namespace: "ns", Key: []byte(s), Value: value, Options: opts}
		if op == 0 {
			cmd = &command.Command{Op: command.OpPulse, Time: a.now}
		} else {
			a.now += int64(time.Millisecond)
			cmd.Time = a.now
		}
		ra := a.m.Apply(cmd, group)
		var rb command.Result
		if op == 0 {
			rb = b.pulse()
		} else {
			rb = b.apply(op, s, value, opts)
		}
		if !sameResult(ra, rb) {
			t.Fatalf("step %d (op %x on %s): results differ:\nnever reloaded %+v\nreloaded       %+v", i, op, s, ra, rb)
		}
		if op == wire.OpStreamAppend && ra.Err == nil {
			r, _ := wire.DecodeStreamAppendReply(ra.Body)
			last[s] = r.Offset
		}
		if rng.Intn(3) != 0 {
			continue // a's group goes on; nothing of it is visible yet
		}
		if err := a.db.Commit(group, false); err != nil {
			t.Fatal(err)
		}
		a.m.Committed()
		group = nil
		if rng.Intn(40) == 0 {
			b.reload()
		}
		if a.m.NextDue() != b.m.NextDue() {
			t.Fatalf("step %d: NextDue %d, reloaded %d", i, a.m.NextDue(), b.m.NextDue())
		}
		for _, s := range streams {
			reads := []wire.Options{
				nil,
				wire.AppendU32(nil, wire.TagCount, 3),
				id(wire.TagStreamStart, wire.StreamID{Sequence: uint64(rng.Intn(int(last[s])+2) + 1)}),
				id(wire.TagStreamStart, wire.StreamID{TimestampMs: ts()}),
				id(wire.TagStreamEnd, wire.StreamID{TimestampMs: ts()}),
				append(id(wire.TagStreamStart, wire.StreamID{TimestampMs: ts()}), id(wire.TagStreamEnd, wire.StreamID{TimestampMs: ts()})...),
				append(wire.Options{byte(wire.TagStreamTail), 0}, wire.AppendU32(nil, wire.TagCount, uint32(rng.Intn(4)+1))...),
			}
			for _, o := range reads {
				ra := a.readCmd(wire.OpStreamRead, s, nil, o)
				rb := b.readCmd(wire.OpStreamRead, s, nil, o)
				if !sameResult(ra, rb) {
					t.Fatalf("step %d: read %s %x differs:\nnever reloaded %+v\nreloaded       %+v", i, s, o, ra, rb)
				}
			}
			if ia, ib := a.info(s), b.info(s); ia != ib {
				t.Fatalf("step %d: info %s: %+v, reloaded %+v", i, s, ia, ib)
			}
			for _, g := range groups {
				o := wire.AppendU32(nil, wire.TagLimit, 1000)
				ra := a.readCmd(wire.OpStreamGroupDLQList, s, wire.AppendGroupName(nil, g), o)
				rb := b.readCmd(wire.OpStreamGroupDLQList, s, wire.AppendGroupName(nil, g), o)
				if !sameResult(ra, rb) {
					t.Fatalf("step %d: dead list %s/%s differs:\nnever reloaded %+v\nreloaded       %+v", i, s, g, ra, rb)
				}
			}
		}
	}
	if group != nil {
		if err := a.db.Commit(group, false); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(dump(t, a.db), dump(t, b.db)) {
		t.Fatal("databases differ")
	}
}

// sameResult compares two results; wake-ups are a set.
func sameResult(a, b command.Result) bool {
	wa, wb := slices.Clone(a.Wake), slices.Clone(b.Wake)
	slices.Sort(wa)
	slices.Sort(wb)
	return bytes.Equal(a.Body, b.Body) && fmt.Sprint(a.Err) == fmt.Sprint(b.Err) && a.Empty == b.Empty && slices.Equal(wa, wb)
}
