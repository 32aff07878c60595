// Package action is one state machine for actions, their runs and the
// workers that execute them (SEMANTICS §5–§6, decisions D3, D11–D17, D25).
//
// # Model
//
// An action is a named task type with settings (timeout, max retries).
// Invoking it creates a run; a worker that awaits the action's name claims
// the run, takes a lease on it and reports complete or fail. Everything is
// per namespace; run IDs are unique across the server.
//
//	invoke ─▶ pending ──claim──▶ running ──complete──────────────▶ completed
//	            ▲                  │
//	            │ fail(retry) or   ├─ fail(no retry) / no attempts left ─▶ failed
//	            └─ lease expiry,   └─ lease expiry, no attempts left ───▶ timed_out
//	               after backoff
//
// # Invariants
//
//  1. Apply reads no clock: every time is cmd.Time (in ms, never going
//     backwards within a process). Run IDs come from a persisted counter.
//  2. Every non-terminal (live) run is in memory, in exactly one of: a ready
//     heap (pending and claimable), the timer heap (pending in a backoff or
//     delay, keyed by ready time; or running, keyed by lease deadline).
//  3. A time-driven change takes effect at its due time, not at the time
//     it is noticed: a lease that expired at T counts as failed at T and its
//     backoff runs from T. So the pulse, a lazy expiry inside any write, and
//     a read that computes the expired view all agree.
//  4. Terminal runs live only in storage. Reads wait while a group is half
//     applied (fsm.ReadGate), so memory and committed storage agree when a
//     status read misses memory and reads storage.
//  5. Every write in Apply goes to the batch; the in-memory indexes are
//     rebuilt from storage by Load, so nothing durable lives only in memory.
//     The one exception is advisory: an await that claims nothing updates
//     its worker's last-seen time in memory only. Every write of a worker
//     record sets last-seen to that command's time, so storage stays a
//     function of the command sequence alone.
//
// # Storage layout (prefix 'a')
//
//	'a' 'n'                                   -> [last_run_seq:u64], written when runs are purged
//	'a' 'a' ns 0x00 name                      -> action record
//	'a' 'r' [seq:u64 BE]                      -> run record (result included once completed)
//	'a' 'l' [seq:u64 BE]                      -> live marker: the run is not terminal;
//	                                             [fmt][input if ≤ inputCacheBytes]
//	'a' 'p' [seq:u64 BE]                      -> run input over inputCacheBytes
//	'a' 't' [ended_ms:u64 BE][seq:u64 BE]     -> retention index of terminal runs
//	'a' 'i' ns 0x00 [len:u16 BE] action key   -> [seq:u64]: idempotency key
//	'a' 'w' ns 0x00 worker_id                 -> worker record
//
// Input and live marker are written once, by the invoke, and removed with
// DeleteOnce when the run ends; nothing may rewrite them. Markers written
// before inputs rode in them are empty, their input under 'a' 'p'; Load
// still reads them.
//
// Values are little-endian and start with a format byte. Load reads the
// counter (the larger of 'a' 'n' and the newest run key), actions, workers
// and the live markers (not the terminal runs), so start-up time does not
// grow with retained history.
package action
