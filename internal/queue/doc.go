// Package queue is the queue primitive: priority queues with delays,
// deduplication, leases with a visibility timeout, ack/nack, a per-queue
// dead-letter queue (DLQ), peek and touch (SEMANTICS §3, D1, D2, D4, D5, D26).
// Delivery is at-least-once: a message leaves only through an ack or DLQ
// eviction; every delivery that is not acked comes back or is dead-lettered.
//
// # Storage
//
// Keys start with 'q' (metadata, counters, dedup keys) and 'Q' (payloads);
// see store.go for the layout. A payload is written once, at enqueue, and
// deleted once, at ack or eviction (with DeleteOnce, which relies on that:
// nothing may rewrite a payload); every state change rewrites only the
// message's small metadata record. Load reads the 'q' range alone, so a
// restart never reads payloads.
//
// # Memory
//
// Each queue keeps the metadata of its messages in the structures below;
// payloads stay in storage, except that a message not yet delivered keeps a
// copy of its payload while the machine-wide budget allows (PayloadCacheBytes),
// so the common enqueue → dequeue → ack path reads nothing back.
//
// The metadata is in:
//
//   - a map from seq to message;
//   - the ready heap, ordered by priority (higher first) then position;
//   - the timers heap, holding delayed and leased messages by due time;
//   - the DLQ, a doubly linked list in the order entries arrived;
//   - the dedup map and a FIFO of hold ends.
//
// Both heaps are indexed (a message knows its slot), so every transition is
// O(log n) and nothing on the dequeue/ack path scans. The machine keeps a
// heap of queues by their next due time; NextDue is its top.
//
// # Positions
//
// A message's position is a per-queue counter taken at enqueue. A nack or an
// expired lease puts the message back at its original position (ahead of
// later messages of its priority); a DLQ requeue takes a new position, the
// back of its priority level. Seqs are a separate counter and never reused.
//
// # Time
//
// Apply uses only the command's time (never below the latest one applied).
// Lease deadlines, delay ends and dedup hold ends are absolute Unix
// nanoseconds in storage, so they survive restarts unchanged. Time-driven
// change happens in three places, which agree by construction:
//
//  1. A pulse (command.OpPulse) applies everything due on every queue and
//     wakes the queues that gained ready messages.
//  2. Every write on a queue first applies what is due on that queue
//     (expire), so no ack, nack, touch or dequeue acts on stale state.
//  3. Reads (peek, DLQ list, stats) compute what expire would do at their
//     time (viewAt) without doing it.
//
// An expired lease counts as a failed delivery (D4): at MaxDeliveries the
// message is dead-lettered, else it is ready again at its position. The DLQ
// entry's time is the lease deadline, when the move logically happened.
//
// # Deduplication
//
// A dedup key is held from its enqueue for at least Limits.DedupHold, and
// after that while its message is delayed, ready or leased (D5). held()
// decides from state alone, so cleanup timing is unobservable: the FIFO of
// hold ends drops keys whose message has left, and a message that leaves
// after its key's hold ended drops the key itself.
//
// # Invariants
//
// Check documents and verifies them; -tags invariants builds run it on
// every queue an operation touches.
package queue
