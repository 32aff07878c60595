package main

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// TestStreamCLI runs the built binary's stream commands against a server.
func TestStreamCLI(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	bin := flotest.Binary(t)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, "--server", srv.Addr)...).CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("flo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	if out := must("stream", "append", "ev", "hello", "--key", "user-1", "--timestamp", "1700000000000"); out != "OK offset 1 timestamp 1700000000000\n" {
		t.Fatalf("append: %q", out)
	}
	for _, p := range []string{"b", "c", "d"} {
		must("stream", "append", "ev", p)
	}
	if out := must("stream", "read", "ev", "--count", "1"); out != "1\t2023-11-14T22:13:20.000Z\tuser-1\thello\n" {
		t.Fatalf("read: %q", out)
	}
	if out := must("stream", "read", "ev", "--offset", "3"); strings.Count(out, "\n") != 2 || !strings.HasPrefix(out, "3\t") {
		t.Fatalf("read --offset: %q", out)
	}
	if out := must("stream", "tail", "ev", "-n", "2"); !strings.HasPrefix(out, "3\t") || !strings.Contains(out, "\td\n") {
		t.Fatalf("tail: %q", out)
	}
	if out := must("stream", "info", "ev"); out != "first_offset 1\nlast_offset 4\ncount 4\nbytes 14\n" {
		t.Fatalf("info: %q", out)
	}
	if out := must("stream", "trim", "ev", "--max-len", "3", "--dry-run"); out != "would delete 1; first offset 2\n" {
		t.Fatalf("trim dry run: %q", out)
	}
	if out := must("stream", "trim", "ev", "--max-len", "3"); out != "deleted 1; first offset 2\n" {
		t.Fatalf("trim: %q", out)
	}
	if _, err := run("stream", "trim", "ev"); err == nil {
		t.Fatal("trim without a policy must fail")
	}

	// An ack timeout that cannot run out between the commands below, each
	// its own process: a lapsed one dead-letters record 2 before its ack.
	must("stream", "group", "join", "ev", "g", "c1", "--ack-timeout", "1m", "--max-deliver", "1")
	if out := must("stream", "group", "read", "ev", "g", "c1", "--count", "2"); strings.Count(out, "\n") != 2 || !strings.HasPrefix(out, "2\t") {
		t.Fatalf("group read: %q", out)
	}
	must("stream", "group", "ack", "ev", "g", "2")
	must("stream", "group", "nack", "ev", "g", "3") // one delivery allowed: dead letter
	if out := must("stream", "group", "dlq", "list", "ev", "g"); !strings.HasPrefix(out, "3\t") || !strings.Contains(out, "\t1\tc1\tc\n") {
		t.Fatalf("dlq list: %q", out)
	}
	must("stream", "group", "dlq", "requeue", "ev", "g", "3")
	if out := must("stream", "group", "read", "ev", "g", "c2", "--ack"); out != "" && !strings.HasPrefix(out, "3\t") {
		t.Fatalf("group read after requeue: %q", out)
	}
	must("stream", "group", "leave", "ev", "g", "c2")

	// tail -f prints records appended after it started.
	cmd := exec.Command(bin, "stream", "tail", "ev", "-n", "0", "-f", "--server", srv.Addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	c := srv.Client(t, flo.Options{})
	deadline := time.After(10 * time.Second)
	for i := 0; ; i++ {
		// Keep appending until the follower has started and prints one.
		if _, err := c.Stream.Append(context.Background(), "ev", []byte("followed"), nil); err != nil {
			t.Fatal(err)
		}
		select {
		case l := <-lines:
			if !strings.HasSuffix(l, "\tfollowed") {
				t.Fatalf("tail -f printed %q", l)
			}
			return
		case <-deadline:
			t.Fatal("tail -f printed nothing")
		case <-time.After(100 * time.Millisecond):
		}
	}
}
