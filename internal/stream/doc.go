// Package stream is the append-only log primitive: streams of records with
// dense offsets from 1, server or client timestamps and an optional partition
// key; reads from the beginning, an offset, the tail or a timestamp, blocking
// or not; info and trim; and consumer groups with a pending-entry list (PEL),
// ack deadlines, redelivery, a delivery limit and a per-group dead-letter
// list. Behaviour is SEMANTICS.md §4 with D6–D10; bytes are PROTOCOL.md §5.3
// and §6 plus the extensions in docs/protocol.md.
//
// # Storage layout
//
// Everything lives under the 's' prefix. A stream's keys share
//
//	P = 's' ns 0x00 [name_len:u16 BE] name
//
// and below it:
//
//	P 'd' [group_len:u16 BE] group [offset:u64 BE] -> dead letter: [deliveries:u32][dead_at_ms:i64][consumer_len:u16][consumer]
//	P 'g' [group_len:u16 BE] group 'm'             -> group: [cursor:u64][ack_timeout_ms:u32][max_deliver:u32]
//	P 'g' [group_len:u16 BE] group 'p' [offset BE] -> pending entry: [deliveries:u32][deadline_ns:i64][consumer_len:u16][consumer]
//	P 'm'                                          -> stream meta, written by trim only: [first][last][max_ts][server_ts][cum_bytes]
//	P 'r' [offset:u64 BE]                          -> record (below)
//
// A record's value is
//
//	[ts_ms:i64][max_ts_ms:i64][server_ts_ms:i64][cum_bytes:u64][flags:u8][key_len:u8][key][payload]
//
// where max_ts is the largest timestamp of any record up to and including
// this one, server_ts the latest server-assigned timestamp, and cum_bytes the
// key+payload bytes of every record ever appended up to this one. These
// running values make the stream searchable without an index: the earliest
// offset with timestamp ≥ T is the earliest offset whose max_ts ≥ T (a binary
// search of point reads), trim by bytes is a binary search on cum_bytes, and
// Load recovers every counter from the first and last record. An append is
// therefore exactly one Set: no meta write, no scan.
//
// Integers inside values are little-endian; offsets inside keys are
// big-endian so keys sort by offset. Names are length-prefixed, so a name may
// contain any byte.
//
// # Memory
//
// Records live in Pebble: reads iterate it from the first offset they need,
// so a stream larger than RAM works and an old offset costs one seek. The
// newest committed records of every stream are also kept, encoded, in a
// tail cache bounded server-wide by TailCacheBytes (tail.go), which serves
// reads that start inside it. Memory also holds, per stream, counters (first,
// last, bytes, running timestamps), and per group its cursor, settings, PEL (bounded by
// Limits.MaxPendingPerGroup) and the offsets of its dead letters (bounded by
// Limits.MaxDeadLetters). Load rebuilds all of it with a few seeks per stream
// plus one pass over the PELs.
//
// # Consumer groups
//
// Invariants, maintained by Apply under Machine.mu:
//
//  1. Every PEL entry is in exactly one of two places: the machine-wide
//     deadline heap (delivered to a consumer, deadline in the future or not yet
//     processed) or its group's ready heap (redeliverable now: deadline passed,
//     owner left, nacked, or requeued from the dead-letter list).
//  2. expireDue(now) moves every entry whose deadline ≤ now out of the
//     deadline heap: to the dead-letter list if it has been delivered
//     max_deliver times, else to the ready heap. Every group write calls it
//     first, and so does the pulse, so no observer can tell it is lazy; the
//     pulse wakes the group's parked readers.
//  3. group_read serves the ready heap (lowest offset first) before new
//     records after the cursor, and only takes new records while the PEL
//     holds fewer than MaxPendingPerGroup entries.
//  4. A dead letter's record stays in the stream; requeue puts it back into
//     the PEL as ready with delivery count 0.
//  5. A group's readers park on GroupWaitKey only. Every append signals the
//     stream's WaitKey and every group's key (log.wake); the node gives a
//     signal to one parked write at a time and a reader that gets records
//     passes it on, so each group needs a key of its own.
//
// Persisted PEL entries carry their deadline, 0 once they are ready (every
// move to the ready heap is written), so Load rebuilds invariant 1 exactly;
// an entry whose deadline passed while the node was down is processed by
// the first pulse or group write. Seeded random command streams applied to
// two machines, one of them reloaded from storage at random points, must
// answer alike and leave byte-identical databases
// (TestMachine_ReloadAnswersLikeNeverReloaded).
//
// # Locking
//
// Machine.mu guards every in-memory field. Apply holds it for the whole
// command; read handlers hold it only to copy a stream's counters or cached
// records and then read Pebble without it.
package stream
