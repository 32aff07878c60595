package wire

import "encoding/binary"

// AppendTaskTypes appends [count:u32] count × ([len:u16][task_type]), the
// WORKER_AWAIT value and the start of the WORKER_REGISTER value.
func AppendTaskTypes(dst []byte, types []string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(types)))
	for _, t := range types {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(t)))
		dst = append(dst, t...)
	}
	return dst
}

// decodeTaskTypes reads a task-type list from d.
func decodeTaskTypes(d *Decoder) []string {
	n := d.U32()
	if uint64(n) > uint64(d.Len())/2 {
		d.err = ErrTruncated
		return nil
	}
	types := make([]string, 0, n)
	for i := uint32(0); i < n; i++ {
		types = append(types, string(d.Bytes16()))
	}
	return types
}

// DecodeTaskTypes decodes a WORKER_AWAIT value. Bytes after the list are
// ignored.
func DecodeTaskTypes(b []byte) ([]string, error) {
	d := NewDecoder(b)
	types := decodeTaskTypes(d)
	if d.Err() != nil {
		return nil, d.Err()
	}
	return types, nil
}

// WorkerRegister is the WORKER_REGISTER value:
//
//	[count:u32] count × ([len:u16][task_type]) [has_caps:u8]([max_concurrency:u32])?
//
// The v1 SDK always sends has_caps 0. With has_caps 1 flo reads a u32
// capacity (an extension); a missing has_caps byte means 0.
type WorkerRegister struct {
	TaskTypes []string
	HasCaps   bool
	Capacity  uint32
}

// AppendWorkerRegister appends the register layout.
func AppendWorkerRegister(dst []byte, r *WorkerRegister) []byte {
	dst = AppendTaskTypes(dst, r.TaskTypes)
	if !r.HasCaps {
		return append(dst, 0)
	}
	return binary.LittleEndian.AppendUint32(append(dst, 1), r.Capacity)
}

// DecodeWorkerRegister decodes a register value.
func DecodeWorkerRegister(b []byte) (WorkerRegister, error) {
	d := NewDecoder(b)
	r := WorkerRegister{TaskTypes: decodeTaskTypes(d)}
	if d.Err() == nil && d.Len() > 0 && d.U8() != 0 {
		r.HasCaps = true
		r.Capacity = d.U32()
	}
	if d.Err() != nil {
		return WorkerRegister{}, d.Err()
	}
	return r, nil
}

// TaskAssignment is the WORKER_AWAIT OK payload when a task was claimed (an
// empty payload means none):
//
//	[task_id_len:u16][task_id][task_type_len:u16][task_type]
//	[created_at_ms:i64][attempt:u32][input: bytes to end]
type TaskAssignment struct {
	TaskID    []byte
	TaskType  []byte
	CreatedMs int64
	Attempt   uint32
	Input     []byte
}

// AppendTaskAssignment appends the assignment layout.
func AppendTaskAssignment(dst []byte, a *TaskAssignment) []byte {
	dst = AppendBytes16(dst, a.TaskID)
	dst = AppendBytes16(dst, a.TaskType)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(a.CreatedMs))
	dst = binary.LittleEndian.AppendUint32(dst, a.Attempt)
	return append(dst, a.Input...)
}

// DecodeTaskAssignment decodes a non-empty await reply. Slices alias b.
func DecodeTaskAssignment(b []byte) (TaskAssignment, error) {
	d := NewDecoder(b)
	a := TaskAssignment{TaskID: d.Bytes16(), TaskType: d.Bytes16(), CreatedMs: d.I64(), Attempt: d.U32()}
	a.Input = d.Rest()
	if d.Err() != nil {
		return TaskAssignment{}, d.Err()
	}
	return a, nil
}

// TaskReport is the WORKER_COMPLETE and WORKER_FAIL value:
//
//	[task_id_len:u16][task_id][data: bytes to end]
//
// Data is the result for complete and the UTF-8 error message for fail.
type TaskReport struct {
	TaskID []byte
	Data   []byte
}

// AppendTaskReport appends the complete/fail layout.
func AppendTaskReport(dst []byte, r *TaskReport) []byte {
	return append(AppendBytes16(dst, r.TaskID), r.Data...)
}

// TagCompletions (flo's extension, a flag on WORKER_AWAIT with COUNT) says
// the value carries completions after the task-type list, each applied as
// WORKER_COMPLETE from the awaiting worker before any task is claimed; the
// batch reply is then followed by one status per completion. See
// AppendAwaitCompletions and docs/protocol.md.
const TagCompletions Tag = 0x74

// AppendAwaitCompletions appends the completions section of a WORKER_AWAIT
// value (after the task-type list):
//
//	[count:u32] count × ([report_len:u32][task report])
func AppendAwaitCompletions(dst []byte, reports []TaskReport) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(reports)))
	for i := range reports {
		r := &reports[i]
		dst = binary.LittleEndian.AppendUint32(dst, uint32(2+len(r.TaskID)+len(r.Data)))
		dst = AppendTaskReport(dst, r)
	}
	return dst
}

// DecodeAwaitCompletions decodes a WORKER_AWAIT value with TagCompletions:
// the task-type list, then the completions. Slices alias b.
func DecodeAwaitCompletions(b []byte) ([]string, []TaskReport, error) {
	d := NewDecoder(b)
	types := decodeTaskTypes(d)
	n := d.U32()
	if d.Err() != nil {
		return nil, nil, d.Err()
	}
	if uint64(n) > uint64(d.Len())/6 {
		return nil, nil, ErrTruncated
	}
	reports := make([]TaskReport, 0, n)
	for i := uint32(0); i < n; i++ {
		r, err := DecodeTaskReport(d.Bytes32())
		if err != nil || d.Err() != nil {
			return nil, nil, ErrTruncated
		}
		reports = append(reports, r)
	}
	return types, reports, nil
}

// DecodeTaskBatchStatuses decodes a batch await reply followed by the
// completion statuses of an await with TagCompletions. Slices alias b.
func DecodeTaskBatchStatuses(b []byte) ([]TaskAssignment, []Status, error) {
	d := NewDecoder(b)
	tasks := decodeTaskBatch(d)
	m := d.U32()
	if d.Err() != nil || uint64(m) > uint64(d.Len()) {
		return nil, nil, ErrTruncated
	}
	statuses := make([]Status, m)
	for i := range statuses {
		statuses[i] = Status(d.U8())
	}
	return tasks, statuses, d.Err()
}

// DecodeTaskReport decodes a complete/fail value. Slices alias b.
func DecodeTaskReport(b []byte) (TaskReport, error) {
	d := NewDecoder(b)
	r := TaskReport{TaskID: d.Bytes16()}
	r.Data = d.Rest()
	if d.Err() != nil {
		return TaskReport{}, d.Err()
	}
	return r, nil
}

// DefaultExtendMs is the lease extension a touch without extend_ms asks for.
const DefaultExtendMs = 30_000

// MaxTaskDataBytes bounds an invoke's input and a task's result;
// MaxFailMessageBytes bounds a fail message. Longer ones are BAD_REQUEST.
const (
	MaxTaskDataBytes    = 16 << 20
	MaxFailMessageBytes = 64 << 10
)

// WorkerTouch is the WORKER_TOUCH value:
//
//	[task_id_len:u16][task_id][extend_ms:u32]
//
// A value that ends after the task id decodes with DefaultExtendMs.
type WorkerTouch struct {
	TaskID   []byte
	ExtendMs uint32
}

// AppendWorkerTouch appends the touch layout.
func AppendWorkerTouch(dst []byte, t *WorkerTouch) []byte {
	return binary.LittleEndian.AppendUint32(AppendBytes16(dst, t.TaskID), t.ExtendMs)
}

// DecodeWorkerTouch decodes a touch value.
func DecodeWorkerTouch(b []byte) (WorkerTouch, error) {
	d := NewDecoder(b)
	t := WorkerTouch{TaskID: d.Bytes16(), ExtendMs: DefaultExtendMs}
	if d.Err() == nil && d.Len() > 0 {
		t.ExtendMs = d.U32()
	}
	if d.Err() != nil {
		return WorkerTouch{}, d.Err()
	}
	return t, nil
}

// WorkerState is a worker's status code in the WORKER_LIST reply.
type WorkerState uint8

// Worker states. flo reports Active and Unhealthy (silent for too long);
// Idle and Draining are part of the layout's vocabulary only.
const (
	WorkerActive    WorkerState = 0
	WorkerIdle      WorkerState = 1
	WorkerDraining  WorkerState = 2
	WorkerUnhealthy WorkerState = 3
)

// String returns the lowercase state name.
func (s WorkerState) String() string {
	switch s {
	case WorkerActive:
		return "active"
	case WorkerIdle:
		return "idle"
	case WorkerDraining:
		return "draining"
	case WorkerUnhealthy:
		return "unhealthy"
	}
	return "unknown"
}

// WorkerProcess is one process entry of a worker record; flo lists one per
// task type (Kind 0 = action) with the worker's counts for it.
type WorkerProcess struct {
	Name      []byte
	Kind      uint8
	RunCount  uint64
	FailCount uint64
	LastRunMs int64
}

// WorkerRecord is one worker in a WORKER_LIST reply:
//
//	[id_len:u16][id][type:u8][status:u8][tasks_completed:u64][tasks_failed:u64]
//	[current_load:u32][max_concurrency:u32][registered_at_ms:i64][last_heartbeat_ms:i64]
//	[process_count:u16] × ([name_len:u16][name][kind:u8][run_count:u64][fail_count:u64][last_run_at_ms:i64])
//	[has_metadata:u8]([metadata_len:u16][metadata])?  [has_machine_id:u8]([len:u16][machine_id])?
type WorkerRecord struct {
	ID             []byte
	Type           uint8 // 0 action, 1 stream
	State          WorkerState
	TasksCompleted uint64
	TasksFailed    uint64
	CurrentLoad    uint32
	MaxConcurrency uint32
	RegisteredMs   int64
	LastSeenMs     int64
	Processes      []WorkerProcess
	Metadata       []byte // nil: absent
	MachineID      []byte // nil: absent
}

// WorkerList is the WORKER_LIST OK payload:
//
//	[count:u32] count × worker_record  [has_more:u8][cursor_len:u16][cursor]
type WorkerList struct {
	Workers []WorkerRecord
	HasMore bool
	Cursor  []byte
}

// AppendWorkerList appends the worker list layout.
func AppendWorkerList(dst []byte, l *WorkerList) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(l.Workers)))
	for i := range l.Workers {
		w := &l.Workers[i]
		dst = AppendBytes16(dst, w.ID)
		dst = append(dst, w.Type, byte(w.State))
		dst = binary.LittleEndian.AppendUint64(dst, w.TasksCompleted)
		dst = binary.LittleEndian.AppendUint64(dst, w.TasksFailed)
		dst = binary.LittleEndian.AppendUint32(dst, w.CurrentLoad)
		dst = binary.LittleEndian.AppendUint32(dst, w.MaxConcurrency)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(w.RegisteredMs))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(w.LastSeenMs))
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(w.Processes)))
		for _, p := range w.Processes {
			dst = AppendBytes16(dst, p.Name)
			dst = append(dst, p.Kind)
			dst = binary.LittleEndian.AppendUint64(dst, p.RunCount)
			dst = binary.LittleEndian.AppendUint64(dst, p.FailCount)
			dst = binary.LittleEndian.AppendUint64(dst, uint64(p.LastRunMs))
		}
		for _, opt := range [][]byte{w.Metadata, w.MachineID} {
			if opt == nil {
				dst = append(dst, 0)
			} else {
				dst = AppendBytes16(append(dst, 1), opt)
			}
		}
	}
	return appendActionTrailer(dst, l.HasMore, l.Cursor)
}

// DecodeWorkerList decodes a worker list reply. Slices alias b.
func DecodeWorkerList(b []byte) (WorkerList, error) {
	d := NewDecoder(b)
	n := d.U32()
	if uint64(n) > uint64(d.Len())/48 {
		return WorkerList{}, ErrTruncated
	}
	l := WorkerList{Workers: make([]WorkerRecord, 0, n)}
	for i := uint32(0); i < n && d.Err() == nil; i++ {
		w := WorkerRecord{ID: d.Bytes16(), Type: d.U8(), State: WorkerState(d.U8())}
		w.TasksCompleted = d.U64()
		w.TasksFailed = d.U64()
		w.CurrentLoad = d.U32()
		w.MaxConcurrency = d.U32()
		w.RegisteredMs = d.I64()
		w.LastSeenMs = d.I64()
		np := d.U16()
		if uint64(np) > uint64(d.Len())/27 {
			return WorkerList{}, ErrTruncated
		}
		for j := uint16(0); j < np; j++ {
			w.Processes = append(w.Processes, WorkerProcess{
				Name: d.Bytes16(), Kind: d.U8(), RunCount: d.U64(), FailCount: d.U64(), LastRunMs: d.I64(),
			})
		}
		if d.U8() != 0 {
			w.Metadata = d.Bytes16()
		}
		if d.U8() != 0 {
			w.MachineID = d.Bytes16()
		}
		l.Workers = append(l.Workers, w)
	}
	if d.Err() != nil {
		return WorkerList{}, d.Err()
	}
	l.HasMore, l.Cursor = decodeActionTrailer(d)
	return l, d.Err()
}

// AppendTaskBatch appends the WORKER_AWAIT reply to a call that carried
// COUNT (flo's extension): zero or more assignments, each length-prefixed:
//
//	[count:u32] count × ([assignment_len:u32][task assignment])
func AppendTaskBatch(dst []byte, tasks []TaskAssignment) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(tasks)))
	for i := range tasks {
		a := &tasks[i]
		n := 2 + len(a.TaskID) + 2 + len(a.TaskType) + 12 + len(a.Input)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
		dst = AppendTaskAssignment(dst, a)
	}
	return dst
}

// DecodeTaskBatch decodes a batch await reply. Slices alias b.
func DecodeTaskBatch(b []byte) ([]TaskAssignment, error) {
	d := NewDecoder(b)
	tasks := decodeTaskBatch(d)
	return tasks, d.Err()
}

func decodeTaskBatch(d *Decoder) []TaskAssignment {
	n := d.U32()
	if uint64(n) > uint64(d.Len())/20 {
		d.err = ErrTruncated
		return nil
	}
	tasks := make([]TaskAssignment, 0, n)
	for i := uint32(0); i < n; i++ {
		a, err := DecodeTaskAssignment(d.Bytes32())
		if err != nil || d.Err() != nil {
			d.err = ErrTruncated
			return nil
		}
		tasks = append(tasks, a)
	}
	return tasks
}
