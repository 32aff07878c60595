package journal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floruntime/flo/internal/command"
	"github.com/floruntime/flo/internal/storage"
)

// setApplier stores each command's value at its key and reports the key's
// previous value, so tests can see apply order.
type setApplier struct{}

func (setApplier) Committed() {}

func (setApplier) Apply(cmd *command.Command, b storage.Batch) command.Result {
	prev, _ := b.Get(cmd.Key)
	b.Set(cmd.Key, cmd.Value)
	return command.Result{Body: prev, Wake: []string{string(cmd.Key)}}
}

type setup struct {
	fs *vfs.MemFS
	db *storage.DB
	j  *Local
}

func open(t *testing.T, fs *vfs.MemFS, d Durability) *setup {
	t.Helper()
	db, err := storage.Open("data", storage.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	j := NewLocal(db, setApplier{}, LocalOptions{Durability: d, FlushInterval: time.Hour}, func(err error) { panic(err) })
	return &setup{fs: fs, db: db, j: j}
}

func submitWait(t *testing.T, j Journal, key, value string) command.Result {
	t.Helper()
	done := make(chan command.Result, 1)
	if err := j.Submit(&command.Command{Key: []byte(key), Value: []byte(value)}, func(r command.Result) { done <- r }); err != nil {
		t.Fatal(err)
	}
	return <-done
}

func TestLocal_AckedWritesSurviveACrash(t *testing.T) {
	t.Parallel()
	s := open(t, vfs.NewCrashableMem(), Sync)
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				key := fmt.Sprintf("w%02d-%03d", w, i)
				done := make(chan struct{})
				if err := s.j.Submit(&command.Command{Key: []byte(key), Value: []byte(key)}, func(command.Result) { close(done) }); err != nil {
					return
				}
				<-done
				mu.Lock()
				acked = append(acked, key)
				mu.Unlock()
			}
		}()
	}
	// Crash while writers are busy (some writes acknowledged, most not yet
	// made): the clone holds only what was synced.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acknowledged in 30s", n)
		}
	}
	mu.Lock()
	ackedAtCrash := append([]string(nil), acked...)
	clone := s.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(1, 2))})
	mu.Unlock()
	wg.Wait()
	s.j.Close()
	s.db.Close()

	db, err := storage.Open("data", storage.Options{FS: clone})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, k := range ackedAtCrash {
		v, err := db.Get([]byte(k))
		if err != nil || string(v) != k {
			t.Fatalf("acknowledged %s lost in the crash: %q %v", k, v, err)
		}
	}
	// Nothing half-applied: whatever survived is whole.
	n := 0
	if err := db.Iterate(nil, nil, false, func(k, v []byte) bool {
		n++
		if string(k) != string(v) {
			t.Errorf("torn write at %s", k)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(ackedAtCrash) == 0 || n < len(ackedAtCrash) {
		t.Fatalf("acked %d before the crash, %d present after", len(ackedAtCrash), n)
	}
}

func TestLocal_AppliesInSubmitOrder(t *testing.T) {
	t.Parallel()
	for _, d := range []Durability{Sync, Interval} {
		t.Run(string(d), func(t *testing.T) {
			s := open(t, vfs.NewCrashableMem(), d)
			defer s.db.Close()
			results := make([]chan command.Result, 500)
			for i := range results {
				results[i] = make(chan command.Result, 1)
				ch := results[i]
				if err := s.j.Submit(&command.Command{Key: []byte("k"), Value: []byte(fmt.Sprint(i))}, func(r command.Result) { ch <- r }); err != nil {
					t.Fatal(err)
				}
			}
			for i, ch := range results {
				r := <-ch
				want := ""
				if i > 0 {
					want = fmt.Sprint(i - 1)
				}
				if string(r.Body) != want {
					t.Fatalf("command %d saw previous value %q, want %q", i, r.Body, want)
				}
			}
			if err := s.j.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.j.Submit(&command.Command{Key: []byte("k")}, func(command.Result) {}); !errors.Is(err, ErrClosed) {
				t.Fatalf("submit after close: %v", err)
			}
		})
	}
}

func TestLocal_IntervalModeSyncsOnClose(t *testing.T) {
	t.Parallel()
	s := open(t, vfs.NewCrashableMem(), Interval)
	submitWait(t, s.j, "a", "1")
	// Before a sync, a crash may lose the write (interval mode's contract).
	if err := s.j.Close(); err != nil {
		t.Fatal(err)
	}
	clone := s.fs.CrashClone(vfs.CrashCloneCfg{})
	s.db.Close()
	db, err := storage.Open("data", storage.Options{FS: clone})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.Get([]byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("after close: %q %v", v, err)
	}
}

func TestCommand_EncodingRoundTrips(t *testing.T) {
	t.Parallel()
	c := command.Command{Op: 0x30, Time: 1_700_000_000_123_456_789, Namespace: "ns", Key: []byte("k"), Value: []byte("v"), Options: []byte{3, 0}}
	got, err := command.Decode(c.Append(nil))
	if err != nil || got.Op != c.Op || got.Time != c.Time || got.Namespace != "ns" || string(got.Key) != "k" || string(got.Value) != "v" || len(got.Options) != 2 {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := command.Decode([]byte{9, 1}); !errors.Is(err, command.ErrEncoding) {
		t.Fatalf("bad version: %v", err)
	}
}

// groupApplier records, for each command, how many groups had committed
// before it was applied.
type groupApplier struct {
	setApplier
	mu        sync.Mutex
	committed int
	group     map[string]int
}

func (g *groupApplier) Committed() {
	g.mu.Lock()
	g.committed++
	g.mu.Unlock()
}

func (g *groupApplier) Apply(cmd *command.Command, b storage.Batch) command.Result {
	g.mu.Lock()
	g.group[string(cmd.Key)] = g.committed
	g.mu.Unlock()
	return g.setApplier.Apply(cmd, b)
}

func TestLocal_WokenWritesJoinTheGroup(t *testing.T) {
	t.Parallel()
	for _, d := range []Durability{Sync, Interval} {
		db, err := storage.Open("data", storage.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		app := &groupApplier{group: map[string]int{}}
		j := NewLocal(db, app, LocalOptions{Durability: d, FlushInterval: time.Hour}, func(err error) { panic(err) })
		var order []string
		var mu sync.Mutex
		record := func(name string) func(command.Result) {
			return func(command.Result) { mu.Lock(); order = append(order, name); mu.Unlock() }
		}
		// "a" wakes the write parked on it, which reads what "a" wrote.
		var woken command.Result
		parked := &command.Command{Key: []byte("b"), Value: []byte("from b")}
		j.WakeWriters(func(keys []string) []Proposal {
			if len(keys) != 1 || keys[0] != "a" {
				return nil
			}
			return []Proposal{{Cmd: parked, Done: func(r command.Result) { woken = r; record("b")(r) }}}
		})
		done := make(chan command.Result, 1)
		if err := j.Submit(&command.Command{Key: []byte("a"), Value: []byte("from a")}, func(r command.Result) { record("a")(r); done <- r }); err != nil {
			t.Fatal(err)
		}
		<-done
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if fmt.Sprint(order) != "[a b]" {
			t.Fatalf("%s: done order %v", d, order)
		}
		mu.Unlock()
		if woken.Err != nil || app.group["a"] != app.group["b"] {
			t.Fatalf("%s: woken write in group %d, its waker in %d (%v)", d, app.group["b"], app.group["a"], woken.Err)
		}
		if v, err := db.Get([]byte("b")); err != nil || string(v) != "from b" {
			t.Fatalf("%s: woken write not committed: %q, %v", d, v, err)
		}
		db.Close()
	}
}

// orderApplier records the keys it applies, in order.
type orderApplier struct {
	setApplier
	mu    sync.Mutex
	order []string
}

func (a *orderApplier) Apply(cmd *command.Command, b storage.Batch) command.Result {
	a.mu.Lock()
	a.order = append(a.order, string(cmd.Key))
	a.mu.Unlock()
	return a.setApplier.Apply(cmd, b)
}

// TestLocal_WokenWriteIsAppliedRightAfterItsWaker: in a group [a, c] where
// a wakes a parked write b, b comes before c — it was waiting first.
func TestLocal_WokenWriteIsAppliedRightAfterItsWaker(t *testing.T) {
	t.Parallel()
	db, err := storage.Open("data", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	app := &orderApplier{}
	j := NewLocal(db, app, LocalOptions{Durability: Interval, FlushInterval: time.Hour}, func(err error) { panic(err) })
	j.WakeWriters(func(keys []string) []Proposal {
		if keys[0] != "a" {
			return nil
		}
		return []Proposal{{Cmd: &command.Command{Key: []byte("b")}, Done: func(command.Result) {}}}
	})
	noop := func(command.Result) {}
	// The group the apply goroutine would take with a and c queued
	// (nothing is submitted, so that goroutine is idle).
	j.applyGroup([]Proposal{{Cmd: &command.Command{Key: []byte("a")}, Done: noop}, {Cmd: &command.Command{Key: []byte("c")}, Done: noop}})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(app.order) != "[a b c]" {
		t.Fatalf("apply order %v, want [a b c]", app.order)
	}
}

// Close stops the interval flusher before it returns: closing the database
// right after Close must not race with a periodic sync (which would panic on
// a closed database, or call fatal during a clean shutdown).
func TestLocal_IntervalFlusherStopsBeforeCloseReturns(t *testing.T) {
	t.Parallel()
	for i := 0; i < 300; i++ {
		db, err := storage.Open("data", storage.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		var fatal error
		var mu sync.Mutex
		j := NewLocal(db, setApplier{}, LocalOptions{Durability: Interval, FlushInterval: time.Microsecond}, func(err error) {
			mu.Lock()
			fatal = err
			mu.Unlock()
		})
		submitWait(t, j, "a", "1")
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond)
		mu.Lock()
		if fatal != nil {
			t.Fatalf("fatal after a clean close: %v", fatal)
		}
		mu.Unlock()
	}
}
