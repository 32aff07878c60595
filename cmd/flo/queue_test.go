package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/floruntime/flo/flotest"
)

// TestQueueCLI runs the built binary's queue commands against a server.
func TestQueueCLI(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	bin := flotest.Binary(t)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(append([]string{"queue"}, args...), "--server", srv.Addr)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("flo queue %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	expect := func(got, want string) {
		t.Helper()
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	expect(run("enqueue", "jobs", "low"), "OK seq 1\n")
	expect(run("enqueue", "jobs", "high", "--priority", "9", "--dedup-key", "h"), "OK seq 2\n")
	expect(run("enqueue", "jobs", "again", "--dedup-key", "h"), "OK seq 2\n")
	expect(run("enqueue", "jobs", "later", "--delay", "1h"), "OK seq 3\n")
	expect(run("peek", "jobs"), "2\thigh\n1\tlow\n")
	expect(run("stats", "jobs"), "ready\t2\ndelayed\t1\nin_flight\t0\ndlq\t0\n")
	expect(run("dequeue", "jobs", "--count", "2", "--visibility", "1m"), "2\thigh\n1\tlow\n")
	expect(run("touch", "jobs", "1", "2"), "OK\n")
	expect(run("nack", "jobs", "2", "--dlq", "--reason", "bad input"), "OK\n")
	if out := run("dlq", "list", "jobs"); !strings.HasPrefix(out, "2\t1\t") || !strings.HasSuffix(out, "\t\"bad input\"\thigh\n") {
		t.Fatalf("dlq list: %q", out)
	}
	expect(run("dlq", "requeue", "jobs", "2"), "OK\n")
	expect(run("nack", "jobs", "1"), "OK\n")
	expect(run("dequeue", "jobs", "--count", "10", "--ack"), "2\thigh\n1\tlow\n")
	expect(run("stats", "jobs"), "ready\t0\ndelayed\t1\nin_flight\t0\ndlq\t0\n")
	expect(run("dequeue", "jobs", "--block", "50ms"), "")
	expect(run("dlq", "purge", "jobs"), "OK deleted 0\n")
	expect(run("ack", "jobs", "3", "99"), "OK\n")
	expect(run("stats", "jobs"), "ready\t0\ndelayed\t0\nin_flight\t0\ndlq\t0\n")
}
