package action

import (
	"testing"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/wire"
)

// BenchmarkMachine_RunCycle applies invoke, await and complete for one run
// per iteration, 64 commands to a batch as a busy journal groups them.
func BenchmarkMachine_RunCycle(b *testing.B) {
	h := setup(b, Limits{})
	h.ok(t0, registerReq("job", 30_000, 3))
	inv := invokeReq("job", "payload-0123456789", 10, "")
	aw := awaitReq("w", "job")
	mk := func(r req) *command.Command {
		return &command.Command{Op: command.Op(r.op), Time: t0 * 1e6, Namespace: "default", Key: []byte(r.key), Value: r.value, Options: r.opts}
	}
	b.ReportAllocs()
	b.ResetTimer()
	batch := h.db.NewBatch()
	n := 0
	for i := range b.N {
		res := h.m.Apply(mk(inv), batch)
		id := string(res.Body)
		res = h.m.Apply(mk(aw), batch)
		if res.Err != nil || res.Empty {
			b.Fatalf("await: %v", res.Err)
		}
		res = h.m.Apply(mk(reportReq(wire.OpWorkerComplete, "w", id, "out", false)), batch)
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		if n++; n == 64 || i == b.N-1 {
			if err := h.db.Commit(batch, false); err != nil {
				b.Fatal(err)
			}
			h.m.Committed()
			batch, n = h.db.NewBatch(), 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}
