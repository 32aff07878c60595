package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
)

// TestActionCLI runs the built binary's action and worker commands against
// a server with an in-process worker.
func TestActionCLI(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	bin := flotest.Binary(t)
	flo_ := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--server", srv.Addr)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := flo_(args...)
		if err != nil {
			t.Fatalf("flo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("action", "register", "echo", "--task-timeout", "10s", "--max-retries", "0", "--description", "echoes")
	if out := must("action", "list"); !strings.Contains(out, "echo") || !strings.Contains(out, "10s") || !strings.Contains(out, "echoes") {
		t.Fatalf("list:\n%s", out)
	}
	id := strings.TrimSpace(must("action", "invoke", "echo", "queued", "--priority", "1"))
	if out := must("action", "status", id); !strings.Contains(out, "status:    pending") {
		t.Fatalf("status:\n%s", out)
	}

	// status --wait: with no worker the wait times out and shows the run as
	// it is; a wait begun now is answered when the worker below ends it.
	if out := must("action", "status", id, "--wait", "--wait-timeout", "200ms"); !strings.Contains(out, "status:    pending") {
		t.Fatalf("status --wait with a timeout:\n%s", out)
	}
	var waitOut strings.Builder
	waitCmd := exec.Command(bin, "action", "status", id, "--wait", "--server", srv.Addr)
	waitCmd.Stdout, waitCmd.Stderr = &waitOut, &waitOut
	if err := waitCmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let it reach the server first

	c := srv.Client(t, flo.Options{})
	w := flo.NewTaskWorker(c, "cli-worker", &flo.TaskWorkerOptions{Block: time.Second})
	w.Handle("echo", func(ctx context.Context, t *flo.Task) ([]byte, error) {
		if string(t.Input) == "fail" {
			return nil, flo.Permanent(errTest)
		}
		return append([]byte("echo: "), t.Input...), nil
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if err := waitCmd.Wait(); err != nil || !strings.Contains(waitOut.String(), "status:    completed") || !strings.Contains(waitOut.String(), "echo: queued") {
		t.Fatalf("status --wait: %v\n%s", err, waitOut.String())
	}
	if out := must("action", "invoke", "echo", "hi", "--wait"); out != "echo: hi\n" {
		t.Fatalf("invoke --wait printed %q", out)
	}
	out, err := flo_("action", "invoke", "echo", "fail", "--wait")
	if err == nil || !strings.Contains(out, "failed") || !strings.Contains(out, "test failure") {
		t.Fatalf("failing invoke --wait: %v\n%s", err, out)
	}
	if out := must("worker", "list"); !strings.Contains(out, "cli-worker") || !strings.Contains(out, "active") {
		t.Fatalf("worker list:\n%s", out)
	}
	must("action", "delete", "echo")
	if out, err := flo_("action", "invoke", "echo", "x"); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("invoke after delete: %v\n%s", err, out)
	}
}

type testError struct{}

func (testError) Error() string { return "test failure" }

var errTest = testError{}
