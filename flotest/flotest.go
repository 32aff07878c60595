// Package flotest starts real flo servers for tests: in process on
// 127.0.0.1:0 in a temporary directory (Start), or as the built binary in a
// child process that a test can kill -9 and restart on the same data
// directory (StartProcess).
package flotest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/internal/node"
	"github.com/floruntime/flo/internal/server"
)

// Options configures Start.
type Options struct {
	// DataDir reuses a directory (to test restarts); empty means a new
	// t.TempDir().
	DataDir string
	// Durability is "sync" (default) or "interval".
	Durability string
	// Config, if non-nil, adjusts the configuration before the server starts.
	Config func(*config.Config)
}

// Server is an in-process server.
type Server struct {
	Addr    string
	DataDir string
	stack   *node.Stack
	srv     *server.Server
	once    sync.Once
	// removeDir says Stop deletes DataDir (New made it).
	removeDir bool
}

// Start starts an in-process server and stops it in t.Cleanup.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("flotest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// New starts an in-process server without a *testing.T, for Examples and
// benchmarks; the caller must call Stop. An empty DataDir is a new
// temporary directory that Stop removes.
func New(o Options) (*Server, error) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = o.DataDir
	removeDir := false
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "flotest-")
		if err != nil {
			return nil, err
		}
		cfg.DataDir, removeDir = dir, true
	}
	if o.Durability != "" {
		cfg.Durability = o.Durability
	}
	if o.Config != nil {
		o.Config(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	stack, err := node.Open(cfg, log, func(err error) { panic(err) })
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	srv := server.New(stack.Node, server.OptionsFrom(cfg, log))
	addr, err := srv.Listen(cfg.Listen)
	if err != nil {
		stack.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	return &Server{Addr: addr.String(), DataDir: cfg.DataDir, stack: stack, srv: srv, removeDir: removeDir}, nil
}

// Stop shuts the server down gracefully; it is safe to call twice.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.srv.Shutdown()
		s.stack.Close()
		if s.removeDir {
			os.RemoveAll(s.DataDir)
		}
	})
}

// Client dials the server and closes the client in t.Cleanup.
func (s *Server) Client(t testing.TB, o flo.Options) *flo.Client {
	t.Helper()
	return Dial(t, s.Addr, o)
}

// Dial connects a client to addr and closes it in t.Cleanup. Without an
// Options.Timeout its calls get a minute, not the SDK's 5 s: tests move
// values of up to 64 MiB under -race on shared machines, and a test that
// is about timeouts sets its own.
func Dial(t testing.TB, addr string, o flo.Options) *flo.Client {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := flo.Dial(ctx, addr, o)
	if err != nil {
		t.Fatalf("flotest: dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of the flo binary: $FLO_BIN if set, else one built
// once per test process from this module's cmd/flo.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("FLO_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flotest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "flo")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/flo")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("flotest: %v", buildErr)
	}
	return buildPath
}

// Process is a flo server running as a child process.
type Process struct {
	Addr    string
	DataDir string
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	done    chan struct{}
}

// lockedBuffer collects the child's stderr; exec copies into it from its
// own goroutine while a test may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartProcess runs `flo server start` on dataDir (a new temp dir if empty)
// with extra flags, waits until it listens, and kills it in t.Cleanup.
func StartProcess(t testing.TB, dataDir string, extra ...string) *Process {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	ready := filepath.Join(t.TempDir(), "ready")
	args := append([]string{"server", "start", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--ready-file", ready, "--log-level", "warn"}, extra...)
	cmd := exec.Command(Binary(t), args...)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("flotest: start: %v", err)
	}
	p := &Process{DataDir: dataDir, cmd: cmd, stderr: stderr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && strings.HasSuffix(string(b), "\n") {
			p.Addr = strings.TrimSpace(string(b))
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("flotest: server exited before listening: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			p.Kill()
			t.Fatalf("flotest: server did not become ready: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits for a graceful exit, returning its error.
func (p *Process) Stop() error {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.Kill()
		return fmt.Errorf("flotest: server did not stop within 30s")
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("flotest: server exited with %v: %s", p.cmd.ProcessState, p.stderr.String())
	}
	return nil
}

// Pid returns the server's process id (to read its /proc entries).
func (p *Process) Pid() int { return p.cmd.Process.Pid }
