package server_test

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/floruntime/flo/flotest"
	"github.com/floruntime/flo/internal/action"
	"github.com/floruntime/flo/internal/config"
	"github.com/floruntime/flo/wire"
)

// fuzzOps is every opcode the server serves. FuzzServerRequests checks at
// start that the server answers no other opcode, so a new one cannot be
// left out of the fuzzing.
var fuzzOps = []wire.Op{
	wire.OpPing,
	wire.OpKVPut, wire.OpKVGet, wire.OpKVDelete, wire.OpKVScan, wire.OpKVHistory,
	wire.OpStreamAppend, wire.OpStreamRead, wire.OpStreamTrim, wire.OpStreamInfo,
	wire.OpStreamGroupJoin, wire.OpStreamGroupLeave, wire.OpStreamGroupRead, wire.OpStreamGroupAck,
	wire.OpStreamGroupNack, wire.OpStreamGroupTouch, wire.OpStreamGroupDLQList, wire.OpStreamGroupDLQRequeue,
	wire.OpQueueEnqueue, wire.OpQueueDequeue, wire.OpQueueAck, wire.OpQueueNack,
	wire.OpQueueDLQList, wire.OpQueueDLQDelete, wire.OpQueueDLQRequeue, wire.OpQueuePeek,
	wire.OpQueueStats, wire.OpQueueTouch,
	wire.OpActionRegister, wire.OpActionInvoke, wire.OpActionStatus, wire.OpActionList, wire.OpActionDelete,
	wire.OpWorkerRegister, wire.OpWorkerTouch, wire.OpWorkerAwait, wire.OpWorkerComplete,
	wire.OpWorkerFail, wire.OpWorkerList,
}

const (
	// fuzzMaxFrame is the server's frame limit: a request's value can be
	// built past it, so the limit is reached from both sides.
	fuzzMaxFrame = 4096
	// fuzzMaxBlockMs bounds every BLOCK_MS a fuzzed request carries
	// (0 would wait forever).
	fuzzMaxBlockMs = 20
	// fuzzCaseTimeout bounds one case; a case still waiting for a reply
	// then is a hang.
	fuzzCaseTimeout = 10 * time.Second
	// fuzzMaxRequests bounds the requests of one case.
	fuzzMaxRequests = 16
	// canaryNS holds a value written before fuzzing that no fuzzed request
	// names (a case whose bytes happen to name it is not checked).
	canaryNS, canaryKey = "fuzz-canary", "canary"
)

// FuzzServerRequests sends a fuzzed sequence of pipelined requests over TCP
// to a live in-process server (frame reader, dispatch, node, journal,
// machines, reply writer), then checks that
//   - every well-framed request gets exactly one reply, in order, with its
//     own request id and a status the protocol defines for a domain outcome
//     (never INTERNAL_ERROR, never an undefined one); PING answers PONG, an
//     unknown opcode, a malformed envelope or namespace BAD_REQUEST, and an
//     OK body decodes as its operation's layout;
//   - a malformed frame gets BAD_REQUEST with request id 0, then the
//     connection closes with nothing more;
//   - afterwards a KV key whose only write in the case was an acknowledged
//     PUT holds its value, the server still serves a fresh connection, and
//     a value written before fuzzing is unchanged.
//
// Requests go on two connections at once (the input says which), so a call
// parked on one can be woken by a write on the other.
//
// What the server should answer is worked out from the bytes actually sent
// (wire.DecodeFrame over the stream), so header corruptions that still
// frame, length fields that swallow the next frame and truncated frames are
// all judged the same way. The server is shared by the whole fuzz process,
// with small limits so that edges are reachable.
func FuzzServerRequests(f *testing.F) {
	srv := flotest.Start(f, flotest.Options{Config: func(c *config.Config) {
		c.MaxFrameBytes = fuzzMaxFrame
		c.MaxInflightPerConn = 4
		c.MaxReplyBytesPerConn = 1024
		c.MaxWaiters = 4
		c.ShutdownTimeout = 2 * time.Second
		c.QueueMaxDeliveries = 2
		c.QueueDLQMax = 3
		c.QueueDedupHold = time.Second
		c.StreamMaxStreams = 64
		c.StreamMaxGroups = 2
		c.StreamMaxPending = 3
		c.StreamMaxDeadLetters = 2
		c.ActionMaxActions = 16
		c.ActionMaxWorkers = 16
		c.ActionMaxLiveRuns = 256
	}})
	checkOpcodeListComplete(f, srv.Addr)
	canary := putCanary(f, srv.Addr)

	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		streams := buildStreams(data)
		var exps [2]expectation
		touched := false
		for i, stream := range streams {
			defuseBlocking(stream)
			exps[i] = expectFrom(stream)
			touched = touched || exps[i].touchesCanary
		}
		runCase(t, srv.Addr, streams, &exps)
		checkKVWrites(t, srv.Addr, exps)
		stillServes(t, srv)
		if !touched {
			checkCanary(t, srv.Addr, canary)
		} else {
			canary = readCanary(t, srv.Addr)
		}
	})
}

// ---- decoding the fuzz input into frames ----

// A case is up to fuzzMaxRequests requests on two connections, each
//
//	[mode:u8][op:u8][ns:u8][key:u8][id:u8][vlen:u8][value][olen:u8][opts]
//
// mode bits 0–1: the value as given (0), built for the opcode with the wire
// encoders from the value's bytes (1, 2), or the given value repeated 32
// times (3, to pass the frame limit); bits 2–3: add BLOCK_MS of
// 1–fuzzMaxBlockMs ms as a u32 (2) or a u8 (3); bits 4–6: the frame as
// built (0–3), the value bytes as the whole payload (4), one header byte
// changed with the CRC fixed (5) or not (6), the frame cut short and
// nothing sent after it (7); bit 7: op is sent as it is instead of picked
// from fuzzOps. ns and key pick a namespace and a key (see fuzzNamespace
// and fuzzKey); for modes 5–7 they also say which byte changes and how.
// id's top bit sends the request on the second connection, the rest picks
// the request id (fuzzID).
func buildStreams(data []byte) [2][]byte {
	var out [2][]byte
	var cut [2]bool
	var prevID uint64
	take := func(n int) []byte {
		n = min(n, len(data))
		b := data[:n]
		data = data[n:]
		return b
	}
	for i := 0; i < fuzzMaxRequests && len(data) >= 6; i++ {
		h := take(6)
		mode, opb, nsb, keyb, idb := h[0], h[1], h[2], h[3], h[4]
		value := bytes.Clone(take(int(h[5])))
		var opts []byte
		if l := take(1); len(l) == 1 {
			opts = bytes.Clone(take(int(l[0])))
		}
		op := fuzzOps[int(opb)%len(fuzzOps)]
		if mode&0x80 != 0 {
			op = wire.Op(opb)
		}
		switch mode & 3 {
		case 1, 2:
			value = structuredValue(op, value)
		case 3:
			value = bytes.Repeat(value, 32)
		}
		switch (mode >> 2) & 3 {
		case 2:
			opts = append(wire.AppendU32(nil, wire.TagBlockMs, uint32(1+int(opb)%fuzzMaxBlockMs)), opts...)
		case 3:
			opts = append(wire.AppendU8(nil, wire.TagBlockMs, uint8(1+int(opb)%fuzzMaxBlockMs)), opts...)
		}
		id := fuzzID(idb, uint64(i+1), prevID)
		prevID = id
		req := wire.Request{Namespace: fuzzNamespace(nsb), Key: fuzzKey(keyb, value), Value: value, Options: opts}
		payload := wire.AppendRequest(nil, &req)
		conn := int(idb >> 7)
		if cut[conn] {
			continue
		}
		frameMode := (mode >> 4) & 7
		if frameMode == 4 {
			payload = value
		}
		frame := wire.AppendFrame(nil, id, byte(op), payload)
		switch frameMode {
		case 5, 6:
			frame[int(nsb)%wire.HeaderSize] ^= keyb | 1
			if frameMode == 5 {
				seal(frame)
			}
		case 7:
			frame = frame[:int(keyb)*len(frame)/256]
			cut[conn] = true
		}
		out[conn] = append(out[conn], frame...)
	}
	return out
}

// seal recomputes the CRC of the frame at the start of b over the payload
// its header declares (or what there is of it).
func seal(b []byte) {
	n := min(len(b), wire.HeaderSize+int(binary.LittleEndian.Uint32(b[4:8])))
	c := crc32.Update(0, crc32.IEEETable, b[0:16])
	c = crc32.Update(c, crc32.IEEETable, b[20:24])
	c = crc32.Update(c, crc32.IEEETable, b[wire.HeaderSize:n])
	binary.LittleEndian.PutUint32(b[16:20], c)
}

func fuzzID(b byte, next, prev uint64) uint64 {
	switch b % 8 {
	case 1:
		return 0
	case 2:
		return 1<<64 - 1
	case 3:
		return prev
	}
	return next
}

// fuzzNamespace picks a namespace: valid ones that share state across
// cases, the empty default, the longest valid one and invalid ones.
func fuzzNamespace(b byte) string {
	switch b % 8 {
	case 0:
		return ""
	case 1:
		return "default"
	case 2, 3:
		return "ns2"
	case 4:
		return strings.Repeat("n", 255)
	case 5:
		return strings.Repeat("n", 256)
	case 6:
		return "bad\xff"
	}
	return "nul\x00"
}

// fuzzKey picks a key (a queue, stream, action or worker name, or a run
// id): two shared names, a third, the empty one, long ones, a run id and
// the value's first bytes.
func fuzzKey(b byte, value []byte) []byte {
	p := int(b >> 3)
	switch b % 8 {
	case 0:
		return []byte("a")
	case 1:
		return []byte("b")
	case 2:
		return nil
	case 3:
		return bytes.Repeat([]byte("k"), []int{255, 256, 1024, 3000}[p%4])
	case 4:
		return []byte(action.RunID(uint64(p)))
	case 5:
		return []byte("_action:a")
	case 6:
		return value[:min(len(value), p)]
	}
	return []byte("c")
}

// params hands out bytes of a value for structuredValue; past the end it
// gives zeros.
type params []byte

func (p *params) u8() byte {
	if len(*p) == 0 {
		return 0
	}
	b := (*p)[0]
	*p = (*p)[1:]
	return b
}

func (p *params) u32() uint32 {
	return uint32(p.u8()) | uint32(p.u8())<<8 | uint32(p.u8())<<16 | uint32(p.u8())<<24
}

func (p *params) bytes() []byte {
	n := min(int(p.u8())%16, len(*p))
	b := (*p)[:n]
	*p = (*p)[n:]
	return b
}

// seqs returns 0–3 small seqs (sometimes huge ones), mostly ones the
// server has handed out.
func (p *params) seqs() []uint64 {
	n := int(p.u8() % 4)
	s := make([]uint64, n)
	for i := range s {
		switch v := p.u8(); {
		case v == 0xff:
			s[i] = 1<<64 - 1
		default:
			s[i] = uint64(v % 32)
		}
	}
	return s
}

func (p *params) name() string { return []string{"g", "h", "", "a", "b"}[p.u8()%5] }

func (p *params) runID() []byte {
	if v := p.u8(); v < 0xf0 {
		return []byte(action.RunID(uint64(v % 32)))
	}
	return p.bytes()
}

// structuredValue builds a well-formed value for op, reading its fields
// from b, so that fuzzing reaches past the value decoders.
func structuredValue(op wire.Op, b []byte) []byte {
	p := params(b)
	switch op {
	case wire.OpQueueDequeue, wire.OpQueueAck, wire.OpQueueNack, wire.OpQueueTouch,
		wire.OpQueueDLQRequeue, wire.OpQueueDLQDelete:
		return wire.AppendSeqList(nil, p.seqs())
	case wire.OpStreamGroupJoin, wire.OpStreamGroupLeave, wire.OpStreamGroupRead:
		return wire.AppendGroupConsumer(nil, p.name(), p.name())
	case wire.OpStreamGroupAck, wire.OpStreamGroupNack, wire.OpStreamGroupTouch, wire.OpStreamGroupDLQRequeue:
		return wire.AppendGroupSeqs(nil, p.name(), p.seqs())
	case wire.OpStreamGroupDLQList:
		return wire.AppendGroupName(nil, p.name())
	case wire.OpActionRegister:
		r := wire.ActionRegister{Type: wire.ActionType(p.u8() % 3), TimeoutMs: p.u32() % 5000, MaxRetries: uint32(p.u8() % 4)}
		if p.u8()&1 != 0 {
			r.HasDescription, r.Description = true, p.bytes()
		}
		return wire.AppendActionRegister(nil, &r)
	case wire.OpActionInvoke:
		r := wire.ActionInvoke{Priority: p.u8(), DelayMs: int64(p.u8()) - 8}
		if p.u8()&1 != 0 {
			r.IdempotencyKey = p.bytes()
		}
		r.Input = p.bytes()
		return wire.AppendActionInvoke(nil, &r)
	case wire.OpActionList, wire.OpWorkerList:
		return wire.AppendActionListRequest(nil, &wire.ActionListRequest{Limit: uint32(p.u8() % 4), Cursor: p.bytes()})
	case wire.OpWorkerRegister:
		r := wire.WorkerRegister{TaskTypes: []string{p.name(), p.name()}[:1+p.u8()%2]}
		if p.u8()&1 != 0 {
			r.HasCaps, r.Capacity = true, uint32(p.u8())
		}
		return wire.AppendWorkerRegister(nil, &r)
	case wire.OpWorkerAwait:
		v := wire.AppendTaskTypes(nil, []string{p.name(), p.name()}[:1+p.u8()%2])
		if p.u8()&1 != 0 { // completions: needs the COMPLETIONS and COUNT options to be read as such
			reps := make([]wire.TaskReport, p.u8()%3)
			for i := range reps {
				reps[i] = wire.TaskReport{TaskID: p.runID(), Data: p.bytes()}
			}
			v = wire.AppendAwaitCompletions(v, reps)
		}
		return v
	case wire.OpWorkerComplete, wire.OpWorkerFail:
		return wire.AppendTaskReport(nil, &wire.TaskReport{TaskID: p.runID(), Data: p.bytes()})
	case wire.OpWorkerTouch:
		return wire.AppendWorkerTouch(nil, &wire.WorkerTouch{TaskID: p.runID(), ExtendMs: p.u32() % 10000})
	}
	return b
}

// defuseBlocking makes sure no request the server will read from stream
// blocks for more than fuzzMaxBlockMs (BLOCK_MS or INVOKE_WAIT_MS 0 waits
// forever): the first such option of each well-framed request that would is
// renamed to an unknown tag and the frame's CRC fixed. Requests are found
// the way the server finds them, after every corruption and truncation.
func defuseBlocking(stream []byte) {
	for off := 0; off < len(stream); {
		f, n, err := wire.DecodeFrame(stream[off:], fuzzMaxFrame)
		if err != nil || f.Flags != 0 {
			return
		}
		req, err := wire.DecodeRequest(f.Payload) // aliases stream
		for _, tag := range []wire.Tag{wire.TagBlockMs, wire.TagInvokeWaitMs} {
			for err == nil {
				ms, ok := req.Options.Uint(tag)
				if !ok || (ms >= 1 && ms <= fuzzMaxBlockMs) {
					break
				}
				for i := 0; i+2 <= len(req.Options); i += 2 + int(req.Options[i+1]) {
					if wire.Tag(req.Options[i]) == tag {
						req.Options[i] = 0xfe
						break
					}
				}
			}
		}
		seal(stream[off:])
		off += n
	}
}

// ---- what the server must answer ----

type expectation struct {
	// requests are the well-framed requests the server reads, in order.
	requests []wire.Frame
	// malformed says a malformed frame follows them: BAD_REQUEST with
	// request id 0, then the connection closes.
	malformed bool
	// touchesCanary says a request names the canary's namespace.
	touchesCanary bool
	// statuses are the statuses the requests were answered with.
	statuses []wire.Status
}

func expectFrom(stream []byte) expectation {
	var e expectation
	for off := 0; off < len(stream); {
		f, n, err := wire.DecodeFrame(stream[off:], fuzzMaxFrame)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			break // the server waits for the rest until the client hangs up
		}
		if err != nil || f.Flags != 0 {
			e.malformed = true
			break
		}
		if req, err := wire.DecodeRequest(f.Payload); err == nil && req.Namespace == canaryNS {
			e.touchesCanary = true
		}
		e.requests = append(e.requests, f)
		off += n
	}
	return e
}

// runCase sends each stream on a connection of its own, at once, and
// checks the replies of each.
func runCase(t *testing.T, addr string, streams [2][]byte, exps *[2]expectation) {
	var errs [2]error
	var wg sync.WaitGroup
	for i := range streams {
		if i > 0 && len(streams[i]) == 0 {
			continue
		}
		rc := dialRaw(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = converse(rc.nc, rc.br, streams[i], &exps[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
}

// converse sends stream on nc, reads and checks every reply, and checks
// that nothing else comes back.
func converse(nc net.Conn, br *bufio.Reader, stream []byte, exp *expectation) error {
	_ = nc.SetDeadline(time.Now().Add(fuzzCaseTimeout))
	// The server may stop reading while replies are unread (in-flight and
	// reply-byte limits), so the stream goes from another goroutine.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = nc.Write(stream)
	}()
	defer func() {
		nc.Close()
		<-wrote
	}()
	for i, req := range exp.requests {
		f, _, err := wire.ReadFrame(br, nil, 1<<30)
		if err != nil {
			return fmt.Errorf("request %d (id %d, op 0x%02x): no reply: %v", i, req.RequestID, req.Code, err)
		}
		if f.RequestID != req.RequestID {
			return fmt.Errorf("request %d (id %d, op 0x%02x): reply has id %d (status %d %q)", i, req.RequestID, req.Code, f.RequestID, f.Code, f.Payload)
		}
		exp.statuses = append(exp.statuses, wire.Status(f.Code))
		if err := checkReply(req, f); err != nil {
			return fmt.Errorf("request %d (id %d, op 0x%02x, payload %x): %v", i, req.RequestID, req.Code, req.Payload, err)
		}
	}
	if exp.malformed {
		f, _, err := wire.ReadFrame(br, nil, 1<<30)
		if err != nil {
			return fmt.Errorf("malformed frame: no reply: %v", err)
		}
		if wire.Status(f.Code) != wire.StatusBadRequest || f.RequestID != 0 || !strings.HasPrefix(string(f.Payload), "Invalid request") {
			return fmt.Errorf("malformed frame: reply = status %d id %d %q", f.Code, f.RequestID, f.Payload)
		}
	} else {
		// Every request is answered; hang up, and the server must too
		// without another word.
		_ = nc.(*net.TCPConn).CloseWrite()
	}
	if b, err := br.ReadByte(); err == nil {
		rest, _ := io.ReadAll(io.MultiReader(bytes.NewReader([]byte{b}), br))
		return fmt.Errorf("%d unexpected bytes after the last reply: %x", len(rest), rest[:min(len(rest), 64)])
	} else if !errors.Is(err, io.EOF) && !isReset(err) {
		return fmt.Errorf("connection not closed after the last reply: %v", err)
	}
	return nil
}

// okStatuses are the statuses a request may be answered with: OK and the
// domain outcomes. INTERNAL_ERROR means the server failed, not the request.
var okStatuses = []wire.Status{wire.StatusOK, wire.StatusNotFound, wire.StatusBadRequest, wire.StatusConflict, wire.StatusOverloaded}

// checkReply checks the reply f to the well-framed request req.
func checkReply(req, f wire.Frame) error {
	st, op := wire.Status(f.Code), wire.Op(req.Code)
	if !slices.Contains(okStatuses, st) {
		return fmt.Errorf("status %d (%v): %q", f.Code, st, f.Payload)
	}
	if op == wire.OpPing {
		if st != wire.StatusOK || string(f.Payload) != "PONG" {
			return fmt.Errorf("ping: status %d %q", f.Code, f.Payload)
		}
		return nil
	}
	r, err := wire.DecodeRequest(req.Payload)
	want := ""
	switch {
	case err != nil:
		want = "malformed request envelope"
	case len(r.Namespace) > 255 || strings.ContainsRune(r.Namespace, 0) || !utf8.ValidString(r.Namespace):
		want = "namespace"
	case !slices.Contains(fuzzOps, op):
		want = fmt.Sprintf("unknown opcode 0x%02x", uint8(op))
	}
	if want != "" {
		if st != wire.StatusBadRequest || !strings.HasPrefix(string(f.Payload), want) {
			return fmt.Errorf("want BAD_REQUEST %q, got status %d %q", want, f.Code, f.Payload)
		}
		return nil
	}
	if st != wire.StatusOK {
		return nil
	}
	if err := checkOKBody(op, r.Options, f.Payload); err != nil {
		return fmt.Errorf("OK body %x: %v", f.Payload[:min(len(f.Payload), 128)], err)
	}
	return nil
}

// checkOKBody decodes an OK body as op's layout.
func checkOKBody(op wire.Op, o wire.Options, b []byte) error {
	var err error
	fixed := func(n int) {
		if len(b) != n {
			err = fmt.Errorf("%d bytes, want %d", len(b), n)
		}
	}
	switch op {
	case wire.OpKVPut, wire.OpQueueEnqueue, wire.OpQueueDLQDelete:
		fixed(8)
	case wire.OpKVScan:
		_, err = wire.DecodeScanPage(b)
	case wire.OpKVHistory:
		_, err = wire.DecodeHistory(b)
	case wire.OpStreamAppend:
		_, err = wire.DecodeStreamAppendReply(b)
	case wire.OpStreamRead, wire.OpStreamGroupRead:
		_, err = wire.DecodeStreamRecords(b)
	case wire.OpStreamTrim:
		_, err = wire.DecodeStreamTrimReply(b)
	case wire.OpStreamInfo:
		_, err = wire.DecodeStreamInfo(b)
	case wire.OpStreamGroupDLQList:
		_, err = wire.DecodeStreamDeadRecords(b)
	case wire.OpQueueDequeue, wire.OpQueuePeek, wire.OpQueueDLQList:
		_, err = wire.DecodeQueueMessages(b, o.Flag(wire.TagMessageDetail))
	case wire.OpQueueStats:
		_, err = wire.DecodeQueueStats(b)
	case wire.OpActionStatus:
		_, err = wire.DecodeRunStatus(b)
	case wire.OpActionInvoke:
		if _, wait := o.Uint(wire.TagInvokeWaitMs); wait {
			_, err = wire.DecodeRunStatus(b)
		}
	case wire.OpActionList:
		_, err = wire.DecodeActionList(b)
	case wire.OpWorkerList:
		_, err = wire.DecodeWorkerList(b)
	case wire.OpWorkerAwait:
		_, batch := o.Uint(wire.TagCount)
		switch {
		case batch && o.Flag(wire.TagCompletions):
			var sts []wire.Status
			_, sts, err = wire.DecodeTaskBatchStatuses(b)
			for _, s := range sts {
				if err == nil && !slices.Contains(okStatuses, s) {
					err = fmt.Errorf("completion status %d (%v)", s, s)
				}
			}
		case batch:
			_, err = wire.DecodeTaskBatch(b)
		case len(b) > 0:
			_, err = wire.DecodeTaskAssignment(b)
		}
	}
	return err
}

// checkKVWrites checks that no acknowledged KV write is lost: a key whose
// only KV write in the case was a PUT answered OK (without a TTL) must hold
// that value afterwards, whichever connection wrote it.
func checkKVWrites(t *testing.T, addr string, exps [2]expectation) {
	t.Helper()
	type write struct {
		n     int
		value []byte
		ok    bool
	}
	writes := map[[2]string]*write{}
	for _, exp := range exps {
		for i, f := range exp.requests {
			op := wire.Op(f.Code)
			if op != wire.OpKVPut && op != wire.OpKVDelete {
				continue
			}
			r, err := wire.DecodeRequest(f.Payload)
			if err != nil {
				continue
			}
			ns := cmp.Or(r.Namespace, "default")
			k := [2]string{ns, string(r.Key)}
			w := writes[k]
			if w == nil {
				w = &write{}
				writes[k] = w
			}
			w.n++
			w.value = r.Value
			w.ok = op == wire.OpKVPut && i < len(exp.statuses) && exp.statuses[i] == wire.StatusOK && !r.Options.Has(wire.TagTTLSeconds)
		}
	}
	for k, w := range writes {
		if w.n != 1 || !w.ok {
			continue
		}
		f := rawCall(t, addr, wire.OpKVGet, wire.Request{Namespace: k[0], Key: []byte(k[1])})
		if wire.Status(f.Code) != wire.StatusOK || !bytes.Equal(f.Payload, w.value) {
			t.Fatalf("KV %q/%q: acknowledged PUT of %q, then GET answers status %d %q", k[0], k[1], w.value, f.Code, f.Payload)
		}
	}
}

// ---- setup and checks shared by every case ----

// checkOpcodeListComplete fails if the server serves an opcode missing
// from fuzzOps: every other one must be answered "unknown opcode".
func checkOpcodeListComplete(tb testing.TB, addr string) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	var batch []byte
	for op := range 256 {
		batch = wire.AppendFrame(batch, uint64(op)+1, byte(op), wire.AppendRequest(nil, &wire.Request{Namespace: canaryNS}))
	}
	go func() { _, _ = nc.Write(batch) }()
	br := bufio.NewReader(nc)
	for op := range 256 {
		f, _, err := wire.ReadFrame(br, nil, 1<<30)
		if err != nil {
			tb.Fatalf("opcode sweep: 0x%02x: %v", op, err)
		}
		if f.RequestID != uint64(op)+1 {
			tb.Fatalf("opcode sweep: 0x%02x answered with request id %d", op, f.RequestID)
		}
		unknown := wire.Status(f.Code) == wire.StatusBadRequest && strings.HasPrefix(string(f.Payload), "unknown opcode")
		if listed := slices.Contains(fuzzOps, wire.Op(op)); listed == unknown {
			tb.Fatalf("opcode 0x%02x: listed in fuzzOps %v, but answered status %d %q", op, listed, f.Code, f.Payload)
		}
	}
}

// rawCall sends one request on a fresh connection and returns the reply.
func rawCall(tb testing.TB, addr string, op wire.Op, req wire.Request) wire.Frame {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(wire.AppendFrame(nil, 1, byte(op), wire.AppendRequest(nil, &req))); err != nil {
		tb.Fatal(err)
	}
	f, _, err := wire.ReadFrame(nc, nil, 1<<30)
	if err != nil {
		tb.Fatalf("read reply: %v", err)
	}
	return f
}

func putCanary(tb testing.TB, addr string) []byte {
	v := []byte("the canary, written before any fuzzed request")
	if f := rawCall(tb, addr, wire.OpKVPut, wire.Request{Namespace: canaryNS, Key: []byte(canaryKey), Value: v}); wire.Status(f.Code) != wire.StatusOK {
		tb.Fatalf("put canary: status %d %q", f.Code, f.Payload)
	}
	return v
}

func readCanary(tb testing.TB, addr string) []byte {
	f := rawCall(tb, addr, wire.OpKVGet, wire.Request{Namespace: canaryNS, Key: []byte(canaryKey)})
	return bytes.Clone(f.Payload)
}

func checkCanary(t *testing.T, addr string, want []byte) {
	t.Helper()
	f := rawCall(t, addr, wire.OpKVGet, wire.Request{Namespace: canaryNS, Key: []byte(canaryKey)})
	if wire.Status(f.Code) != wire.StatusOK || !bytes.Equal(f.Payload, want) {
		t.Fatalf("canary: status %d %q, want %q", f.Code, f.Payload, want)
	}
}

// ---- seeds ----

// seedReq encodes one request of a case with its value as given.
func seedReq(dst []byte, mode byte, op wire.Op, ns, key byte, value, opts []byte) []byte {
	i := slices.Index(fuzzOps, op)
	if i < 0 {
		panic(fmt.Sprintf("seed op 0x%02x not in fuzzOps", uint8(op)))
	}
	dst = append(dst, mode, byte(i), ns, key, 0, byte(len(value)))
	dst = append(dst, value...)
	dst = append(dst, byte(len(opts)))
	return append(dst, opts...)
}

// onSecond marks the request seedReq appended at from to go on the second
// connection.
func onSecond(b []byte, from int) []byte {
	b[from+4] |= 0x80
	return b
}

// fuzzSeeds returns a case with a valid request for every opcode, cases
// that reach the state behind them (a queue message leased, acked and
// dead-lettered; a stream group reading and acking; an action run
// claimed and completed), and cases with each kind of frame damage.
func fuzzSeeds() [][]byte {
	const (
		nsDefault = 1
		keyA      = 0
		keyB      = 1
		keyC      = 7
		blockU32  = 2 << 2
	)
	u32 := wire.AppendU32
	detail := wire.AppendFlag(nil, wire.TagMessageDetail)
	seq := func(s ...uint64) []byte { return wire.AppendSeqList(nil, s) }
	gc := wire.AppendGroupConsumer(nil, "g", "c")
	gs := func(s ...uint64) []byte { return wire.AppendGroupSeqs(nil, "g", s) }
	run := func(n uint64) []byte { return []byte(action.RunID(n)) }

	one := func(op wire.Op, key byte, value, opts []byte) []byte {
		return seedReq(nil, 0, op, nsDefault, key, value, opts)
	}
	var seeds [][]byte
	// One valid request per opcode, each a case of its own.
	seeds = append(seeds,
		one(wire.OpPing, keyA, nil, nil),
		one(wire.OpKVPut, keyA, []byte("v"), wire.AppendU32(nil, wire.TagTTLSeconds, 60)),
		one(wire.OpKVGet, keyA, nil, nil),
		one(wire.OpKVDelete, keyA, nil, wire.AppendFlag(nil, wire.TagIfExists)),
		one(wire.OpKVScan, 2, nil, wire.AppendFlag(u32(nil, wire.TagLimit, 2), wire.TagKeysOnly)),
		one(wire.OpKVHistory, keyA, nil, u32(nil, wire.TagLimit, 3)),
		one(wire.OpStreamAppend, keyA, []byte("r"), wire.AppendStreamAppendOptions(nil, true, "pk", 5)),
		one(wire.OpStreamRead, keyA, nil, wire.AppendOption(u32(nil, wire.TagCount, 5), wire.TagStreamStart, wire.AppendStreamID(nil, wire.StreamID{Sequence: 1}))),
		one(wire.OpStreamTrim, keyA, nil, wire.AppendU64(nil, wire.TagRetentionCount, 10)),
		one(wire.OpStreamInfo, keyA, nil, nil),
		one(wire.OpStreamGroupJoin, keyA, gc, u32(wire.AppendU8(nil, wire.TagMaxDeliver, 2), wire.TagAckTimeoutMs, 1000)),
		one(wire.OpStreamGroupLeave, keyA, gc, nil),
		one(wire.OpStreamGroupRead, keyA, gc, u32(nil, wire.TagCount, 2)),
		one(wire.OpStreamGroupAck, keyA, gs(1), nil),
		one(wire.OpStreamGroupNack, keyA, gs(1), nil),
		one(wire.OpStreamGroupTouch, keyA, gs(1), nil),
		one(wire.OpStreamGroupDLQList, keyA, wire.AppendGroupName(nil, "g"), u32(nil, wire.TagLimit, 5)),
		one(wire.OpStreamGroupDLQRequeue, keyA, gs(1), nil),
		one(wire.OpQueueEnqueue, keyA, []byte("m"), wire.AppendOption(wire.AppendU8(nil, wire.TagPriority, 3), wire.TagDedupKey, []byte("d"))),
		one(wire.OpQueueDequeue, keyA, nil, append(u32(u32(nil, wire.TagCount, 2), wire.TagVisibilityTimeoutMs, 1000), detail...)),
		one(wire.OpQueueAck, keyA, seq(1), nil),
		one(wire.OpQueueNack, keyA, seq(1), wire.AppendOption(wire.AppendFlag(nil, wire.TagSendToDLQ), wire.TagNackReason, []byte("why"))),
		one(wire.OpQueueDLQList, keyA, nil, append(u32(nil, wire.TagLimit, 5), detail...)),
		one(wire.OpQueueDLQDelete, keyA, nil, wire.AppendFlag(nil, wire.TagDLQAll)),
		one(wire.OpQueueDLQRequeue, keyA, seq(1), nil),
		one(wire.OpQueuePeek, keyA, nil, u32(nil, wire.TagCount, 3)),
		one(wire.OpQueueStats, keyA, nil, nil),
		one(wire.OpQueueTouch, keyA, seq(1), u32(nil, wire.TagExtendMs, 1000)),
		one(wire.OpActionRegister, keyA, wire.AppendActionRegister(nil, &wire.ActionRegister{TimeoutMs: 1000, MaxRetries: 1}), nil),
		one(wire.OpActionInvoke, keyA, wire.AppendActionInvoke(nil, &wire.ActionInvoke{Priority: 1, Input: []byte("in"), IdempotencyKey: []byte("i")}), nil),
		one(wire.OpActionInvoke, keyA, wire.AppendActionInvoke(nil, &wire.ActionInvoke{Input: []byte("w")}), u32(nil, wire.TagInvokeWaitMs, 5)),
		one(wire.OpActionStatus, 4|1<<3, nil, nil),
		one(wire.OpActionList, 2, wire.AppendActionListRequest(nil, &wire.ActionListRequest{Limit: 2}), nil),
		one(wire.OpActionDelete, keyB, nil, nil),
		one(wire.OpWorkerRegister, keyC, wire.AppendWorkerRegister(nil, &wire.WorkerRegister{TaskTypes: []string{"a"}, HasCaps: true, Capacity: 2}), nil),
		one(wire.OpWorkerTouch, keyC, wire.AppendWorkerTouch(nil, &wire.WorkerTouch{TaskID: run(1), ExtendMs: 500}), nil),
		one(wire.OpWorkerAwait, keyC, wire.AppendTaskTypes(nil, []string{"a"}), u32(nil, wire.TagTimeoutMs, 1000)),
		one(wire.OpWorkerComplete, keyC, wire.AppendTaskReport(nil, &wire.TaskReport{TaskID: run(1), Data: []byte("ok")}), nil),
		one(wire.OpWorkerFail, keyC, wire.AppendTaskReport(nil, &wire.TaskReport{TaskID: run(1), Data: []byte("no")}), wire.AppendFlag(nil, wire.TagRetry)),
		one(wire.OpWorkerList, 2, wire.AppendActionListRequest(nil, &wire.ActionListRequest{}), nil),
	)

	// A queue's life: enqueue, lease, nack to the DLQ, requeue, ack;
	// a blocked dequeue answered by a later enqueue is on the same
	// connection only through the in-flight queue.
	var q []byte
	q = seedReq(q, 0, wire.OpQueueEnqueue, nsDefault, keyB, []byte("m1"), nil)
	q = seedReq(q, 0, wire.OpQueueEnqueue, nsDefault, keyB, []byte("m2"), wire.AppendU64(nil, wire.TagDelayMs, 5))
	q = seedReq(q, 0, wire.OpQueueDequeue, nsDefault, keyB, nil, append(u32(nil, wire.TagCount, 2), detail...))
	q = seedReq(q, 0, wire.OpQueueNack, nsDefault, keyB, seq(1, 2), wire.AppendFlag(nil, wire.TagSendToDLQ))
	q = seedReq(q, 0, wire.OpQueueDLQList, nsDefault, keyB, nil, detail)
	q = seedReq(q, 0, wire.OpQueueDLQRequeue, nsDefault, keyB, seq(1), nil)
	q = seedReq(q, blockU32, wire.OpQueueDequeue, nsDefault, keyB, seq(1), u32(nil, wire.TagCount, 1))
	q = seedReq(q, 0, wire.OpQueueStats, nsDefault, keyB, nil, nil)
	seeds = append(seeds, q)

	// A stream group: append, read, ack, nack to the dead letters.
	var s []byte
	s = seedReq(s, 0, wire.OpStreamAppend, nsDefault, keyB, []byte("r1"), nil)
	s = seedReq(s, 0, wire.OpStreamAppend, nsDefault, keyB, []byte("r2"), nil)
	s = seedReq(s, 0, wire.OpStreamGroupJoin, nsDefault, keyB, gc, wire.AppendU8(nil, wire.TagMaxDeliver, 1))
	s = seedReq(s, 0, wire.OpStreamGroupRead, nsDefault, keyB, gc, u32(nil, wire.TagCount, 2))
	s = seedReq(s, 0, wire.OpStreamGroupAck, nsDefault, keyB, gs(1), nil)
	s = seedReq(s, 0, wire.OpStreamGroupNack, nsDefault, keyB, gs(2), nil)
	s = seedReq(s, blockU32, wire.OpStreamGroupRead, nsDefault, keyB, gc, nil)
	s = seedReq(s, 0, wire.OpStreamGroupDLQList, nsDefault, keyB, wire.AppendGroupName(nil, "g"), nil)
	s = seedReq(s, blockU32, wire.OpStreamRead, nsDefault, keyB, nil, wire.AppendFlag(nil, wire.TagStreamTail))
	s = seedReq(s, 0, wire.OpStreamRead, nsDefault, keyB, nil,
		wire.AppendOption(wire.AppendOption(nil, wire.TagStreamStart, wire.AppendStreamID(nil, wire.StreamID{TimestampMs: 1})),
			wire.TagStreamEnd, wire.AppendStreamID(nil, wire.StreamID{TimestampMs: 1 << 62})))
	s = seedReq(s, 0, wire.OpStreamTrim, nsDefault, keyB, nil, wire.AppendU64(nil, wire.TagRetentionCount, 1))
	seeds = append(seeds, s)

	// An action run: register, invoke, claim with completions, status.
	var a []byte
	a = seedReq(a, 0, wire.OpActionRegister, nsDefault, keyB, wire.AppendActionRegister(nil, &wire.ActionRegister{TimeoutMs: 1000, MaxRetries: 1}), nil)
	a = seedReq(a, 0, wire.OpActionInvoke, nsDefault, keyB, wire.AppendActionInvoke(nil, &wire.ActionInvoke{Input: []byte("x"), IdempotencyKey: []byte("once")}), nil)
	a = seedReq(a, 0, wire.OpActionInvoke, nsDefault, keyB, wire.AppendActionInvoke(nil, &wire.ActionInvoke{Input: []byte("x"), IdempotencyKey: []byte("once")}), nil)
	a = seedReq(a, 0, wire.OpWorkerRegister, nsDefault, keyC, wire.AppendWorkerRegister(nil, &wire.WorkerRegister{TaskTypes: []string{"b"}}), nil)
	a = seedReq(a, blockU32, wire.OpWorkerAwait, nsDefault, keyC, wire.AppendTaskTypes(nil, []string{"b"}), u32(nil, wire.TagCount, 2))
	a = seedReq(a, 0, wire.OpWorkerAwait, nsDefault, keyC,
		wire.AppendAwaitCompletions(wire.AppendTaskTypes(nil, []string{"b"}), []wire.TaskReport{{TaskID: run(1), Data: []byte("done")}}),
		wire.AppendFlag(u32(nil, wire.TagCount, 1), wire.TagCompletions))
	a = seedReq(a, blockU32, wire.OpActionStatus, nsDefault, 4|1<<3, nil, nil)
	a = seedReq(a, 0, wire.OpWorkerList, nsDefault, keyA, nil, nil)
	a = seedReq(a, 0, wire.OpActionList, nsDefault, keyA, nil, nil)
	seeds = append(seeds, a)

	// Parked calls on the second connection (a dequeue, a group read, a
	// worker's await) that writes on the first satisfy.
	var w []byte
	w = onSecond(seedReq(w, blockU32, wire.OpQueueDequeue, nsDefault, keyC, nil, nil), 0)
	n := len(w)
	w = onSecond(seedReq(w, blockU32, wire.OpStreamGroupRead, nsDefault, keyC, gc, nil), n)
	n = len(w)
	w = onSecond(seedReq(w, blockU32, wire.OpWorkerAwait, nsDefault, keyB, wire.AppendTaskTypes(nil, []string{"c"}), nil), n)
	w = seedReq(w, 0, wire.OpActionRegister, nsDefault, keyC, wire.AppendActionRegister(nil, &wire.ActionRegister{TimeoutMs: 1000}), nil)
	w = seedReq(w, 0, wire.OpQueueEnqueue, nsDefault, keyC, []byte("m"), nil)
	w = seedReq(w, 0, wire.OpStreamAppend, nsDefault, keyC, []byte("r"), nil)
	w = seedReq(w, 0, wire.OpActionInvoke, nsDefault, keyC, wire.AppendActionInvoke(nil, &wire.ActionInvoke{}), nil)
	seeds = append(seeds, w)

	// Frame damage after a good request: a changed header byte with the
	// CRC fixed (flags) or not, a cut frame, a raw payload, a value past
	// the frame limit, an unknown opcode and bad namespaces.
	ping := seedReq(nil, 0, wire.OpPing, 0, 0, nil, nil)
	seeds = append(seeds,
		seedReq(bytes.Clone(ping), 5<<4, wire.OpKVGet, 22, 4, nil, nil),
		seedReq(bytes.Clone(ping), 6<<4, wire.OpKVGet, 0, 4, nil, nil),
		seedReq(bytes.Clone(ping), 5<<4, wire.OpKVGet, 9, 4, nil, nil),
		seedReq(bytes.Clone(ping), 7<<4, wire.OpKVPut, 0, 100, []byte("half"), nil),
		seedReq(bytes.Clone(ping), 4<<4, wire.OpKVGet, 0, 0, []byte{0, 0, 0xff, 0xff, 'k'}, nil),
		seedReq(bytes.Clone(ping), 3, wire.OpKVPut, 0, 0, bytes.Repeat([]byte("v"), 200), nil),
		append(bytes.Clone(ping), 0x80, 0x99, 0, 0, 0, 0, 0),
		seedReq(seedReq(bytes.Clone(ping), 0, wire.OpKVGet, 5, 0, nil, nil), 0, wire.OpKVGet, 6, 0, nil, nil),
	)
	return seeds
}
