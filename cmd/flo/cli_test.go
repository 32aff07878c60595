package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floruntime/flo/flotest"
)

// runFlo runs the built binary and returns its combined output and exit
// status.
func runFlo(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(flotest.Binary(t), args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("flo %s: %v", strings.Join(args, " "), err)
	}
	return string(out), 0
}

// A mistyped subcommand is an error (exit status 1), not a help page that
// exits 0 as if the command had run; a command group alone still shows its
// help.
func TestUnknownSubcommandFails(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		bad  string
	}{
		{[]string{"kv", "gett", "k"}, "gett"},
		{[]string{"queue", "enqueu", "q", "x"}, "enqueu"},
		{[]string{"queue", "dlq", "lst", "q"}, "lst"},
		{[]string{"stream", "apend", "s", "x"}, "apend"},
		{[]string{"stream", "group", "raed", "s", "g", "c"}, "raed"},
		{[]string{"stream", "group", "dlq", "lst", "s", "g"}, "lst"},
		{[]string{"action", "invok", "a"}, "invok"},
		{[]string{"worker", "lst"}, "lst"},
		{[]string{"server", "strat"}, "strat"},
	} {
		out, code := runFlo(t, c.args...)
		if code != 1 || !strings.Contains(out, `unknown command "`+c.bad+`"`) {
			t.Errorf("flo %s: exit %d\n%s", strings.Join(c.args, " "), code, out)
		}
	}
	if out, code := runFlo(t, "kv"); code != 0 || !strings.Contains(out, "Available Commands") {
		t.Errorf("flo kv: exit %d\n%s", code, out)
	}
}

// A negative --cas is refused as a bad flag value, not sent as a huge
// version.
func TestKVPutRefusesNegativeCAS(t *testing.T) {
	t.Parallel()
	out, code := runFlo(t, "kv", "put", "k", "v", "--cas", "-1", "--server", "127.0.0.1:1")
	if code != 1 || !strings.Contains(out, `invalid argument "-1" for "--cas"`) {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// An error the client finds before sending reads "bad request: …", not
// ": …" (the sentinel it wraps has no message of its own).
func TestClientSideValidationMessage(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	out, code := runFlo(t, "action", "register", "a", "--max-retries", "-1", "--server", srv.Addr)
	if code != 1 || out != "flo: bad request: max retries -1 out of range\n" {
		t.Fatalf("exit %d: %q", code, out)
	}
}

// The README says `flo server start --help` lists the FLO_* variables the
// server flags read.
func TestServerStartHelpListsEnvironmentVariables(t *testing.T) {
	t.Parallel()
	out, code := runFlo(t, "server", "start", "--help")
	for _, want := range []string{"FLO_LISTEN_ADDR", "FLO_DATA_DIR", "FLO_DURABILITY", "FLO_FLUSH_INTERVAL", "FLO_MAX_WAITERS"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, %s missing:\n%s", code, want, out)
		}
	}
}

// A second server on a data directory in use refuses to start with an error
// that says so, and the first keeps serving.
func TestServerRefusesADataDirInUse(t *testing.T) {
	t.Parallel()
	p := flotest.StartProcess(t, "")
	out, code := runFlo(t, "server", "start", "--listen", "127.0.0.1:0", "--data-dir", p.DataDir)
	if code != 1 || !strings.Contains(out, "in use by another process") {
		t.Fatalf("second server: exit %d\n%s", code, out)
	}
	if out, code := runFlo(t, "kv", "put", "k", "v", "--server", p.Addr); code != 0 || out != "OK version 1\n" {
		t.Fatalf("first server after the attempt: exit %d\n%s", code, out)
	}
}

// Any negative --block waits without limit, in queue dequeue and kv get as
// in the stream commands; -1s used to be sent as "forever" while the client
// gave up after --timeout with "context deadline exceeded".
func TestNegativeBlockWaitsForever(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	bin := flotest.Binary(t)
	type result struct {
		out  string
		code int
	}
	start := func(args ...string) <-chan result {
		ch := make(chan result, 1)
		go func() {
			out, code := runFlo(t, append(args, "--server", srv.Addr, "--timeout", "300ms", "--block", "-1s")...)
			ch <- result{out, code}
		}()
		return ch
	}
	dq := start("queue", "dequeue", "jobs")
	get := start("kv", "get", "later")
	time.Sleep(time.Second)
	for _, args := range [][]string{{"queue", "enqueue", "jobs", "x"}, {"kv", "put", "later", "y"}} {
		if out, err := exec.Command(bin, append(args, "--server", srv.Addr)...).CombinedOutput(); err != nil {
			t.Fatalf("flo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if r := <-dq; r.code != 0 || r.out != "1\tx\n" {
		t.Errorf("queue dequeue --block -1s: exit %d: %q", r.code, r.out)
	}
	if r := <-get; r.code != 0 || r.out != "y\n" {
		t.Errorf("kv get --block -1s: exit %d: %q", r.code, r.out)
	}
}

// A SIGTERM sent as soon as the ready file appears stops the server
// gracefully (exit 0), not by the signal's default action: the handler is
// in place before the server says it is ready.
func TestSIGTERMRightAfterReadyExitsZero(t *testing.T) {
	t.Parallel()
	bin := flotest.Binary(t)
	for i := 0; i < 10; i++ {
		dir := t.TempDir()
		ready := filepath.Join(dir, "ready")
		cmd := exec.Command(bin, "server", "start", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
			"--ready-file", ready, "--log-level", "warn")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("no ready file")
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("round %d: SIGTERM right after ready: %v", i, err)
		}
	}
}
