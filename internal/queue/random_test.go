package queue

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/wire"
)

// TestMachine_RandomInvariants feeds seeded random command streams (every
// operation, pulses, time jumps and reloads) to a machine and, after every
// command, checks Machine.Check plus a model of where each message may be:
//
//   - every message ever enqueued is in exactly one of ready, delayed,
//     leased, DLQ, or gone; it is gone only through an ack (of a message not
//     in the DLQ), a DLQ delete, or a DLQ eviction by a command that
//     dead-lettered something;
//   - a gone message never comes back, and seqs are never reused;
//   - a dequeue returns only messages that were deliverable and leaves
//     them leased.
//
// A twin machine gets the same stream; the two must answer every command
// identically and end with byte-identical storage (determinism). A third,
// eager machine also gets a pulse before every command: it must answer
// the same, which shows that lazy expiry in writes and computed expiry in
// reads are indistinguishable from exact timers.
func TestMachine_RandomInvariants(t *testing.T) {
	t.Parallel()
	seeds := uint64(8)
	if n, err := strconv.ParseUint(os.Getenv("FLO_QUEUE_RANDOM_SEEDS"), 10, 64); err == nil {
		seeds = n // more, when hunting
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			runRandom(t, seed, 1500)
		})
	}
}

func runRandom(t *testing.T, seed uint64, steps int) {
	lim := Limits{MaxDeliveries: 3, DLQMax: 6, DedupHold: 400 * time.Millisecond}
	// h, the machine that reloads, keeps its storage churning through
	// flushes and compactions.
	h := setupChurning(t, lim)
	twin := setup(t, lim)
	// eager gets a pulse before every command, so nothing is ever due when
	// a command runs: its answers must match h's, whose writes apply due
	// changes lazily and whose reads compute them.
	eager := setup(t, lim)
	// h holds payloads within a budget it keeps running into and twin holds
	// none, so equal answers mean held payloads are what storage has.
	h.m.payloadBudget = 40
	twin.m.payloadBudget = 0
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	queues := []string{"a", "b"}
	gone := map[string]map[uint64]bool{"a": {}, "b": {}}
	lastSeq := map[string]uint64{}

	states := func(name string) map[uint64]state {
		h.m.mu.RLock()
		defer h.m.mu.RUnlock()
		out := map[uint64]state{}
		if q := h.m.queues[h.ns][name]; q != nil {
			for s, msg := range q.msgs {
				out[s] = msg.state
			}
		}
		return out
	}
	pickSeqs := func(name string) []uint64 {
		var all []uint64
		for s := range states(name) {
			all = append(all, s)
		}
		slices.Sort(all)
		var out []uint64
		for _, s := range all {
			if rng.IntN(3) == 0 {
				out = append(out, s)
			}
		}
		if rng.IntN(4) == 0 {
			out = append(out, lastSeq[name]+uint64(rng.IntN(3))+1) // unknown
		}
		if len(out) > 0 && rng.IntN(5) == 0 {
			out = append(out, out[0]) // duplicate
		}
		return out
	}

	for step := 0; step < steps; step++ {
		name := queues[rng.IntN(len(queues))]
		before := states(name)
		var op wire.Op
		var value []byte
		var opts wire.Options
		var listed []uint64
		switch k := rng.IntN(100); {
		case k < 25:
			op = wire.OpQueueEnqueue
			value = []byte(fmt.Sprint("p", step))
			if rng.IntN(2) == 0 {
				opts = wire.AppendU8(opts, wire.TagPriority, uint8(rng.IntN(3)))
			}
			if rng.IntN(4) == 0 {
				opts = wire.AppendU64(opts, wire.TagDelayMs, uint64(rng.IntN(300)))
			}
			if rng.IntN(3) == 0 {
				opts = wire.AppendOption(opts, wire.TagDedupKey, []byte(fmt.Sprint("k", rng.IntN(5))))
			}
		case k < 45:
			op = wire.OpQueueDequeue
			opts = wire.AppendU32(opts, wire.TagCount, uint32(rng.IntN(4)))
			opts = wire.AppendU32(opts, wire.TagVisibilityTimeoutMs, uint32(20+rng.IntN(300)))
			if rng.IntN(2) == 0 {
				opts = wire.AppendFlag(opts, wire.TagMessageDetail)
			}
			if rng.IntN(3) == 0 {
				// Ack first, in the same command (docs/protocol.md).
				listed = pickSeqs(name)
				value = wire.AppendSeqList(nil, listed)
			}
		case k < 58:
			op = wire.OpQueueAck
		case k < 70:
			op = wire.OpQueueNack
			switch rng.IntN(4) {
			case 0:
				opts = wire.AppendU8(opts, wire.TagSendToDLQ, 1)
			case 1:
				opts = wire.AppendU64(opts, wire.TagDelayMs, uint64(rng.IntN(200)))
			case 2:
				opts = wire.AppendOption(opts, wire.TagNackReason, []byte("r"))
			}
		case k < 76:
			op = wire.OpQueueTouch
		case k < 81:
			op = wire.OpQueueDLQRequeue
		case k < 83:
			op = wire.OpQueueDLQDelete
			if rng.IntN(3) == 0 {
				opts = wire.AppendFlag(opts, wire.TagDLQAll)
			}
		case k < 88:
			op = wire.OpQueuePeek
			opts = wire.AppendU32(opts, wire.TagCount, uint32(rng.IntN(10)))
		case k < 91:
			op = wire.OpQueueDLQList
		case k < 93:
			op = wire.OpQueueStats
		default:
			op = opPulse
		}
		switch op {
		case wire.OpQueueAck, wire.OpQueueNack, wire.OpQueueTouch, wire.OpQueueDLQRequeue, wire.OpQueueDLQDelete:
			if !(op == wire.OpQueueDLQDelete && opts.Flag(wire.TagDLQAll)) {
				listed = pickSeqs(name)
				value = wire.AppendSeqList(nil, listed)
			}
		}

		var r command.Result
		if op == opPulse {
			r.Wake = h.pulse()
			w := twin.pulse()
			slices.Sort(w)
			slices.Sort(r.Wake)
			if !slices.Equal(w, r.Wake) {
				t.Fatalf("step %d: twin pulse woke %v, machine %v", step, w, r.Wake)
			}
			eager.pulse()
		} else {
			r = h.run(op, name, value, opts)
			tr := twin.run(op, name, value, opts)
			eager.pulse()
			if er := eager.run(op, name, value, opts); !bytes.Equal(r.Body, er.Body) || r.Empty != er.Empty || (r.Err == nil) != (er.Err == nil) {
				t.Fatalf("step %d op 0x%02x: lazy and eager expiry answered differently:\n%+v\n%+v", step, uint8(op), r, er)
			}
			if !bytes.Equal(r.Body, tr.Body) || r.Empty != tr.Empty || !slices.Equal(r.Wake, tr.Wake) || (r.Err == nil) != (tr.Err == nil) {
				t.Fatalf("step %d op 0x%02x: twin answered differently:\n%+v\n%+v", step, uint8(op), r, tr)
			}
			if r.Err != nil {
				t.Fatalf("step %d op 0x%02x: %v", step, uint8(op), r.Err)
			}
		}

		// Model checks on the queue the command named (a pulse may change
		// both; check both).
		for _, qn := range queues {
			if op != opPulse && qn != name {
				continue
			}
			prev := before
			if qn != name {
				prev = nil
			}
			after := states(qn)
			for s := range after {
				if gone[qn][s] {
					t.Fatalf("step %d: message %s/%d came back", step, qn, s)
				}
			}
			if prev == nil {
				continue
			}
			newDLQ := false
			for s, st := range after {
				if st == stateDLQ && prev[s] != stateDLQ {
					newDLQ = true
				}
			}
			if op == wire.OpQueueDLQRequeue || op == wire.OpQueueDLQDelete {
				// An expired lease may have been dead-lettered (evicting
				// the oldest entry) and then requeued or deleted by this
				// very command, leaving no new DLQ entry behind.
				for s, st := range prev {
					if st == stateLeased && after[s] != stateLeased {
						newDLQ = true
					}
				}
			}
			for s, st := range prev {
				if _, ok := after[s]; ok {
					continue
				}
				gone[qn][s] = true
				switch {
				case (op == wire.OpQueueAck || op == wire.OpQueueDequeue) && st != stateDLQ && slices.Contains(listed, s):
				case op == wire.OpQueueDLQDelete && (st == stateDLQ || st == stateLeased) && (listed == nil || slices.Contains(listed, s)):
					// Deleted from the DLQ, possibly just after its lease
					// expired into it.
				case newDLQ && (st == stateDLQ || st == stateLeased || (st == stateReady && op == wire.OpQueueNack && slices.Contains(listed, s))):
					// Evicted by a newer DLQ entry, possibly after being
					// dead-lettered by this very command.
				default:
					t.Fatalf("step %d op 0x%02x: message %s/%d left from %s", step, uint8(op), qn, s, st)
				}
			}
		}
		switch op {
		case wire.OpQueueEnqueue:
			seq := leU64(r.Body)
			switch {
			case seq == lastSeq[name]+1:
				lastSeq[name] = seq
			case seq <= lastSeq[name] && opts.Has(wire.TagDedupKey):
				// A duplicate answers with the original seq, which may be
				// gone already (the key outlives its message).
			default:
				t.Fatalf("step %d: enqueue got seq %d after %d", step, seq, lastSeq[name])
			}
		case wire.OpQueueDequeue:
			ms, err := wire.DecodeQueueMessages(r.Body, opts.Flag(wire.TagMessageDetail))
			if err != nil {
				t.Fatal(err)
			}
			after := states(name)
			for _, msg := range ms {
				if st := before[msg.Seq]; st != stateReady && st != stateDelayed && st != stateLeased {
					t.Fatalf("step %d: dequeued message %d from %s", step, msg.Seq, st)
				}
				if after[msg.Seq] != stateLeased {
					t.Fatalf("step %d: dequeued message %d is %s", step, msg.Seq, after[msg.Seq])
				}
			}
		}

		// Time moves on; now and then the machine restarts from storage.
		switch rng.IntN(10) {
		case 0, 1, 2:
			d := time.Duration(rng.IntN(150)) * time.Millisecond
			h.advance(d)
			twin.advance(d)
			eager.advance(d)
		case 3:
			if rng.IntN(10) == 0 {
				h.reload()
			}
		}
	}
	// Storage of the twins must match byte for byte, and once everything
	// due is applied, so must the eager machine's.
	if a, b := dumpStorage(t, h), dumpStorage(t, twin); a != b {
		t.Fatalf("storage differs between twin machines:\n%s\n---\n%s", a, b)
	}
	h.pulse()
	eager.pulse()
	if a, b := dumpStorage(t, h), dumpStorage(t, eager); a != b {
		t.Fatalf("storage differs between lazy and eager machines:\n%s\n---\n%s", a, b)
	}
}

// opPulse stands for a pulse in the random stream.
const opPulse = wire.Op(command.OpPulse)

func leU64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func dumpStorage(t *testing.T, h *harness) string {
	var buf bytes.Buffer
	err := h.db.Iterate(nil, []byte{0xFF}, false, func(k, v []byte) bool {
		fmt.Fprintf(&buf, "%x=%x\n", k, v)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
