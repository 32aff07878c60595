package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const actionT0 = 1700000000000

// TestGolden_ActionAndWorkerFrames encodes every action and worker golden
// frame with this package's encoders and compares the bytes, then decodes
// the body and checks it round-trips.
func TestGolden_ActionAndWorkerFrames(t *testing.T) {
	t.Parallel()
	req := func(key string, value []byte, opts Options) []byte {
		return AppendRequest(nil, &Request{Namespace: "default", Key: []byte(key), Value: value, Options: opts})
	}
	desc := []byte("resize images")
	register := ActionRegister{Type: ActionUser, TimeoutMs: 60000, MaxRetries: 3, HasDescription: true, Description: desc}
	invoke := ActionInvoke{Priority: 10, IdempotencyKey: []byte("order-123"), Input: []byte(`{"n":1}`)}
	status := RunStatus{
		RunID: []byte("run-1"), State: RunCompleted, CreatedMs: actionT0, StartedMs: actionT0 + 100, CompletedMs: actionT0 + 200,
		HasOutput: true, Output: []byte("done"), Attempt: 1,
	}
	list := ActionList{Entries: []ActionEntry{{
		Name: []byte("process-image"), Type: ActionUser, Version: 2, Enabled: true,
		HasSettings: true, TimeoutMs: 60000, MaxRetries: 3, HasDescription: true, Description: desc,
	}}}
	workerReg := WorkerRegister{TaskTypes: []string{"process-image", "resize-image"}}
	awaitOpts := AppendU32(AppendU32(nil, TagBlockMs, 30000), TagTimeoutMs, 60000)
	assignment := TaskAssignment{TaskID: []byte("run-1"), TaskType: []byte("process-image"), CreatedMs: actionT0, Attempt: 1, Input: []byte(`{"n":1}`)}
	batch := []TaskAssignment{assignment, {TaskID: []byte("run-2"), TaskType: []byte("process-image"), CreatedMs: actionT0, Attempt: 2}}
	touch := WorkerTouch{TaskID: []byte("run-1"), ExtendMs: 30000}
	complete := TaskReport{TaskID: []byte("run-1"), Data: []byte("done")}
	fail := TaskReport{TaskID: []byte("run-1"), Data: []byte("boom")}
	workers := WorkerList{Workers: []WorkerRecord{{
		ID: []byte("worker-1"), State: WorkerActive, TasksCompleted: 5, TasksFailed: 1, CurrentLoad: 1, MaxConcurrency: 4,
		RegisteredMs: actionT0, LastSeenMs: actionT0 + 500,
		Processes: []WorkerProcess{{Name: []byte("process-image"), RunCount: 5, FailCount: 1, LastRunMs: actionT0 + 400}},
	}}}
	cases := []struct {
		file    string
		id      uint64
		code    byte
		payload []byte
		// check decodes the frame body (the value for requests, the whole
		// payload for replies) and compares it with what was encoded.
		check func(t *testing.T, body []byte)
	}{
		{"action_register_request.hex", 1, byte(OpActionRegister), req("process-image", AppendActionRegister(nil, &register), nil),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeActionRegister, register) }},
		{"action_invoke_request.hex", 2, byte(OpActionInvoke), req("process-image", AppendActionInvoke(nil, &invoke), nil),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeActionInvoke, invoke) }},
		{"action_invoke_response.hex", 2, byte(StatusOK), []byte("run-1"), nil},
		{"action_status_request.hex", 3, byte(OpActionStatus), req("run-1", nil, nil), nil},
		{"action_status_response.hex", 3, byte(StatusOK), AppendRunStatus(nil, &status),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeRunStatus, status) }},
		{"action_list_request.hex", 4, byte(OpActionList), req("process-", AppendActionListRequest(nil, &ActionListRequest{Limit: 100}), nil),
			func(t *testing.T, b []byte) {
				actionRoundTrip(t, b, DecodeActionListRequest, ActionListRequest{Limit: 100})
			}},
		{"action_list_response.hex", 4, byte(StatusOK), AppendActionList(nil, &list),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeActionList, list) }},
		{"action_delete_request.hex", 5, byte(OpActionDelete), req("process-image", nil, nil), nil},
		{"worker_register_request.hex", 6, byte(OpWorkerRegister), req("worker-1", AppendWorkerRegister(nil, &workerReg), nil),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeWorkerRegister, workerReg) }},
		{"worker_await_request.hex", 7, byte(OpWorkerAwait), req("worker-1", AppendTaskTypes(nil, []string{"process-image"}), awaitOpts),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeTaskTypes, []string{"process-image"}) }},
		{"worker_await_response.hex", 7, byte(StatusOK), AppendTaskAssignment(nil, &assignment),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeTaskAssignment, assignment) }},
		{"worker_await_response_empty.hex", 7, byte(StatusOK), nil, nil},
		{"worker_await_batch_request.hex", 12, byte(OpWorkerAwait), req("worker-1", AppendTaskTypes(nil, []string{"process-image"}), AppendU32(AppendU32(nil, TagCount, 10), TagBlockMs, 30000)),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeTaskTypes, []string{"process-image"}) }},
		{"worker_await_batch_response.hex", 12, byte(StatusOK), AppendTaskBatch(nil, batch),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeTaskBatch, batch) }},
		{"worker_touch_request.hex", 8, byte(OpWorkerTouch), req("worker-1", AppendWorkerTouch(nil, &touch), nil),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeWorkerTouch, touch) }},
		{"worker_complete_request.hex", 9, byte(OpWorkerComplete), req("worker-1", AppendTaskReport(nil, &complete), nil),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeTaskReport, complete) }},
		{"worker_fail_request.hex", 10, byte(OpWorkerFail), req("worker-1", AppendTaskReport(nil, &fail), AppendFlag(nil, TagRetry)),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeTaskReport, fail) }},
		{"worker_list_request.hex", 11, byte(OpWorkerList), req("", AppendActionListRequest(nil, &ActionListRequest{Limit: 100}), nil), nil},
		{"worker_list_response.hex", 11, byte(StatusOK), AppendWorkerList(nil, &workers),
			func(t *testing.T, b []byte) { actionRoundTrip(t, b, DecodeWorkerList, workers) }},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			want := readGolden(t, c.file)
			got := AppendFrame(nil, c.id, c.code, c.payload)
			if !bytes.Equal(got, want) {
				t.Fatalf("encode:\n got %x\nwant %x", got, want)
			}
			f, n, err := DecodeFrame(want, DefaultMaxPayloadBytes)
			if err != nil || n != len(want) || f.RequestID != c.id || f.Code != c.code {
				t.Fatalf("decode frame: %+v n=%d err=%v", f.Header, n, err)
			}
			if c.check == nil {
				return
			}
			body := f.Payload
			if strings.Contains(c.file, "_request") {
				r, err := DecodeRequest(f.Payload)
				if err != nil {
					t.Fatal(err)
				}
				body = r.Value
			}
			c.check(t, body)
		})
	}
}

// actionRoundTrip decodes b and compares it with want (nil and empty
// slices compare equal).
func actionRoundTrip[T any](t *testing.T, b []byte, decode func([]byte) (T, error), want T) {
	t.Helper()
	got, err := decode(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
		t.Fatalf("decode:\n got %s\nwant %s", g, w)
	}
}

func TestActionDecoders_Leniency(t *testing.T) {
	t.Parallel()
	// Register without the five trailing flags; a set WASM flag is reported.
	r, err := DecodeActionRegister([]byte{0, 0x10, 0, 0, 0, 3, 0, 0, 0, 0})
	if err != nil || r.TimeoutMs != 16 || r.MaxRetries != 3 || r.HasWASMFields {
		t.Fatalf("short register = %+v, %v", r, err)
	}
	if r, _ := DecodeActionRegister([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}); !r.HasWASMFields {
		t.Fatal("wasm flag not reported")
	}
	if _, err := DecodeActionRegister([]byte{0, 1, 0}); err == nil {
		t.Fatal("truncated register decoded")
	}
	// Invoke: has_idem with an empty key decodes as a non-nil empty key.
	inv, err := DecodeActionInvoke(append(AppendActionInvoke(nil, &ActionInvoke{Priority: 1}), 'x')[:11])
	if err != nil || inv.IdempotencyKey != nil {
		t.Fatalf("invoke = %+v, %v", inv, err)
	}
	inv, err = DecodeActionInvoke(AppendActionInvoke(nil, &ActionInvoke{IdempotencyKey: []byte{}, Input: []byte("in")}))
	if err != nil || inv.IdempotencyKey == nil || len(inv.IdempotencyKey) != 0 || string(inv.Input) != "in" {
		t.Fatalf("empty idempotency key = %+v, %v", inv, err)
	}
	// Touch without extend_ms takes the default.
	tc, err := DecodeWorkerTouch(AppendBytes16(nil, []byte("run-1")))
	if err != nil || tc.ExtendMs != DefaultExtendMs {
		t.Fatalf("touch = %+v, %v", tc, err)
	}
	// Register with capacity (flo's extension) and without the has_caps byte.
	wr, err := DecodeWorkerRegister(AppendWorkerRegister(nil, &WorkerRegister{TaskTypes: []string{"a"}, HasCaps: true, Capacity: 8}))
	if err != nil || !wr.HasCaps || wr.Capacity != 8 {
		t.Fatalf("register with caps = %+v, %v", wr, err)
	}
	if wr, err := DecodeWorkerRegister(AppendTaskTypes(nil, []string{"a", "b"})); err != nil || len(wr.TaskTypes) != 2 || wr.HasCaps {
		t.Fatalf("register without has_caps = %+v, %v", wr, err)
	}
	// A 6-byte list entry (upstream form) and a missing trailer.
	old := []byte{1, 0, 0, 0, 1, 0, 'a', 6, 0, 0, 0, 0, 7, 0, 0, 0, 1}
	l, err := DecodeActionList(old)
	if err != nil || len(l.Entries) != 1 || l.Entries[0].HasSettings || l.Entries[0].Version != 7 || !l.Entries[0].Enabled || l.HasMore {
		t.Fatalf("upstream list = %+v, %v", l, err)
	}
	// A cursor in the trailer round-trips.
	l, err = DecodeActionList(AppendActionList(nil, &ActionList{HasMore: true, Cursor: []byte("b")}))
	if err != nil || !l.HasMore || string(l.Cursor) != "b" {
		t.Fatalf("list trailer = %+v, %v", l, err)
	}
	lr, err := DecodeActionListRequest(AppendActionListRequest(nil, &ActionListRequest{Limit: 5, Cursor: []byte("c")}))
	if err != nil || lr.Limit != 5 || string(lr.Cursor) != "c" {
		t.Fatalf("list request = %+v, %v", lr, err)
	}
	// A status without start, completion, output or error.
	s, err := DecodeRunStatus(AppendRunStatus(nil, &RunStatus{RunID: []byte("r"), CreatedMs: 5}))
	if err != nil || s.StartedMs != 0 || s.HasOutput || s.HasError || s.State != RunPending {
		t.Fatalf("bare status = %+v, %v", s, err)
	}
	if RunTimedOut.String() != "timed_out" || !RunTimedOut.Terminal() || RunRunning.Terminal() || WorkerUnhealthy.String() != "unhealthy" {
		t.Fatal("state names")
	}
}

// FuzzActionDecoders feeds arbitrary bodies to every action and worker
// decoder: none may panic, and whatever decodes must survive an encode and
// decode unchanged.
func FuzzActionDecoders(f *testing.F) {
	for _, name := range []string{
		"action_register_request.hex", "action_invoke_request.hex", "action_status_response.hex",
		"action_list_response.hex", "worker_register_request.hex", "worker_await_response.hex",
		"worker_touch_request.hex", "worker_list_response.hex", "worker_await_batch_response.hex",
	} {
		fr, _, err := DecodeFrame(readGolden(f, name), DefaultMaxPayloadBytes)
		if err != nil {
			f.Fatal(err)
		}
		body := fr.Payload
		if r, err := DecodeRequest(body); err == nil && strings.Contains(name, "_request") {
			body = r.Value
		}
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := DecodeActionRegister(b); err == nil && !v.HasWASMFields {
			actionRoundTrip(t, AppendActionRegister(nil, &v), DecodeActionRegister, v)
		}
		if v, err := DecodeActionInvoke(b); err == nil && !v.HasCaller {
			actionRoundTrip(t, AppendActionInvoke(nil, &v), DecodeActionInvoke, v)
		}
		if v, err := DecodeRunStatus(b); err == nil && v.StartedMs != 0 && v.CompletedMs != 0 {
			actionRoundTrip(t, AppendRunStatus(nil, &v), DecodeRunStatus, v)
		}
		if v, err := DecodeActionList(b); err == nil {
			_ = AppendActionList(nil, &v)
		}
		if v, err := DecodeWorkerRegister(b); err == nil {
			actionRoundTrip(t, AppendWorkerRegister(nil, &v), DecodeWorkerRegister, v)
		}
		if v, err := DecodeTaskAssignment(b); err == nil {
			actionRoundTrip(t, AppendTaskAssignment(nil, &v), DecodeTaskAssignment, v)
		}
		if v, err := DecodeWorkerTouch(b); err == nil {
			actionRoundTrip(t, AppendWorkerTouch(nil, &v), DecodeWorkerTouch, v)
		}
		if v, err := DecodeTaskBatch(b); err == nil {
			actionRoundTrip(t, AppendTaskBatch(nil, v), DecodeTaskBatch, v)
		}
		if v, err := DecodeWorkerList(b); err == nil {
			_ = AppendWorkerList(nil, &v)
		}
		_, _ = DecodeTaskTypes(b)
		_, _, _ = DecodeAwaitCompletions(b)
		_, _, _ = DecodeTaskBatchStatuses(b)
		_, _ = DecodeTaskReport(b)
		_, _ = DecodeActionListRequest(b)
	})
}

func TestAwaitCompletions_RoundTripAndTruncation(t *testing.T) {
	t.Parallel()
	reports := []TaskReport{{TaskID: []byte("run-1"), Data: []byte("result")}, {TaskID: []byte("run-2"), Data: []byte{}}}
	value := AppendAwaitCompletions(AppendTaskTypes(nil, []string{"a", "b"}), reports)
	types, got, err := DecodeAwaitCompletions(value)
	if err != nil || !reflect.DeepEqual(types, []string{"a", "b"}) || len(got) != 2 ||
		string(got[0].TaskID) != "run-1" || string(got[0].Data) != "result" || string(got[1].TaskID) != "run-2" || len(got[1].Data) != 0 {
		t.Fatalf("decoded %q %+v, %v", types, got, err)
	}
	for n := 0; n < len(value); n++ {
		if _, _, err := DecodeAwaitCompletions(value[:n]); err == nil {
			t.Fatalf("value cut at %d of %d decoded", n, len(value))
		}
	}

	tasks := []TaskAssignment{{TaskID: []byte("run-3"), TaskType: []byte("a"), CreatedMs: 5, Attempt: 1, Input: []byte("in")}}
	reply := append(binary.LittleEndian.AppendUint32(AppendTaskBatch(nil, tasks), 2), byte(StatusOK), byte(StatusConflict))
	gt, st, err := DecodeTaskBatchStatuses(reply)
	if err != nil || len(gt) != 1 || string(gt[0].TaskID) != "run-3" || !reflect.DeepEqual(st, []Status{StatusOK, StatusConflict}) {
		t.Fatalf("reply decoded %+v %v, %v", gt, st, err)
	}
	if _, _, err := DecodeTaskBatchStatuses(reply[:len(reply)-1]); err == nil {
		t.Fatal("reply missing a status decoded")
	}
}
