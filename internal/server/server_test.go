package server_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	flo "github.com/floruntime/flo/clients/go"
	"github.com/floruntime/flo/flotest"
	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/wire"
)

// rawConn is a test client speaking raw frames.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawConn) send(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) request(id uint64, op wire.Op, req wire.Request) {
	r.send(wire.AppendFrame(nil, id, byte(op), wire.AppendRequest(nil, &req)))
}

func (r *rawConn) reply() wire.Frame {
	r.t.Helper()
	f, _, err := wire.ReadFrame(r.br, nil, 1<<30)
	if err != nil {
		r.t.Fatalf("read reply: %v", err)
	}
	return f
}

// expectClosed asserts the server closed the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	if _, err := r.br.ReadByte(); !errors.Is(err, io.EOF) && !isReset(err) {
		r.t.Fatalf("connection still open (err=%v)", err)
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

// expectBadRequestAndClose asserts the malformed-frame answer: BAD_REQUEST
// with request id 0, then the connection closes.
func (r *rawConn) expectBadRequestAndClose() {
	r.t.Helper()
	f := r.reply()
	if wire.Status(f.Code) != wire.StatusBadRequest || f.RequestID != 0 || !strings.HasPrefix(string(f.Payload), "Invalid request") {
		r.t.Fatalf("reply = status %d id %d %q", f.Code, f.RequestID, f.Payload)
	}
	r.expectClosed()
}

// stillServes checks that a fresh client is served normally.
func stillServes(t *testing.T, srv *flotest.Server) {
	t.Helper()
	c := srv.Client(t, flo.Options{})
	ctx := context.Background()
	if _, err := c.KV.Put(ctx, "alive", []byte("yes"), nil); err != nil {
		t.Fatalf("server stopped serving: %v", err)
	}
	if v, err := c.KV.Get(ctx, "alive", nil); err != nil || string(v) != "yes" {
		t.Fatalf("server stopped serving: %q %v", v, err)
	}
}

func TestServer_MalformedFramesCloseOnlyThatConnection(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	bystander := srv.Client(t, flo.Options{})
	put := wire.AppendFrame(nil, 1, byte(wire.OpKVPut), wire.AppendRequest(nil, &wire.Request{Namespace: "default", Key: []byte("k"), Value: []byte("v")}))
	corrupt := func(i int, b byte) []byte { c := append([]byte(nil), put...); c[i] = b; return c }
	// sealed corrupts a header byte and fixes the CRC, so only the byte is wrong.
	sealed := func(i int, b byte) []byte {
		c := corrupt(i, b)
		crc := crc32.Update(0, crc32.IEEETable, c[0:16])
		crc = crc32.Update(crc, crc32.IEEETable, c[20:])
		binary.LittleEndian.PutUint32(c[16:20], crc)
		return c
	}
	huge := append([]byte(nil), put[:wire.HeaderSize]...)
	binary.LittleEndian.PutUint32(huge[4:8], 0xFFFFFFF0)
	cases := map[string][]byte{
		"bad crc":                  corrupt(16, put[16]^0xFF),
		"bad magic":                corrupt(0, 'X'),
		"bad version":              corrupt(20, 7),
		"reserved byte":            corrupt(23, 1),
		"reserved byte, CRC right": sealed(23, 1),
		"no_ack flag, CRC right":   sealed(22, 4),
		"compressed flag":          sealed(22, 1|2),
		"huge length":              huge,
		"garbage":                  []byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17"),
		"http request":             []byte("GET / HTTP/1.1\r\nHost: localhost:9000\r\nUser-Agent: curl\r\n\r\n"),
		"v2 frame":                 corrupt(22, 1),
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			rc := dialRaw(t, srv.Addr)
			rc.send(frame)
			rc.expectBadRequestAndClose()
			ctx := context.Background()
			if _, err := bystander.KV.Put(ctx, "bystander", []byte(name), nil); err != nil {
				t.Fatalf("bystander: %v", err)
			}
		})
	}
	stillServes(t, srv)
}

func TestServer_RepliesBeforeAMalformedFrameAreDelivered(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	rc := dialRaw(t, srv.Addr)
	good := wire.AppendFrame(nil, 5, byte(wire.OpPing), nil)
	bad := append([]byte(nil), good...)
	bad[16] ^= 0xFF
	rc.send(append(good, bad...))
	if f := rc.reply(); f.RequestID != 5 || string(f.Payload) != "PONG" {
		t.Fatalf("first reply: %+v", f)
	}
	rc.expectBadRequestAndClose()
}

func TestServer_TruncatedFrameThenHangUp(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	rc := dialRaw(t, srv.Addr)
	frame := wire.AppendFrame(nil, 1, byte(wire.OpKVPut), wire.AppendRequest(nil, &wire.Request{Key: []byte("t"), Value: []byte("half")}))
	rc.send(frame[:len(frame)-3])
	rc.nc.Close()
	stillServes(t, srv)
	c := srv.Client(t, flo.Options{})
	if v, _ := c.KV.Get(context.Background(), "t", nil); v != nil {
		t.Fatalf("a truncated frame was applied: %q", v)
	}
}

func TestServer_OversizedFrameLimitIsEnforcedAtTheEdge(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{Config: func(c *config.Config) { c.MaxFrameBytes = 4096 }})
	at := wire.AppendRequest(nil, &wire.Request{Key: []byte("k"), Value: make([]byte, 4096-10-1)})
	if len(at) != 4096 {
		t.Fatalf("payload is %d bytes", len(at))
	}
	rc := dialRaw(t, srv.Addr)
	rc.send(wire.AppendFrame(nil, 1, byte(wire.OpKVPut), at))
	if f := rc.reply(); wire.Status(f.Code) != wire.StatusOK {
		t.Fatalf("payload at the limit: status %d %q", f.Code, f.Payload)
	}
	over := wire.AppendRequest(nil, &wire.Request{Key: []byte("k"), Value: make([]byte, 4096-10)})
	rc.send(wire.AppendFrame(nil, 2, byte(wire.OpKVPut), over))
	rc.expectBadRequestAndClose()
}

func TestServer_BadRequestsKeepTheConnectionOpen(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	rc := dialRaw(t, srv.Addr)
	steps := []struct {
		name    string
		op      wire.Op
		payload []byte
		status  wire.Status
		body    string
	}{
		{"ping", wire.OpPing, nil, wire.StatusOK, "PONG"},
		{"unknown opcode", wire.Op(0x99), wire.AppendRequest(nil, &wire.Request{Key: []byte("k")}), wire.StatusBadRequest, "unknown opcode 0x99"},
		{"empty key", wire.OpKVPut, wire.AppendRequest(nil, &wire.Request{Value: []byte("v")}), wire.StatusBadRequest, "key must not be empty"},
		{"key_len past the payload", wire.OpKVGet, []byte{0, 0, 0xFF, 0xFF, 'k'}, wire.StatusBadRequest, "malformed request envelope"},
		{"value over 16 MiB", wire.OpKVPut, wire.AppendRequest(nil, &wire.Request{Key: []byte("k"), Value: make([]byte, 16<<20+1)}), wire.StatusBadRequest, "value is 16777217 bytes"},
		{"empty payload defaults", wire.OpKVGet, nil, wire.StatusBadRequest, "key must not be empty"},
		{"still fine", wire.OpKVPut, wire.AppendRequest(nil, &wire.Request{Key: []byte("k"), Value: []byte("v")}), wire.StatusOK, ""},
	}
	for i, s := range steps {
		id := uint64(i + 1)
		rc.send(wire.AppendFrame(nil, id, byte(s.op), s.payload))
		f := rc.reply()
		if f.RequestID != id || wire.Status(f.Code) != s.status || !strings.HasPrefix(string(f.Payload), s.body) {
			if !(s.status == wire.StatusOK && s.body == "" && wire.Status(f.Code) == wire.StatusOK) {
				t.Fatalf("%s: id %d status %d %q", s.name, f.RequestID, f.Code, f.Payload)
			}
		}
	}
}

func TestServer_PipelinedRepliesComeBackInOrder(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	rc := dialRaw(t, srv.Addr)
	var batch []byte
	// A blocking get first, then writes that satisfy it and reads behind them.
	batch = wire.AppendFrame(batch, 1, byte(wire.OpKVGet), wire.AppendRequest(nil, &wire.Request{Key: []byte("x"), Options: wire.AppendU32(nil, wire.TagBlockMs, 5000)}))
	for i := uint64(2); i <= 100; i++ {
		if i%2 == 0 {
			batch = wire.AppendFrame(batch, i, byte(wire.OpKVPut), wire.AppendRequest(nil, &wire.Request{Key: []byte("x"), Value: []byte{byte(i)}}))
		} else {
			batch = wire.AppendFrame(batch, i, byte(wire.OpKVGet), wire.AppendRequest(nil, &wire.Request{Key: []byte("x")}))
		}
	}
	rc.send(batch)
	for i := uint64(1); i <= 100; i++ {
		f := rc.reply()
		if f.RequestID != i || wire.Status(f.Code) != wire.StatusOK {
			t.Fatalf("reply %d: id %d status %d", i, f.RequestID, f.Code)
		}
		// A read sees at least the write sent just before it on the same
		// connection (writes pipelined after it may be visible too).
		if i > 1 && i%2 == 1 && (len(f.Payload) != 1 || f.Payload[0] < byte(i-1)) {
			t.Fatalf("read %d saw %v, want its preceding write %d or later", i, f.Payload, i-1)
		}
	}
}

func TestServer_ParkedCallOfAClosedConnectionTakesNothing(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{Config: func(c *config.Config) { c.MaxWaiters = 1 }})
	c := srv.Client(t, flo.Options{})
	ctx := context.Background()
	// Park a raw connection's call in the one waiter slot. A probe that
	// gets OVERLOADED proves it holds the slot; if the probe won the race
	// for the slot instead, the raw call was refused: try again.
	var rc *rawConn
	for attempt := 0; ; attempt++ {
		if attempt == 50 {
			t.Fatal("the raw connection's call never held the waiter slot")
		}
		rc = dialRaw(t, srv.Addr)
		rc.request(1, wire.OpKVGet, wire.Request{Key: []byte("w"), Options: wire.AppendU32(nil, wire.TagBlockMs, 0)})
		time.Sleep(20 * time.Millisecond) // usually enough to park; verified below
		_, err := c.KV.Get(ctx, "w2", &flo.GetOptions{Block: 100 * time.Millisecond})
		if errors.Is(err, flo.ErrOverloaded) {
			break
		}
		rc.nc.Close()
	}
	rc.nc.Close()
	// Once the parked call's connection is gone its slot is free again.
	waitUntil(t, func() bool {
		_, err := c.KV.Get(ctx, "w2", &flo.GetOptions{Block: 10 * time.Millisecond})
		return err == nil
	})
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServer_MaxConnectionsAtTheEdge(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{Config: func(c *config.Config) { c.MaxConnections = 2 }})
	ping := func(rc *rawConn, id uint64) wire.Frame {
		rc.send(wire.AppendFrame(nil, id, byte(wire.OpPing), nil))
		return rc.reply()
	}
	a, b := dialRaw(t, srv.Addr), dialRaw(t, srv.Addr)
	if f := ping(a, 1); string(f.Payload) != "PONG" {
		t.Fatalf("first connection: %+v", f)
	}
	if f := ping(b, 1); string(f.Payload) != "PONG" {
		t.Fatalf("second connection (at the limit): %+v", f)
	}
	// One past the limit: OVERLOADED with request id 0, then closed.
	over := dialRaw(t, srv.Addr)
	f := over.reply()
	if wire.Status(f.Code) != wire.StatusOverloaded || f.RequestID != 0 {
		t.Fatalf("connection over the limit: status %d id %d %q", f.Code, f.RequestID, f.Payload)
	}
	over.expectClosed()
	// Closing one makes room again.
	a.nc.Close()
	waitUntil(t, func() bool {
		rc := dialRaw(t, srv.Addr)
		rc.send(wire.AppendFrame(nil, 9, byte(wire.OpPing), nil))
		f, _, err := wire.ReadFrame(rc.br, nil, 1<<20)
		return err == nil && string(f.Payload) == "PONG"
	})
}

func TestServer_InflightLimitAppliesBackpressureWithoutLoss(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{Config: func(c *config.Config) { c.MaxInflightPerConn = 4 }})
	rc := dialRaw(t, srv.Addr)
	// A parked call holds the head of the reply queue; 200 pipelined
	// requests behind it exceed the in-flight limit, so the server stops
	// reading until the parked call answers. Nothing is lost or reordered.
	var batch []byte
	batch = wire.AppendFrame(batch, 1, byte(wire.OpKVGet), wire.AppendRequest(nil, &wire.Request{Key: []byte("gate"), Options: wire.AppendU32(nil, wire.TagBlockMs, 300)}))
	for i := uint64(2); i <= 200; i++ {
		batch = wire.AppendFrame(batch, i, byte(wire.OpPing), nil)
	}
	rc.send(batch) // a few KiB: fits in the socket buffers
	if f := rc.reply(); f.RequestID != 1 || wire.Status(f.Code) != wire.StatusNotFound {
		t.Fatalf("parked call: id %d status %d", f.RequestID, f.Code)
	}
	for i := uint64(2); i <= 200; i++ {
		if f := rc.reply(); f.RequestID != i || string(f.Payload) != "PONG" {
			t.Fatalf("reply %d: id %d %q", i, f.RequestID, f.Payload)
		}
	}
}

func TestServer_ShutdownEndsAParkedCallBehindAFullInflightQueue(t *testing.T) {
	t.Parallel()
	// Not flotest.Start: if Shutdown hangs, its cleanup would hang too.
	srv, err := flotest.New(flotest.Options{DataDir: t.TempDir(), Config: func(c *config.Config) {
		c.MaxInflightPerConn = 2
		c.ShutdownTimeout = 200 * time.Millisecond
	}})
	if err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, srv.Addr)
	// A call parked without limit heads the reply queue and more requests
	// than the in-flight limit wait behind it, so the reader is stuck
	// handing one over, not reading the socket.
	var batch []byte
	batch = wire.AppendFrame(batch, 1, byte(wire.OpKVGet), wire.AppendRequest(nil, &wire.Request{Key: []byte("never"), Options: wire.AppendU32(nil, wire.TagBlockMs, 0)}))
	for i := uint64(2); i <= 10; i++ {
		batch = wire.AppendFrame(batch, i, byte(wire.OpPing), nil)
	}
	rc.send(batch)
	time.Sleep(100 * time.Millisecond)
	stopped := make(chan struct{})
	go func() { srv.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown hung on a connection whose reader waits for room in its in-flight queue")
	}
	// The parked call was answered empty, in order.
	if f := rc.reply(); f.RequestID != 1 || wire.Status(f.Code) != wire.StatusNotFound {
		t.Fatalf("parked call: id %d status %d %q", f.RequestID, f.Code, f.Payload)
	}
	for i := uint64(2); i <= 10; i++ {
		if f := rc.reply(); f.RequestID != i || string(f.Payload) != "PONG" {
			t.Fatalf("reply %d: id %d %q", i, f.RequestID, f.Payload)
		}
	}
}

func TestServer_InflightLimitIsExact(t *testing.T) {
	t.Parallel()
	// One request in flight per connection, one parked call server-wide.
	srv := flotest.Start(t, flotest.Options{Config: func(c *config.Config) {
		c.MaxInflightPerConn = 1
		c.MaxWaiters = 1
	}})
	c := srv.Client(t, flo.Options{})
	ctx := context.Background()
	rc := dialRaw(t, srv.Addr)
	// The first call parks and takes the waiter slot. The second must not
	// start until the first is answered: if it did, it would find no slot
	// and be refused OVERLOADED.
	var batch []byte
	for i, key := range []string{"a", "b"} {
		batch = wire.AppendFrame(batch, uint64(i+1), byte(wire.OpKVGet), wire.AppendRequest(nil, &wire.Request{Key: []byte(key), Options: wire.AppendU32(nil, wire.TagBlockMs, 0)}))
	}
	rc.send(batch)
	time.Sleep(100 * time.Millisecond)
	for i, key := range []string{"a", "b"} {
		if _, err := c.KV.Put(ctx, key, []byte("v"+key), nil); err != nil {
			t.Fatal(err)
		}
		if f := rc.reply(); f.RequestID != uint64(i+1) || wire.Status(f.Code) != wire.StatusOK || string(f.Payload) != "v"+key {
			t.Fatalf("reply %d: id %d status %d %q", i+1, f.RequestID, f.Code, f.Payload)
		}
	}
}

func TestServer_UnreadRepliesStopReadingAtTheByteLimit(t *testing.T) {
	t.Parallel()
	const size, limit = 1 << 20, 4 << 20
	srv := flotest.Start(t, flotest.Options{Config: func(c *config.Config) { c.MaxReplyBytesPerConn = limit }})
	c := srv.Client(t, flo.Options{})
	ctx := context.Background()
	if _, err := c.KV.Put(ctx, "big", make([]byte, size), nil); err != nil {
		t.Fatal(err)
	}
	// 200 gets of 1 MiB each and then a put, from a client that reads
	// nothing yet. Far less than 200 MiB fits in socket buffers, so the
	// server must stop reading long before the put.
	rc := dialRaw(t, srv.Addr)
	// 200 MiB of replies take a while under -race on a loaded machine.
	_ = rc.nc.SetDeadline(time.Now().Add(2 * time.Minute))
	var batch []byte
	for i := uint64(1); i <= 200; i++ {
		batch = wire.AppendFrame(batch, i, byte(wire.OpKVGet), wire.AppendRequest(nil, &wire.Request{Key: []byte("big")}))
	}
	batch = wire.AppendFrame(batch, 201, byte(wire.OpKVPut), wire.AppendRequest(nil, &wire.Request{Key: []byte("marker"), Value: []byte("x")}))
	rc.send(batch)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if v, _ := c.KV.Get(ctx, "marker", nil); v != nil {
			t.Fatal("the server read 200 MiB of replies ahead of a client that reads none")
		}
	}
	for i := uint64(1); i <= 201; i++ {
		if f := rc.reply(); f.RequestID != i || wire.Status(f.Code) != wire.StatusOK || (i <= 200 && len(f.Payload) != size) {
			t.Fatalf("reply %d: id %d status %d, %d bytes", i, f.RequestID, f.Code, len(f.Payload))
		}
	}
	if v, _ := c.KV.Get(ctx, "marker", nil); string(v) != "x" {
		t.Fatalf("marker = %q after every reply was read", v)
	}
}

func TestServer_HugeBlockMsWaitsInsteadOfWrapping(t *testing.T) {
	t.Parallel()
	srv := flotest.Start(t, flotest.Options{})
	c := srv.Client(t, flo.Options{})
	rc := dialRaw(t, srv.Addr)
	// BLOCK_MS as a u64 whose value in nanoseconds overflows int64: about
	// 584,000 years, which must not wrap to a wait of under a millisecond.
	const ms = 18446744073709552
	rc.request(1, wire.OpKVGet, wire.Request{Key: []byte("later"), Options: wire.AppendU64(nil, wire.TagBlockMs, ms)})
	time.Sleep(200 * time.Millisecond)
	if _, err := c.KV.Put(context.Background(), "later", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	if f := rc.reply(); wire.Status(f.Code) != wire.StatusOK || string(f.Payload) != "v" {
		t.Fatalf("reply: status %d %q", f.Code, f.Payload)
	}
}
