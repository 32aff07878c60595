"""client.stream against a real server: every method and option."""

from __future__ import annotations

import asyncio
import time

from .harness import ServerTestCase
from flo import (
    BadRequestError,
    StreamAppendOptions,
    StreamGroupDlqListOptions,
    StreamGroupJoinOptions,
    StreamGroupOptions,
    StreamGroupReadOptions,
    StreamID,
    StreamInfoOptions,
    StreamReadOptions,
    StreamStartMode,
    StreamTrimOptions,
)


class StreamTest(ServerTestCase):
    client_timeout_ms = 1000

    async def fill(self, stream: str, n: int) -> list[int]:
        return [(await self.client.stream.append(stream, f"r{i}".encode())).offset for i in range(n)]

    async def test_count_out_of_range_is_clamped_not_raised(self) -> None:
        # SEMANTICS §4.3, §4.4, §8.2: read and group read counts are clamped to 1-1000, so a
        # count the u32 COUNT option cannot carry is clamped too rather than raised.
        s = self.client.stream
        await self.fill("clamp", 3)
        self.assertEqual(len((await s.read("clamp", StreamReadOptions(count=2**40))).records), 3)
        got = await s.group_read("clamp", "g", "c", StreamGroupReadOptions(count=2**40))
        self.assertEqual(len(got.records), 3)

    async def test_append_and_read(self) -> None:
        s = self.client.stream
        r1 = await s.append("events", b'{"event": "click"}')
        r2 = await s.append("events", "second")
        self.assertEqual((r1.offset, r2.offset), (1, 2))
        self.assertEqual(r1.sequence, 1)
        self.assertGreater(r1.timestamp, 1_600_000_000_000)
        self.assertEqual(r1.timestamp_ms, r1.timestamp)
        self.assertGreaterEqual(r2.timestamp, r1.timestamp)
        res = await s.read("events")
        self.assertEqual([(r.offset, r.payload) for r in res.records], [(1, b'{"event": "click"}'), (2, b"second")])
        self.assertEqual(res.records[0].timestamp, r1.timestamp)
        self.assertIsNone(res.records[0].partition_key)
        self.assertEqual((await s.read("unknown-stream")).records, [])

    async def test_partition_key_and_client_timestamp(self) -> None:
        s = self.client.stream
        await s.append("pk", b"a", StreamAppendOptions(partition_key="user-123"))
        r = await s.append("pk", b"b", StreamAppendOptions(timestamp=1699999999000))
        self.assertEqual(r.timestamp, 1699999999000)
        await s.append("pk", b"c", StreamAppendOptions(timestamp_ms=1699999999500, partition_key="k2"))
        recs = (await s.read("pk")).records
        self.assertEqual([x.partition_key for x in recs], ["user-123", None, "k2"])
        self.assertEqual(recs[0].key, b"user-123")
        self.assertEqual([x.timestamp for x in recs[1:]], [1699999999000, 1699999999500])

    async def test_start_modes(self) -> None:
        s = self.client.stream
        await self.fill("m", 20)
        r = await s.read("m", StreamReadOptions(start_mode=StreamStartMode.OFFSET, offset=15, count=3))
        self.assertEqual([x.offset for x in r.records], [15, 16, 17])
        r = await s.read("m", StreamReadOptions(offset=18))  # mode inferred from offset
        self.assertEqual([x.offset for x in r.records], [18, 19, 20])
        r = await s.read("m", StreamReadOptions(start=StreamID.from_sequence(19)))  # upstream style
        self.assertEqual([x.offset for x in r.records], [19, 20])
        r = await s.read("m", StreamReadOptions(start_mode=StreamStartMode.TAIL, count=4))
        self.assertEqual([x.offset for x in r.records], [17, 18, 19, 20])
        r = await s.read("m", StreamReadOptions(start_mode=StreamStartMode.BEGINNING, count=2))
        self.assertEqual([x.offset for x in r.records], [1, 2])
        r = await s.read("m", StreamReadOptions(start_mode=StreamStartMode.OFFSET, offset=500))
        self.assertEqual(r.records, [])
        r = await s.read("m", StreamReadOptions(count=5))
        self.assertEqual(len(r.records), 5)
        # Upstream-style end bound (inclusive) and explicit partition 0 (flo has one log per stream).
        r = await s.read("m", StreamReadOptions(offset=3, end=StreamID.from_sequence(5)))
        self.assertEqual([x.offset for x in r.records], [3, 4, 5])
        r = await s.read("m", StreamReadOptions(partition=0, count=2))
        self.assertEqual([x.offset for x in r.records], [1, 2])

    async def test_timestamp_mode(self) -> None:
        s = self.client.stream
        base = 1_700_000_000_000
        for i in range(5):
            await s.append("ts", f"{i}".encode(), StreamAppendOptions(timestamp=base + i * 1000))
        r = await s.read("ts", StreamReadOptions(start_mode=StreamStartMode.TIMESTAMP, timestamp=base + 2500))
        self.assertEqual([x.payload for x in r.records], [b"3", b"4"])
        r = await s.read("ts", StreamReadOptions(timestamp=base + 1000, count=1))
        self.assertEqual([x.payload for x in r.records], [b"1"])
        r = await s.read("ts", StreamReadOptions(start_mode=StreamStartMode.TIMESTAMP, timestamp=base + 10_000))
        self.assertEqual(r.records, [])

    async def test_blocking_read(self) -> None:
        s = self.client.stream
        await self.fill("b", 3)
        t0 = time.monotonic()
        r = await s.read("b", StreamReadOptions(offset=4, block_ms=1200))
        self.assertEqual(r.records, [])
        self.assertGreaterEqual(time.monotonic() - t0, 1.1)

        async def later() -> None:
            await asyncio.sleep(1.2)
            await s.append("b", b"new")

        t = asyncio.create_task(later())
        r = await s.read("b", StreamReadOptions(offset=4, block_ms=0))
        self.assertEqual([(x.offset, x.payload) for x in r.records], [(4, b"new")])
        await t
        # TAIL + blocking: only records appended after the call.
        t = asyncio.create_task(later())
        r = await s.read("b", StreamReadOptions(start_mode=StreamStartMode.TAIL, block_ms=5000))
        self.assertEqual([x.offset for x in r.records], [5])
        await t

    async def test_info_and_trim(self) -> None:
        s = self.client.stream
        empty = await s.info("nothing")
        self.assertEqual((empty.count, empty.last_offset), (0, 0))
        await self.fill("i", 10)
        info = await s.info("i")
        self.assertEqual((info.first_offset, info.last_offset, info.count), (1, 10, 10))
        self.assertEqual((info.first_seq, info.last_seq), (1, 10))
        self.assertGreater(info.bytes, 0)
        dry = await s.trim("i", StreamTrimOptions(max_len=4, dry_run=True))
        self.assertEqual((await s.info("i")).count, 10)
        self.assertEqual((dry.deleted_count, dry.first_offset), (6, 7))
        await s.trim("i", StreamTrimOptions(max_len=4))
        info = await s.info("i", StreamInfoOptions())
        self.assertEqual((info.first_offset, info.last_offset, info.count), (7, 10, 4))
        r = await s.read("i")
        self.assertEqual([x.offset for x in r.records], [7, 8, 9, 10])
        await s.trim("i", StreamTrimOptions(max_bytes=1))
        await s.trim("i", StreamTrimOptions(max_age_seconds=3600))

    async def test_consumer_group(self) -> None:
        s = self.client.stream
        await self.fill("g", 30)
        await s.group_join("g", "processors", "worker-1")
        r1 = await s.group_read("g", "processors", "worker-1")
        self.assertEqual([x.offset for x in r1.records], list(range(1, 11)))  # default count 10
        await s.group_join("g", "processors", "worker-2", StreamGroupOptions())
        r2 = await s.group_read("g", "processors", "worker-2", StreamGroupReadOptions(count=5))
        self.assertEqual([x.offset for x in r2.records], list(range(11, 16)))
        await s.group_ack("g", "processors", [x.offset for x in r1.records])
        await s.group_ack("g", "processors", [])
        await s.group_ack("g", "processors", [StreamID.from_sequence(999)])  # unknown: ignored
        # worker-2 leaves without acking: its records go to the next reader first.
        await s.group_leave("g", "processors", "worker-2")
        r3 = await s.group_read("g", "processors", "worker-1", StreamGroupReadOptions(count=7))
        self.assertEqual([x.offset for x in r3.records], [11, 12, 13, 14, 15, 16, 17])
        # Another group sees everything independently.
        other = await s.group_read("g", "audit", "a1", StreamGroupReadOptions(count=100))
        self.assertEqual(len(other.records), 30)

    async def test_group_settings_on_read(self) -> None:
        s = self.client.stream
        await self.fill("gs", 1)
        r = await s.group_read("gs", "g", "c1", StreamGroupReadOptions(ack_timeout_ms=200, max_deliver=3))
        self.assertEqual([x.offset for x in r.records], [1])
        # The 200 ms ack timeout set by the read applies: the record comes back to another reader.
        again = await s.group_read("gs", "g", "c2", StreamGroupReadOptions(block_ms=3000))
        self.assertEqual([(x.offset, x.tier) for x in again.records], [(1, 1)])  # tier 1 = redelivery

    async def test_blocking_group_read(self) -> None:
        s = self.client.stream
        await s.group_join("bg", "grp", "c1")

        async def later() -> None:
            await asyncio.sleep(1.2)
            await s.append("bg", b"late")

        t = asyncio.create_task(later())
        r = await s.group_read("bg", "grp", "c1", StreamGroupReadOptions(count=10, block_ms=0))
        self.assertEqual([x.payload for x in r.records], [b"late"])
        await t
        t0 = time.monotonic()
        r = await s.group_read("bg", "grp", "c1", StreamGroupReadOptions(block_ms=1200))
        self.assertEqual(r.records, [])
        self.assertGreaterEqual(time.monotonic() - t0, 1.1)

    async def test_group_extensions(self) -> None:
        s = self.client.stream
        await self.fill("gx", 3)
        # An ack timeout long enough that offset 2 is still in flight at the c2 read below,
        # even on a loaded machine.
        await s.group_join("gx", "g", "c1", StreamGroupJoinOptions(ack_timeout_ms=1000, max_deliver=2))
        first = await s.group_read("gx", "g", "c1", StreamGroupReadOptions(count=3))
        self.assertEqual([r.offset for r in first.records], [1, 2, 3])
        self.assertEqual(await s.group_nack("gx", "g", [1]), 1)   # redeliverable at once
        self.assertEqual(await s.group_touch("gx", "g", [2]), 1)  # deadline reset
        self.assertEqual(await s.group_ack("gx", "g", [3, 99]), 1)
        self.assertEqual(await s.group_ack("gx", "g", []), 0)
        again = await s.group_read("gx", "g", "c2", StreamGroupReadOptions(count=3))
        self.assertEqual([r.offset for r in again.records], [1])
        # Offset 2 misses its deadline twice (max_deliver=2) and is dead-lettered.
        deadline = time.monotonic() + 10
        dead = []
        while not dead:
            self.assertLess(time.monotonic(), deadline, "record never dead-lettered")
            await s.group_read("gx", "g", "c3", StreamGroupReadOptions(count=3, block_ms=400))
            dead = [d for d in await s.group_dlq_list("gx", "g") if d.offset == 2]
        self.assertEqual((dead[0].payload, dead[0].deliveries), (b"r1", 2))
        self.assertGreater(dead[0].dead_at, 0)
        self.assertEqual(len(await s.group_dlq_list("gx", "g", StreamGroupDlqListOptions(limit=1))), 1)
        self.assertEqual(await s.group_dlq_requeue("gx", "g", [2]), 1)
        self.assertNotIn(2, [d.offset for d in await s.group_dlq_list("gx", "g")])
        back = await s.group_read("gx", "g", "c4", StreamGroupReadOptions(count=3))
        self.assertIn(2, [r.offset for r in back.records])

    async def test_namespace_override(self) -> None:
        s = self.client.stream
        other = self.ns + "-o"
        await s.append("ns", b"mine")
        await s.append("ns", b"theirs", StreamAppendOptions(namespace=other))
        self.assertEqual([x.payload for x in (await s.read("ns", StreamReadOptions(namespace=other))).records], [b"theirs"])
        self.assertEqual((await s.info("ns", StreamInfoOptions(namespace=other))).count, 1)
        r = await s.group_read("ns", "g", "c", StreamGroupReadOptions(namespace=other))
        self.assertEqual([x.payload for x in r.records], [b"theirs"])

    async def test_offset_zero_and_trimmed_offsets_start_at_the_first_retained(self) -> None:
        # SEMANTICS §4.3: OFFSET 0 means the beginning; an offset before the first retained
        # record starts there.
        s = self.client.stream
        await self.fill("o", 5)
        r = await s.read("o", StreamReadOptions(start_mode=StreamStartMode.OFFSET, offset=0, count=2))
        self.assertEqual([x.offset for x in r.records], [1, 2])
        await s.trim("o", StreamTrimOptions(max_len=2))
        r = await s.read("o", StreamReadOptions(start_mode=StreamStartMode.OFFSET, offset=1))
        self.assertEqual([x.offset for x in r.records], [4, 5])
        r = await s.read("o")
        self.assertEqual([x.offset for x in r.records], [4, 5])

    async def test_timestamp_mode_is_earliest_offset_then_offset_order(self) -> None:
        # SEMANTICS §4.3: the earliest offset whose timestamp >= T, then offset order even if a
        # later client timestamp is smaller; a blocking read waits for a qualifying record.
        s = self.client.stream
        for ts in (1000, 3000, 2000, 4000):
            await s.append("oo", str(ts).encode(), StreamAppendOptions(timestamp=ts))
        r = await s.read("oo", StreamReadOptions(start_mode=StreamStartMode.TIMESTAMP, timestamp=2500))
        self.assertEqual([x.timestamp for x in r.records], [3000, 2000, 4000])

        async def later() -> None:
            await asyncio.sleep(0.2)
            await s.append("oo", b"old", StreamAppendOptions(timestamp=1500))
            await s.append("oo", b"new", StreamAppendOptions(timestamp=9000))

        t = asyncio.create_task(later())
        r = await s.read("oo", StreamReadOptions(start_mode=StreamStartMode.TIMESTAMP, timestamp=5000, block_ms=3000))
        await t
        self.assertEqual([x.payload for x in r.records], [b"new"])

    async def test_trim_policies_and_emptied_stream_info(self) -> None:
        s = self.client.stream
        old = int(time.time() * 1000) - 3_600_000
        for i in range(10):  # ten 10-byte records, the first five an hour old
            opts = StreamAppendOptions(timestamp=old) if i < 5 else None
            await s.append("tp", f"record-{i:03d}".encode(), opts)
        self.assertEqual((await s.info("tp")).bytes, 100)
        dry = await s.trim("tp", StreamTrimOptions(max_age_seconds=600, dry_run=True))
        self.assertEqual((dry.deleted_count, dry.first_offset), (5, 6))
        dry = await s.trim("tp", StreamTrimOptions(max_bytes=35, dry_run=True))
        self.assertEqual((dry.deleted_count, dry.first_offset), (7, 8))
        self.assertEqual((await s.info("tp")).count, 10)
        done = await s.trim("tp", StreamTrimOptions(max_age_seconds=600))
        self.assertEqual((done.deleted_count, done.first_offset), (5, 6))
        done = await s.trim("tp", StreamTrimOptions(max_len=0))
        self.assertEqual((done.deleted_count, done.first_offset), (5, 0))
        info = await s.info("tp")
        self.assertEqual((info.first_offset, info.last_offset, info.count, info.bytes), (0, 10, 0, 0))
        self.assertEqual((await s.append("tp", b"x")).offset, 11)

    async def test_default_delivery_limit_dead_letters_after_ten(self) -> None:
        # D10: max deliveries 10 by default; then the group stops delivering the record (flo
        # keeps it in the group's dead-letter list) but it stays in the stream.
        s = self.client.stream
        await self.fill("dl", 1)
        for i in range(10):
            r = await s.group_read("dl", "g", f"c{i}")
            self.assertEqual([(x.offset, x.tier) for x in r.records], [(1, 1 if i else 0)])
            self.assertEqual(await s.group_nack("dl", "g", [1]), 1)
        self.assertEqual((await s.group_read("dl", "g", "c10")).records, [])
        dead = await s.group_dlq_list("dl", "g")
        self.assertEqual([(d.offset, d.deliveries, d.consumer) for d in dead], [(1, 10, "c9")])
        self.assertEqual([x.offset for x in (await s.read("dl")).records], [1])

    async def test_unknown_is_empty_and_empty_names_are_bad_requests(self) -> None:
        s = self.client.stream
        self.assertEqual((await s.read("nope", StreamReadOptions(start_mode=StreamStartMode.TAIL))).records, [])
        trimmed = await s.trim("nope", StreamTrimOptions(max_len=1))
        self.assertEqual((trimmed.deleted_count, trimmed.first_offset), (0, 0))
        self.assertEqual(await s.group_ack("nope", "g", [1]), 0)
        self.assertEqual(await s.group_nack("nope", "g", [1]), 0)
        await s.group_leave("nope", "g", "c")
        self.assertEqual(await s.group_dlq_list("nope", "g"), [])
        self.assertEqual((await s.group_read("nope", "g", "c")).records, [])
        for call in (
            lambda: s.read(""),
            lambda: s.info(""),
            lambda: s.append("", b"x"),
            lambda: s.group_join("st", "", "c"),
            lambda: s.group_join("st", "g", ""),
            lambda: s.group_read("st", "g", ""),
            lambda: s.group_ack("st", "", [1]),
        ):
            with self.assertRaises(BadRequestError):
                await call()

    async def test_out_of_range_positions_and_offsets_are_bad_requests(self) -> None:
        # SEMANTICS §8.1: a value out of range is a BadRequestError (the client's
        # ValidationError), never a bare struct.error from encoding it.
        s = self.client.stream
        await self.fill("neg", 1)
        for opts in (
            StreamReadOptions(offset=-1),
            StreamReadOptions(start_mode=StreamStartMode.TIMESTAMP, timestamp=-1),
            StreamReadOptions(start=StreamID(0, 2**64)),
            StreamReadOptions(end=StreamID.from_sequence(-3)),
        ):
            with self.assertRaises(BadRequestError, msg=str(opts)):
                await s.read("neg", opts)
        for call in (
            lambda: s.group_ack("neg", "g", [-1]),
            lambda: s.group_nack("neg", "g", [2**64]),
            lambda: s.group_touch("neg", "g", [StreamID.from_sequence(-1)]),
        ):
            with self.assertRaises(BadRequestError):
                await call()
        self.assertEqual(len((await s.read("neg")).records), 1)
