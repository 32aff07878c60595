package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled reports a peer whose binary is not on PATH; the case is
// skipped with a message.
var ErrNotInstalled = errors.New("not installed")

// Proc is a server the harness started as a child process, in a temporary
// directory that Stop removes.
type Proc struct {
	Name string
	Addr string // host:port clients connect to
	Dir  string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	once sync.Once
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil // keep the first MiB; enough to say why it died
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// procCPU returns the user+system CPU time a process has used so far, from
// /proc/PID/stat (clock ticks of 10ms: fine over a measurement of seconds).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it are
	// plain numbers.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick, nil
}

// selfCPU returns the CPU time this process (the load generator, and an
// in-process server if there is one) has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Pid is the child's process id (for perf, pprof by pid, …).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output is what the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Stop asks the process to exit (SIGTERM), kills it after 10s, and removes
// its directory.
func (p *Proc) Stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		_ = os.RemoveAll(p.Dir)
	})
}

func startProc(name, dir string, bin string, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out := &lockedBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	// Its own process group: a Ctrl-C on the harness does not reach the
	// server before the harness stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Dir: dir, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// waitFor polls ready until it returns true, the process exits, or 30s pass.
func (p *Proc) waitFor(ctx context.Context, ready func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready:\n%s", p.Name, p.Output())
		case <-ctx.Done():
			p.Stop()
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("%s not ready after 30s:\n%s", p.Name, p.Output())
		}
	}
	return nil
}

// StartFlo runs `bin server start` on 127.0.0.1:0 in a new temporary
// directory with the given durability ("sync" or "interval") and returns
// once it listens.
func StartFlo(ctx context.Context, bin, durability string, extra ...string) (*Proc, error) {
	dir, err := os.MkdirTemp("", "flo-bench-"+durability+"-")
	if err != nil {
		return nil, err
	}
	ready := filepath.Join(dir, "ready")
	args := append([]string{"server", "start", "--listen", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "data"), "--durability", durability,
		"--ready-file", ready, "--log-level", "warn"}, extra...)
	p, err := startProc("flo-"+durability, dir, bin, args...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	err = p.waitFor(ctx, func() bool {
		b, err := os.ReadFile(ready)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			p.Addr = strings.TrimSpace(string(b))
			return true
		}
		return false
	})
	if err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the peer binds it; the peer then fails to start and says so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// dialable reports whether something accepts connections at addr.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// StartRedis runs redis-server on a free loopback port in a new temporary
// directory with the append-only file on and the given appendfsync policy
// ("always" or "everysec"); RDB snapshots are off so they do not disturb
// the measurement.
func StartRedis(ctx context.Context, appendfsync string) (*Proc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server: %w", ErrNotInstalled)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redis-bench-"+appendfsync+"-")
	if err != nil {
		return nil, err
	}
	p, err := startProc("redis-"+appendfsync, dir, bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--appendonly", "yes", "--appendfsync", appendfsync, "--save", "",
		"--daemonize", "no", "--protected-mode", "no", "--logfile", "")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	if err := p.waitFor(ctx, func() bool { return redisPing(p.Addr) }); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// redisPing sends an inline PING and waits for +PONG (redis answers
// -LOADING while it replays the append-only file).
func redisPing(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// StartNATS runs nats-server with JetStream on a free loopback port, storing
// in a new temporary directory (file storage, the server's default sync
// policy).
func StartNATS(ctx context.Context) (*Proc, error) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		return nil, fmt.Errorf("nats-server: %w", ErrNotInstalled)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "nats-bench-")
	if err != nil {
		return nil, err
	}
	p, err := startProc("nats", dir, bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-sd", dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	if err := p.waitFor(ctx, func() bool { return dialable(p.Addr) }); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}
