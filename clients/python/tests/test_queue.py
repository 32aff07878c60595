"""client.queue against a real server: every method and option."""

from __future__ import annotations

import asyncio
import time

from .harness import ServerTestCase
from flo import (
    AckOptions,
    DequeueOptions,
    DlqListOptions,
    DlqRequeueOptions,
    EnqueueOptions,
    NackOptions,
    PeekOptions,
    QueueTouchOptions,
    ValidationError,
)


class QueueTest(ServerTestCase):
    client_timeout_ms = 1000

    async def test_enqueue_dequeue_ack(self) -> None:
        q = self.client.queue
        seqs = [await q.enqueue("tasks", f"m{i}".encode()) for i in range(3)]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(len(set(seqs)), 3)
        res = await q.dequeue("tasks", 10)
        self.assertEqual([m.seq for m in res.messages], seqs)
        self.assertEqual([m.payload for m in res.messages], [b"m0", b"m1", b"m2"])
        self.assertEqual((await q.dequeue("tasks", 10)).messages, [])  # all leased
        await q.ack("tasks", [m.seq for m in res.messages])
        await q.ack("tasks", [])  # no-op
        await q.ack("tasks", [999999])  # unknown seqs are ignored
        self.assertEqual((await q.peek("tasks", 10)).messages, [])

    async def test_dequeue_acks_first(self) -> None:
        q = self.client.queue
        for p in (b"a", b"b", b"c"):
            await q.enqueue("acks", p)
        first = (await q.dequeue("acks")).messages
        nxt = (await q.dequeue("acks", 1, DequeueOptions(ack=[first[0].seq]))).messages
        self.assertEqual([m.payload for m in nxt], [b"b"])
        st = await q.stats("acks")
        self.assertEqual((st.ready, st.in_flight), (1, 1))  # a acked, b leased, c ready
        last = (await q.dequeue("acks", 5, DequeueOptions(ack=[nxt[0].seq]))).messages
        self.assertEqual([m.payload for m in last], [b"c"])
        # Acks count even when nothing is left to dequeue.
        self.assertEqual((await q.dequeue("acks", 1, DequeueOptions(ack=[last[0].seq]))).messages, [])
        st = await q.stats("acks")
        self.assertEqual((st.ready, st.delayed, st.in_flight, st.dlq), (0, 0, 0, 0))

    async def test_dequeue_count_and_unknown_queue(self) -> None:
        q = self.client.queue
        for i in range(5):
            await q.enqueue("c", b"x")
        self.assertEqual(len((await q.dequeue("c", 2)).messages), 2)
        self.assertEqual(len((await q.dequeue("c")).messages), 1)  # default count 1
        self.assertEqual((await q.dequeue("no-such-queue", 5)).messages, [])

    async def test_count_out_of_range_is_clamped_not_raised(self) -> None:
        # SEMANTICS §3.3 / D26: count is clamped to 1-100 (0 means 1) and never raises,
        # so a count the u32 COUNT option cannot carry is clamped too.
        q = self.client.queue
        for i in range(3):
            await q.enqueue("clamp", b"x")
        self.assertEqual(len((await q.peek("clamp", -1)).messages), 1)
        self.assertEqual(len((await q.peek("clamp", 2**40)).messages), 3)
        self.assertEqual(len((await q.dequeue("clamp", -7)).messages), 1)
        self.assertEqual(len((await q.dequeue("clamp", 2**40)).messages), 2)
        self.assertEqual((await q.dlq_list("clamp", DlqListOptions(limit=2**40))).messages, [])

    async def test_visibility_timeout_over_the_max_is_clamped_not_raised(self) -> None:
        # SEMANTICS §3.3: visibility timeouts above 12 h are clamped, even past u32 ms.
        q = self.client.queue
        await q.enqueue("vis", b"x")
        got = await q.dequeue("vis", 1, DequeueOptions(visibility_timeout_ms=2**40))
        self.assertEqual(len(got.messages), 1)
        self.assertEqual((await q.peek("vis", 1)).messages, [])

    async def test_priority(self) -> None:
        q = self.client.queue
        await q.enqueue("p", b"low", EnqueueOptions(priority=1))
        await q.enqueue("p", b"normal")
        await q.enqueue("p", b"urgent", EnqueueOptions(priority=255))
        res = await q.dequeue("p", 3)
        self.assertEqual([m.payload for m in res.messages], [b"urgent", b"low", b"normal"])

    async def test_delay(self) -> None:
        q = self.client.queue
        await q.enqueue("d", b"later", EnqueueOptions(delay_ms=400))
        self.assertEqual((await q.peek("d", 1)).messages, [])
        t0 = time.monotonic()
        res = await q.dequeue("d", 1, DequeueOptions(block_ms=3000))
        self.assertEqual([m.payload for m in res.messages], [b"later"])
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)

    async def test_dedup(self) -> None:
        q = self.client.queue
        a = await q.enqueue("dd", b"1", EnqueueOptions(dedup_key="task-123"))
        b = await q.enqueue("dd", b"2", EnqueueOptions(dedup_key="task-123"))
        c = await q.enqueue("dd", b"3", EnqueueOptions(dedup_key="task-456"))
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        self.assertEqual([m.payload for m in (await q.peek("dd", 10)).messages], [b"1", b"3"])

    async def test_blocking_dequeue(self) -> None:
        q = self.client.queue
        t0 = time.monotonic()
        self.assertEqual((await q.dequeue("bl", 1, DequeueOptions(block_ms=1200))).messages, [])
        self.assertGreaterEqual(time.monotonic() - t0, 1.1)

        async def later() -> None:
            await asyncio.sleep(1.2)  # longer than the client's timeout_ms
            await q.enqueue("bl", b"wake")

        t = asyncio.create_task(later())
        res = await q.dequeue("bl", 5, DequeueOptions(block_ms=0))
        self.assertEqual([m.payload for m in res.messages], [b"wake"])
        await t

    async def test_visibility_timeout_redelivers(self) -> None:
        q = self.client.queue
        seq = await q.enqueue("v", b"job")
        # A lease long enough that the dequeue right after it comes first even on a loaded machine.
        res = await q.dequeue("v", 1, DequeueOptions(visibility_timeout_ms=1000))
        self.assertEqual(res.messages[0].seq, seq)
        self.assertEqual((await q.dequeue("v", 1)).messages, [])
        again = await q.dequeue("v", 1, DequeueOptions(block_ms=3000))
        self.assertEqual([m.seq for m in again.messages], [seq])

    async def test_touch_extends_lease(self) -> None:
        q = self.client.queue
        seq = await q.enqueue("t", b"long")
        # A 1.5 s lease touched every 0.35 s: a loaded machine may delay a touch by a second.
        await q.dequeue("t", 1, DequeueOptions(visibility_timeout_ms=1500))
        for _ in range(5):
            await asyncio.sleep(0.35)
            await q.touch("t", [seq])
        # 1.75 s after the dequeue the 1.5 s lease would have run out without the touches.
        self.assertEqual((await q.peek("t", 1)).messages, [])
        await q.touch("t", [seq], QueueTouchOptions())
        await q.ack("t", [seq], AckOptions())
        await q.touch("t", [seq])  # not leased any more: ignored

    async def test_nack_and_dlq(self) -> None:
        q = self.client.queue
        s1 = await q.enqueue("n", b"retry-me")
        s2 = await q.enqueue("n", b"dead")
        res = await q.dequeue("n", 2)
        self.assertEqual(len(res.messages), 2)
        await q.nack("n", [s1])
        await q.nack("n", [s2], NackOptions(to_dlq=True))
        ready = await q.peek("n", 10)
        self.assertEqual([m.seq for m in ready.messages], [s1])
        dlq = await q.dlq_list("n")
        self.assertEqual([(m.seq, m.payload) for m in dlq.messages], [(s2, b"dead")])
        self.assertEqual(len((await q.dlq_list("n", DlqListOptions(limit=1))).messages), 1)
        await q.dlq_requeue("n", [m.seq for m in dlq.messages])
        self.assertEqual((await q.dlq_list("n")).messages, [])
        ready = await q.peek("n", 10)
        self.assertEqual([m.seq for m in ready.messages], [s1, s2])  # same seq, back of the line
        await q.dlq_requeue("n", [], DlqRequeueOptions())

    async def test_nack_with_delay(self) -> None:
        q = self.client.queue
        seq = await q.enqueue("nd", b"later")
        await q.dequeue("nd", 1)
        await q.nack("nd", [seq], NackOptions(delay_ms=600, reason="db down"))
        self.assertEqual((await q.peek("nd", 1)).messages, [])
        self.assertEqual((await q.stats("nd")).delayed, 1)
        t0 = time.monotonic()
        got = await q.dequeue("nd", 1, DequeueOptions(block_ms=5000, detailed=True))
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertEqual([(m.seq, m.reason, m.delivery_count) for m in got.messages], [(seq, "db down", 2)])

    async def test_max_deliveries_to_dlq(self) -> None:
        q = self.client.queue
        seq = await q.enqueue("md", b"poison")
        for _ in range(5):
            res = await q.dequeue("md", 1)
            self.assertEqual([m.seq for m in res.messages], [seq])
            await q.nack("md", [seq])
        self.assertEqual((await q.peek("md", 1)).messages, [])
        self.assertEqual([m.seq for m in (await q.dlq_list("md")).messages], [seq])

    async def test_peek_does_not_lease(self) -> None:
        q = self.client.queue
        for i in range(3):
            await q.enqueue("pk", f"{i}".encode())
        p = await q.peek("pk", 2)
        self.assertEqual([m.payload for m in p.messages], [b"0", b"1"])
        self.assertEqual(len((await q.peek("pk", 5, PeekOptions())).messages), 3)
        self.assertEqual(len((await q.dequeue("pk", 5)).messages), 3)

    async def test_namespace_override(self) -> None:
        q = self.client.queue
        other = self.ns + "-o"
        await q.enqueue("shared", b"mine")
        await q.enqueue("shared", b"theirs", EnqueueOptions(namespace=other))
        res = await q.dequeue("shared", 10, DequeueOptions(namespace=other))
        self.assertEqual([m.payload for m in res.messages], [b"theirs"])
        await q.ack("shared", [res.messages[0].seq], AckOptions(namespace=other))
        self.assertEqual([m.payload for m in (await q.peek("shared", 10)).messages], [b"mine"])
        self.assertEqual((await q.peek("shared", 10, PeekOptions(namespace=other))).messages, [])
        self.assertEqual((await q.dlq_list("shared", DlqListOptions(namespace=other))).messages, [])

    async def test_stats_and_details(self) -> None:
        q = self.client.queue
        a = await q.enqueue("x", b"a", EnqueueOptions(priority=7))
        await q.enqueue("x", b"b")
        await q.enqueue("x", b"later", EnqueueOptions(delay_ms=60_000))
        st = await q.stats("x")
        self.assertEqual((st.ready, st.delayed, st.in_flight, st.dlq), (2, 1, 0, 0))
        peeked = await q.peek("x", 1, PeekOptions(detailed=True))
        m = peeked.messages[0]
        self.assertEqual((m.seq, m.priority, m.delivery_count), (a, 7, 0))
        self.assertGreater(m.enqueued_at or 0, 1_600_000_000_000)
        got = await q.dequeue("x", 2, DequeueOptions(detailed=True))
        self.assertEqual([x.delivery_count for x in got.messages], [1, 1])
        self.assertEqual((await q.stats("x")).in_flight, 2)
        await q.nack("x", [a], NackOptions(to_dlq=True, reason="bad payload"))
        dlq = await q.dlq_list("x", DlqListOptions(detailed=True))
        self.assertEqual([(d.seq, d.reason) for d in dlq.messages], [(a, "bad payload")])
        self.assertIsNotNone(dlq.messages[0].dlq_at)
        plain = await q.dlq_list("x")
        self.assertIsNone(plain.messages[0].delivery_count)  # v1 layout unless asked
        self.assertEqual((await q.stats("x")).dlq, 1)
        self.assertEqual(await q.dlq_delete("x", [a, 424242]), 1)
        self.assertEqual(await q.dlq_delete("x", []), 0)
        self.assertEqual((await q.dlq_list("x")).messages, [])
        other = got.messages[1].seq
        await q.nack("x", [other], NackOptions(to_dlq=True))
        self.assertEqual(await q.dlq_purge("x"), 1)
        self.assertEqual((await q.stats("x")).dlq, 0)
        empty = await q.stats("never-used")
        self.assertEqual((empty.ready, empty.delayed, empty.in_flight, empty.dlq), (0, 0, 0, 0))

    async def test_long_nack_reason_is_cut_not_refused(self) -> None:
        # As the Go SDK does: a refused nack would leave the message leased until its
        # visibility timeout, and the reason is only a diagnostic.
        q = self.client.queue
        seq = await q.enqueue("long-reason", b"m")
        await q.dequeue("long-reason", 1)
        reason = "é" * 200  # 400 UTF-8 bytes: the cut falls inside a character
        await q.nack("long-reason", [seq], NackOptions(to_dlq=True, reason=reason))
        dlq = await q.dlq_list("long-reason", DlqListOptions(detailed=True))
        self.assertEqual([(d.seq, d.reason) for d in dlq.messages], [(seq, "é" * 127)])

    async def test_dequeue_reply_larger_than_one_payload(self) -> None:
        # The server caps a message list at 64 MiB of payloads (plus the message that
        # crosses it), so a reply may be far larger than the 16 MiB limit of one value.
        client = self.new_client(timeout_ms=30000)
        big = b"x" * (1 << 20)
        for _ in range(20):
            await client.queue.enqueue("big", big)
        got = await client.queue.dequeue("big", 20)
        self.assertEqual(len(got.messages), 20)
        self.assertTrue(all(m.payload == big for m in got.messages))
        await client.queue.ack("big", [m.seq for m in got.messages])
        await client.close()

    async def test_validation(self) -> None:
        with self.assertRaises(ValidationError):
            await self.client.queue.enqueue("", b"x")
        with self.assertRaises(ValidationError):
            await self.client.queue.enqueue("q", b"x", EnqueueOptions(priority=256))
