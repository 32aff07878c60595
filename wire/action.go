package wire

import "encoding/binary"

// ActionType is the kind of an action. Only ActionUser (run by workers) is
// served; ActionWASM is part of the wire vocabulary and is rejected.
type ActionType uint8

// Action types.
const (
	ActionUser ActionType = 0
	ActionWASM ActionType = 1
)

// ActionRegister is the ACTION_REGISTER value:
//
//	[action_type:u8][timeout_ms:u32][max_retries:u32]
//	[has_desc:u8]([desc_len:u16][desc])?
//	[has_wasm_module:u8][has_wasm_entrypoint:u8][has_wasm_memory_limit:u8]
//	[has_trigger_stream:u8][has_trigger_group:u8]
//
// The five trailing flags are always written as 0. HasWASMFields reports a
// decoded value that set any of them (or carried bytes past them), which a
// server cannot interpret.
type ActionRegister struct {
	Type           ActionType
	TimeoutMs      uint32
	MaxRetries     uint32
	HasDescription bool
	Description    []byte
	HasWASMFields  bool
}

// AppendActionRegister appends the register layout.
func AppendActionRegister(dst []byte, r *ActionRegister) []byte {
	dst = append(dst, byte(r.Type))
	dst = binary.LittleEndian.AppendUint32(dst, r.TimeoutMs)
	dst = binary.LittleEndian.AppendUint32(dst, r.MaxRetries)
	if r.HasDescription {
		dst = append(dst, 1)
		dst = AppendBytes16(dst, r.Description)
	} else {
		dst = append(dst, 0)
	}
	return append(dst, 0, 0, 0, 0, 0)
}

// DecodeActionRegister decodes a register value. The five trailing flags may
// be missing (upstream leniency); the fields before them may not.
func DecodeActionRegister(b []byte) (ActionRegister, error) {
	d := NewDecoder(b)
	r := ActionRegister{Type: ActionType(d.U8()), TimeoutMs: d.U32(), MaxRetries: d.U32()}
	if d.U8() != 0 {
		r.HasDescription = true
		r.Description = d.Bytes16()
	}
	if d.Err() != nil {
		return ActionRegister{}, d.Err()
	}
	for _, f := range d.Rest() {
		if f != 0 {
			r.HasWASMFields = true
		}
	}
	return r, nil
}

// ActionInvoke is the ACTION_INVOKE value:
//
//	[priority:u8][delay_ms:i64][has_caller:u8]
//	[has_idem:u8]([idem_len:u16][idempotency_key])?
//	[input: bytes to end]
//
// The v1 SDK always sends delay_ms 0 and has_caller 0. There is no labels
// byte on v1.
type ActionInvoke struct {
	Priority       uint8
	DelayMs        int64
	HasCaller      bool
	IdempotencyKey []byte // nil: none
	Input          []byte
}

// AppendActionInvoke appends the invoke layout. A non-nil IdempotencyKey is
// written even when empty (the server rejects an empty key).
func AppendActionInvoke(dst []byte, r *ActionInvoke) []byte {
	dst = append(dst, r.Priority)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.DelayMs))
	if r.HasCaller {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	if r.IdempotencyKey != nil {
		dst = append(dst, 1)
		dst = AppendBytes16(dst, r.IdempotencyKey)
	} else {
		dst = append(dst, 0)
	}
	return append(dst, r.Input...)
}

// DecodeActionInvoke decodes an invoke value. Slices alias b. When
// HasCaller is set the rest of the value cannot be interpreted (v1 defines
// no caller layout) and is left in Input.
func DecodeActionInvoke(b []byte) (ActionInvoke, error) {
	d := NewDecoder(b)
	r := ActionInvoke{Priority: d.U8(), DelayMs: d.I64(), HasCaller: d.U8() != 0}
	if r.HasCaller {
		r.Input = d.Rest()
		return r, d.Err()
	}
	if d.U8() != 0 {
		r.IdempotencyKey = d.Bytes16()
		if r.IdempotencyKey == nil && d.Err() == nil {
			r.IdempotencyKey = []byte{}
		}
	}
	r.Input = d.Rest()
	if d.Err() != nil {
		return ActionInvoke{}, d.Err()
	}
	return r, nil
}

// TagInvokeWaitMs (flo's extension: ms as a u32 or u64 on ACTION_INVOKE;
// 0 = without limit) makes the invoke wait for the run it created (or
// found by its idempotency key) to end, up to that long, and answer with
// the run's ACTION_STATUS payload instead of its ID: invoke and a waiting
// status read in one round trip. See docs/protocol.md.
const TagInvokeWaitMs Tag = 0x75

// RunState is a run's status code in the STATUS reply.
type RunState uint8

// Run states. Completed, Failed, Cancelled and TimedOut are terminal.
const (
	RunPending   RunState = 0
	RunRunning   RunState = 1
	RunCompleted RunState = 2
	RunFailed    RunState = 3
	RunCancelled RunState = 4
	RunTimedOut  RunState = 5
)

// String returns the lowercase state name of SEMANTICS §5.4.
func (s RunState) String() string {
	switch s {
	case RunPending:
		return "pending"
	case RunRunning:
		return "running"
	case RunCompleted:
		return "completed"
	case RunFailed:
		return "failed"
	case RunCancelled:
		return "cancelled"
	case RunTimedOut:
		return "timed_out"
	}
	return "unknown"
}

// Terminal reports whether s is a final state.
func (s RunState) Terminal() bool {
	return s == RunCompleted || s == RunFailed || s == RunCancelled || s == RunTimedOut
}

// RunStatus is the ACTION_STATUS OK payload (server-defined layout):
//
//	[run_id_len:u32][run_id][status:u8][created_at_ms:i64]
//	[has_started:u8]([started_at_ms:i64])?  [has_completed:u8]([completed_at_ms:i64])?
//	[has_output:u8]([output_len:u32][output])?  [has_error:u8]([error_len:u32][error])?
//	[retry_count:u32]
//
// retry_count carries the attempt count: the number of claims so far.
// A zero StartedMs or CompletedMs is written as absent; Output and Error
// are present when their Has flag is set.
type RunStatus struct {
	RunID       []byte
	State       RunState
	CreatedMs   int64
	StartedMs   int64
	CompletedMs int64
	HasOutput   bool
	Output      []byte
	HasError    bool
	Error       []byte
	Attempt     uint32
}

// AppendRunStatus appends the status layout.
func AppendRunStatus(dst []byte, s *RunStatus) []byte {
	dst = AppendBytes32(dst, s.RunID)
	dst = append(dst, byte(s.State))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.CreatedMs))
	dst = appendRunTime(dst, s.StartedMs)
	dst = appendRunTime(dst, s.CompletedMs)
	dst = appendRunBytes(dst, s.HasOutput, s.Output)
	dst = appendRunBytes(dst, s.HasError, s.Error)
	return binary.LittleEndian.AppendUint32(dst, s.Attempt)
}

func appendRunTime(dst []byte, v int64) []byte {
	if v == 0 {
		return append(dst, 0)
	}
	return binary.LittleEndian.AppendUint64(append(dst, 1), uint64(v))
}

func appendRunBytes(dst []byte, has bool, b []byte) []byte {
	if !has {
		return append(dst, 0)
	}
	return AppendBytes32(append(dst, 1), b)
}

// DecodeRunStatus decodes a status reply. Slices alias b.
func DecodeRunStatus(b []byte) (RunStatus, error) {
	d := NewDecoder(b)
	s := RunStatus{RunID: d.Bytes32(), State: RunState(d.U8()), CreatedMs: d.I64()}
	if d.U8() != 0 {
		s.StartedMs = d.I64()
	}
	if d.U8() != 0 {
		s.CompletedMs = d.I64()
	}
	if s.HasOutput = d.U8() != 0; s.HasOutput {
		s.Output = d.Bytes32()
	}
	if s.HasError = d.U8() != 0; s.HasError {
		s.Error = d.Bytes32()
	}
	s.Attempt = d.U32()
	if d.Err() != nil {
		return RunStatus{}, d.Err()
	}
	return s, nil
}

// ActionListRequest is the value of ACTION_LIST and WORKER_LIST:
//
//	[limit:u32][cursor: bytes to end]
//
// The v1 SDK sends only the limit; the cursor (an extension) is the opaque
// Cursor of a previous page and resumes after it. A missing limit, or 0,
// means the default.
type ActionListRequest struct {
	Limit  uint32
	Cursor []byte
}

// AppendActionListRequest appends the list request layout.
func AppendActionListRequest(dst []byte, r *ActionListRequest) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, r.Limit)
	return append(dst, r.Cursor...)
}

// DecodeActionListRequest decodes a list request; an empty value is all defaults.
func DecodeActionListRequest(b []byte) (ActionListRequest, error) {
	if len(b) == 0 {
		return ActionListRequest{}, nil
	}
	d := NewDecoder(b)
	r := ActionListRequest{Limit: d.U32()}
	if c := d.Rest(); len(c) > 0 {
		r.Cursor = c
	}
	return r, d.Err()
}

// ActionEntry is one action in an ACTION_LIST reply. The server-defined
// entry is [type:u8][version:u32][enabled:u8], length-prefixed by
// entry_len; flo appends the settings in the same entry, which parsers that
// honour entry_len read or skip:
//
//	[timeout_ms:u32][max_retries:u32][has_desc:u8]([desc_len:u16][desc])?
//
// HasSettings is false when decoding a 6-byte entry.
type ActionEntry struct {
	Name           []byte
	Type           ActionType
	Version        uint32
	Enabled        bool
	HasSettings    bool
	TimeoutMs      uint32
	MaxRetries     uint32
	HasDescription bool
	Description    []byte
}

// ActionList is the ACTION_LIST OK payload:
//
//	[count:u32] count × ([name_len:u16][name][entry_len:u32][entry])
//	[has_more:u8][cursor_len:u16][cursor]
type ActionList struct {
	Entries []ActionEntry
	HasMore bool
	Cursor  []byte
}

// AppendActionList appends the list layout, settings included.
func AppendActionList(dst []byte, l *ActionList) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(l.Entries)))
	for i := range l.Entries {
		e := &l.Entries[i]
		dst = AppendBytes16(dst, e.Name)
		n := 6
		if e.HasSettings {
			n += 9
			if e.HasDescription {
				n += 2 + len(e.Description)
			}
		}
		dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
		dst = append(dst, byte(e.Type))
		dst = binary.LittleEndian.AppendUint32(dst, e.Version)
		dst = append(dst, actionBool(e.Enabled))
		if e.HasSettings {
			dst = binary.LittleEndian.AppendUint32(dst, e.TimeoutMs)
			dst = binary.LittleEndian.AppendUint32(dst, e.MaxRetries)
			dst = append(dst, actionBool(e.HasDescription))
			if e.HasDescription {
				dst = AppendBytes16(dst, e.Description)
			}
		}
	}
	return appendActionTrailer(dst, l.HasMore, l.Cursor)
}

// DecodeActionList decodes a list reply. Entries of 6 bytes (no settings)
// and longer entries (extra bytes skipped) are both accepted; a missing
// trailer means no more pages.
func DecodeActionList(b []byte) (ActionList, error) {
	d := NewDecoder(b)
	n := d.U32()
	if uint64(n) > uint64(d.Len())/6 {
		return ActionList{}, ErrTruncated
	}
	l := ActionList{Entries: make([]ActionEntry, 0, n)}
	for i := uint32(0); i < n; i++ {
		e := ActionEntry{Name: d.Bytes16()}
		ed := NewDecoder(d.Bytes32())
		e.Type = ActionType(ed.U8())
		e.Version = ed.U32()
		e.Enabled = ed.U8() != 0
		if ed.Len() >= 9 {
			e.HasSettings = true
			e.TimeoutMs = ed.U32()
			e.MaxRetries = ed.U32()
			if ed.U8() != 0 {
				e.HasDescription = true
				e.Description = ed.Bytes16()
			}
		}
		if ed.Err() != nil {
			return ActionList{}, ed.Err()
		}
		l.Entries = append(l.Entries, e)
	}
	if d.Err() != nil {
		return ActionList{}, d.Err()
	}
	l.HasMore, l.Cursor = decodeActionTrailer(d)
	return l, d.Err()
}

// appendActionTrailer appends [has_more:u8][cursor_len:u16][cursor].
func appendActionTrailer(dst []byte, more bool, cursor []byte) []byte {
	return AppendBytes16(append(dst, actionBool(more)), cursor)
}

// decodeActionTrailer reads the trailer when present.
func decodeActionTrailer(d *Decoder) (bool, []byte) {
	if d.Len() == 0 {
		return false, nil
	}
	more := d.U8() != 0
	if d.Len() < 2 {
		return more, nil
	}
	c := d.Bytes16()
	if len(c) == 0 {
		c = nil
	}
	return more, c
}

func actionBool(v bool) byte {
	if v {
		return 1
	}
	return 0
}
