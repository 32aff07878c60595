package queue

import (
	"fmt"
	"testing"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
	"github.com/floruntime/flo/wire"
)

// benchApply applies cmds as one group, the way the journal does, and
// commits without fsync: it measures the state machine and storage writes,
// not the disk.
func benchApply(b *testing.B, db *storage.DB, m *Machine, cmds ...*command.Command) []command.Result {
	batch := db.NewBatch()
	rs := make([]command.Result, len(cmds))
	for i, c := range cmds {
		rs[i] = m.Apply(c, batch)
	}
	if err := db.Commit(batch, false); err != nil {
		b.Fatal(err)
	}
	m.Committed()
	return rs
}

// BenchmarkQueueApply measures enqueue, and the consume cycle (dequeue one,
// ack it), against a backlog of the given depth, in groups of 64 commands.
func BenchmarkQueueApply(b *testing.B) {
	payload := make([]byte, 100)
	for _, depth := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("op=enqueue/backlog=%d", depth), func(b *testing.B) {
			h := setup(b, Limits{})
			fill(b, h, depth, payload)
			cmds := make([]*command.Command, 64)
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for i := 0; i < b.N; i += len(cmds) {
				for j := range cmds {
					h.now++
					cmds[j] = &command.Command{Op: command.Op(wire.OpQueueEnqueue), Time: h.now, Namespace: "default", Key: []byte("q"), Value: payload}
				}
				benchApply(b, h.db, h.m, cmds...)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(fmt.Sprintf("op=cycle/backlog=%d", depth), func(b *testing.B) {
			h := setup(b, Limits{})
			fill(b, h, depth+b.N, payload)
			deq := wire.AppendU32(nil, wire.TagCount, 1)
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			const group = 32
			for i := 0; i < b.N; i += group {
				cmds := make([]*command.Command, group)
				for j := range cmds {
					h.now++
					cmds[j] = &command.Command{Op: command.Op(wire.OpQueueDequeue), Time: h.now, Namespace: "default", Key: []byte("q"), Options: deq}
				}
				rs := benchApply(b, h.db, h.m, cmds...)
				for j, r := range rs {
					ms, err := wire.DecodeQueueMessages(r.Body, false)
					if err != nil || len(ms) != 1 {
						b.Fatalf("dequeue: %v %d", err, len(ms))
					}
					h.now++
					cmds[j] = &command.Command{Op: command.Op(wire.OpQueueAck), Time: h.now, Namespace: "default", Key: []byte("q"), Value: wire.AppendSeqList(nil, []uint64{ms[0].Seq})}
				}
				benchApply(b, h.db, h.m, cmds...)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
		})
	}
}

func fill(b *testing.B, h *harness, n int, payload []byte) {
	const group = 1024
	for done := 0; done < n; done += group {
		cmds := make([]*command.Command, min(group, n-done))
		for j := range cmds {
			h.now++
			cmds[j] = &command.Command{Op: command.Op(wire.OpQueueEnqueue), Time: h.now, Namespace: "default", Key: []byte("q"), Value: payload}
		}
		benchApply(b, h.db, h.m, cmds...)
	}
}
