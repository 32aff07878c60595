"""client.kv against a real server: every method and option."""

from __future__ import annotations

import asyncio
import time

from .harness import ServerTestCase
from flo import (
    BadRequestError,
    ConflictError,
    DeleteOptions,
    GetOptions,
    HistoryOptions,
    NotFoundError,
    PutOptions,
    ScanOptions,
    ValidationError,
)


class KVTest(ServerTestCase):
    client_timeout_ms = 1000

    async def test_put_get_delete(self) -> None:
        kv = self.client.kv
        self.assertIsNone(await kv.get("missing"))
        v1 = await kv.put("k", b"v1")
        v2 = await kv.put("k", "v2")  # str values are UTF-8 encoded
        self.assertEqual((v1, v2), (1, 2))
        self.assertEqual(await kv.get("k"), b"v2")
        self.assertEqual(await kv.get(b"k"), b"v2")
        await kv.delete("k")
        self.assertIsNone(await kv.get("k"))
        await kv.delete("k")  # deleting a missing key is not an error
        await kv.delete("never-existed", DeleteOptions(namespace=self.ns + "-x"))

    async def test_empty_value_reads_as_none(self) -> None:
        await self.client.kv.put("empty", b"")
        self.assertIsNone(await self.client.kv.get("empty"))

    async def test_binary_and_large_values(self) -> None:
        blob = bytes(range(256)) * 4096  # 1 MiB
        await self.client.kv.put(b"\x00bin\xff", blob)
        self.assertEqual(await self.client.kv.get(b"\x00bin\xff"), blob)

    async def test_namespace_override(self) -> None:
        other = self.ns + "-other"
        await self.client.kv.put("key", b"mine")
        await self.client.kv.put("key", b"theirs", PutOptions(namespace=other))
        self.assertEqual(await self.client.kv.get("key"), b"mine")
        self.assertEqual(await self.client.kv.get("key", GetOptions(namespace=other)), b"theirs")
        self.assertIsNone(await self.client.kv.get("key", GetOptions(namespace=other + "2")))

    async def test_ttl(self) -> None:
        await self.client.kv.put("session", b"data", PutOptions(ttl_seconds=1))
        self.assertEqual(await self.client.kv.get("session"), b"data")
        deadline = time.monotonic() + 5
        while await self.client.kv.get("session") is not None:
            self.assertLess(time.monotonic(), deadline, "TTL did not expire")
            await asyncio.sleep(0.1)
        await self.client.kv.put("forever", b"x", PutOptions(ttl_seconds=3600))
        self.assertEqual(await self.client.kv.get("forever"), b"x")

    async def test_cas(self) -> None:
        kv = self.client.kv
        await kv.put("counter", b"1", PutOptions(cas_version=0))  # 0 = must not exist
        with self.assertRaises(ConflictError) as cm:
            await kv.put("counter", b"x", PutOptions(cas_version=0))
        self.assertTrue(str(cm.exception))
        self.assertEqual(await kv.put("counter", b"2", PutOptions(cas_version=1)), 2)
        with self.assertRaises(ConflictError):
            await kv.put("counter", b"3", PutOptions(cas_version=1))
        self.assertEqual(await kv.get("counter"), b"2")

    async def test_if_exists_if_not_exists(self) -> None:
        kv = self.client.kv
        with self.assertRaises(ConflictError):
            await kv.put("nx", b"v", PutOptions(if_exists=True))
        await kv.put("nx", b"v", PutOptions(if_not_exists=True))
        with self.assertRaises(ConflictError):
            await kv.put("nx", b"v", PutOptions(if_not_exists=True))
        await kv.put("nx", b"w", PutOptions(if_exists=True))
        self.assertEqual(await kv.get("nx"), b"w")
        with self.assertRaises(BadRequestError):
            await kv.put("nx", b"v", PutOptions(if_exists=True, if_not_exists=True))

    async def test_blocking_get(self) -> None:
        kv = self.client.kv
        # Times out quietly (returns None) — and longer than the client's timeout_ms.
        t0 = time.monotonic()
        self.assertIsNone(await kv.get("later", GetOptions(block_ms=1300)))
        self.assertGreaterEqual(time.monotonic() - t0, 1.2)

        async def put_later(key: str, delay: float) -> None:
            await asyncio.sleep(delay)
            await kv.put(key, b"arrived")

        # Wakes on put; block_ms=0 waits without limit (well beyond timeout_ms=1000).
        task = asyncio.create_task(put_later("later", 1.5))
        self.assertEqual(await kv.get("later", GetOptions(block_ms=0)), b"arrived")
        await task
        task = asyncio.create_task(put_later("later2", 0.2))
        self.assertEqual(await kv.get("later2", GetOptions(block_ms=5000)), b"arrived")
        await task
        # An existing key returns at once, not after the block.
        self.assertEqual(await asyncio.wait_for(kv.get("later", GetOptions(block_ms=120_000)), 60), b"arrived")

    async def test_blocking_get_does_not_hold_up_other_calls(self) -> None:
        waiter = asyncio.create_task(self.client.kv.get("gate", GetOptions(block_ms=0)))
        await asyncio.sleep(0.1)

        async def puts() -> None:
            for i in range(20):
                await self.client.kv.put(f"other{i}", b"x")

        await asyncio.wait_for(puts(), 60)  # they would wait as long as the get
        self.assertFalse(waiter.done())
        await self.client.kv.put("gate", b"open")
        self.assertEqual(await asyncio.wait_for(waiter, 5), b"open")

    async def test_scan(self) -> None:
        kv = self.client.kv
        for i in range(25):
            await kv.put(f"user:{i:03d}", f"name{i}".encode())
        await kv.put("other:1", b"x")
        res = await kv.scan("user:")
        self.assertEqual([e.key for e in res.entries], [f"user:{i:03d}".encode() for i in range(25)])
        self.assertEqual(res.entries[3].value, b"name3")
        self.assertFalse(res.has_more)
        self.assertIsNone(res.cursor)
        # Pagination with the cursor.
        seen = []
        page = await kv.scan("user:", ScanOptions(limit=10))
        pages = 1
        seen += page.entries
        while page.has_more:
            self.assertIsNotNone(page.cursor)
            page = await kv.scan("user:", ScanOptions(cursor=page.cursor, limit=10))
            seen += page.entries
            pages += 1
        self.assertEqual(pages, 3)
        self.assertEqual([e.key for e in seen], [e.key for e in res.entries])
        # Keys only.
        keys = await kv.scan("user:", ScanOptions(keys_only=True, limit=5))
        self.assertEqual(len(keys.entries), 5)
        self.assertTrue(all(e.value is None for e in keys.entries))
        self.assertTrue(keys.has_more)
        # Everything, and another namespace.
        self.assertEqual(len((await kv.scan("")).entries), 26)
        self.assertEqual((await kv.scan("", ScanOptions(namespace=self.ns + "-empty"))).entries, [])
        with self.assertRaises(BadRequestError):
            await kv.scan("user:", ScanOptions(cursor=b"\xff garbage cursor"))

    async def test_history(self) -> None:
        kv = self.client.kv
        for i in range(1, 6):
            await kv.put("h", f"v{i}".encode())
        hist = await kv.history("h")
        self.assertEqual([e.version for e in hist], [5, 4, 3, 2, 1])
        self.assertEqual(hist[0].value, b"v5")
        self.assertGreater(hist[0].timestamp, 1_600_000_000_000)  # Unix ms
        self.assertEqual(hist[0].timestamp_ms, hist[0].timestamp)
        self.assertEqual(len(await kv.history("h", HistoryOptions(limit=2))), 2)
        await kv.delete("h")
        self.assertEqual([e.version for e in await kv.history("h")], [5, 4, 3, 2, 1])
        # A limit above the max is clamped (SEMANTICS §2.6), even one past u32.
        self.assertEqual(len(await kv.history("h", HistoryOptions(limit=2**40))), 5)
        await kv.put("s", b"x")
        self.assertEqual([e.key for e in (await kv.scan("s", ScanOptions(limit=2**40))).entries], [b"s"])
        with self.assertRaises(NotFoundError):
            await kv.history("never-written")
        with self.assertRaises(NotFoundError):
            await kv.history("h", HistoryOptions(namespace=self.ns + "-other"))

    async def test_validation(self) -> None:
        with self.assertRaises(ValidationError):
            await self.client.kv.put("", b"x")
        with self.assertRaises(ValidationError):
            await self.client.kv.get("k" * 70000)
        with self.assertRaises(ValidationError):
            await self.client.kv.put("k", 123)  # type: ignore[arg-type]
