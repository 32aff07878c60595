"""Client behaviour: errors, checksums, connection failure, reconnect, concurrency, deadlines, logging."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import unittest

from .harness import AsyncTestCase, FakeServer, Proxy, ServerProcess, ServerTestCase, unique
from flo import (
    ActionInvokeOptions,
    BadRequestError,
    ConflictError,
    ConnectionFailedError,
    DequeueOptions,
    EnqueueOptions,
    FloClient,
    FloError,
    GenericServerError,
    GetOptions,
    InternalServerError,
    InvalidChecksumError,
    NotFoundError,
    OperationTimeoutError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    wire,
)
from flo.client import parse_endpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EndpointTest(unittest.TestCase):
    def test_parse(self) -> None:
        self.assertEqual(parse_endpoint("localhost:9000"), ("localhost", 9000))
        self.assertEqual(parse_endpoint("10.0.0.1"), ("10.0.0.1", 9000))
        self.assertEqual(parse_endpoint("[::1]:7000"), ("::1", 7000))
        self.assertEqual(parse_endpoint("flo://h:1"), ("h", 1))
        with self.assertRaises(ValueError):
            parse_endpoint("h:notaport")


class FakeServerTest(AsyncTestCase):
    """Behaviour that needs a server misbehaving on purpose."""

    async def test_every_status_maps_to_its_error(self) -> None:
        cases = {
            1: GenericServerError, 2: NotFoundError, 3: BadRequestError, 4: GenericServerError,
            6: GenericServerError, 7: UnauthorizedError, 8: ConflictError, 9: InternalServerError,
            10: OverloadedError, 11: RateLimitedError, 12: GenericServerError,
        }

        async def handler(h: wire.Header, env: wire.Envelope) -> bytes:
            status = int(env.key.decode())
            return wire.encode_response(h.request_id, status, f"message for {status}".encode())

        fake = FakeServer(handler)
        await fake.start()
        try:
            async with FloClient(fake.addr) as client:
                for status, cls in cases.items():
                    with self.subTest(status=status):
                        with self.assertRaises(cls) as cm:
                            await client.kv.put(str(status), b"x")
                        self.assertIsInstance(cm.exception, ServerError)
                        self.assertIsInstance(cm.exception, FloError)
                        self.assertIn(f"message for {status}", str(cm.exception))
                        self.assertEqual(cm.exception.status_code, status)
        finally:
            await fake.stop()

    async def test_empty_error_message_gets_a_default(self) -> None:
        async def handler(h: wire.Header, env: wire.Envelope) -> bytes:
            return wire.encode_response(h.request_id, wire.Status.CONFLICT)

        fake = FakeServer(handler)
        await fake.start()
        try:
            async with FloClient(fake.addr) as client:
                with self.assertRaisesRegex(ConflictError, "Conflict"):
                    await client.kv.put("k", b"v")
        finally:
            await fake.stop()

    async def test_invalid_checksum(self) -> None:
        async def handler(h: wire.Header, env: wire.Envelope) -> bytes:
            frame = bytearray(wire.encode_response(h.request_id, wire.Status.OK, b"value"))
            if env.key == b"corrupt":
                frame[16] ^= 0x01  # break the CRC field
            return bytes(frame)

        fake = FakeServer(handler)
        await fake.start()
        try:
            client = FloClient(fake.addr)
            with self.assertRaises(InvalidChecksumError):
                await client.kv.get("corrupt")
            # The client recovers on a fresh connection.
            self.assertEqual(await client.kv.get("fine"), b"value")
            self.assertEqual(fake.connections, 2)
            await client.close()
        finally:
            await fake.stop()

    async def test_corrupted_payload_fails_crc(self) -> None:
        async def handler(h: wire.Header, env: wire.Envelope) -> bytes:
            frame = bytearray(wire.encode_response(h.request_id, wire.Status.OK, b"value"))
            frame[-1] ^= 0x20
            return bytes(frame)

        fake = FakeServer(handler)
        await fake.start()
        try:
            async with FloClient(fake.addr) as client:
                with self.assertRaises(InvalidChecksumError):
                    await client.kv.get("k")
        finally:
            await fake.stop()

    async def test_late_reply_is_not_misread(self) -> None:
        """A reply that arrives after the caller gave up is dropped, not handed to the next call."""

        async def handler(h: wire.Header, env: wire.Envelope) -> bytes:
            if env.key == b"slow":
                await asyncio.sleep(0.5)
            return wire.encode_response(h.request_id, wire.Status.OK, env.key)

        fake = FakeServer(handler)
        await fake.start()
        try:
            async with FloClient(fake.addr, timeout_ms=200) as client:
                with self.assertRaises(OperationTimeoutError) as cm:
                    await client.kv.get("slow")
                self.assertIsInstance(cm.exception, TimeoutError)
                await asyncio.sleep(0.5)  # the late reply arrives and must be dropped
                self.assertEqual(await client.kv.get("fast"), b"fast")
                self.assertEqual(await client.kv.get("again"), b"again")
                self.assertEqual(fake.connections, 1)
        finally:
            await fake.stop()

    async def test_mismatched_request_id_breaks_connection(self) -> None:
        async def handler(h: wire.Header, env: wire.Envelope) -> bytes:
            rid = h.request_id + (1000 if env.key == b"bad" else 0)
            return wire.encode_response(rid, wire.Status.OK, b"x")

        fake = FakeServer(handler)
        await fake.start()
        try:
            client = FloClient(fake.addr)
            with self.assertRaises(FloError):
                await client.kv.put("bad", b"v")
            self.assertEqual(await client.kv.get("good"), b"x")
            await client.close()
        finally:
            await fake.stop()

    async def test_malformed_frame_rejection_is_reported(self) -> None:
        """The server answers a malformed frame with BAD_REQUEST, request id 0, then closes."""

        async def handler(h: wire.Header, env: wire.Envelope) -> bytes:
            return wire.encode_response(0, wire.Status.BAD_REQUEST, b"Invalid request: test")

        fake = FakeServer(handler)
        await fake.start()
        try:
            async with FloClient(fake.addr) as client:
                with self.assertRaisesRegex(BadRequestError, "Invalid request"):
                    await client.kv.get("k")
        finally:
            await fake.stop()

    async def test_pipelining_in_order(self) -> None:
        """Many requests share one connection; replies are matched strictly in order."""

        async def handler(h: wire.Header, env: wire.Envelope) -> bytes:
            return wire.encode_response(h.request_id, wire.Status.OK, env.key)

        fake = FakeServer(handler)
        await fake.start()
        try:
            async with FloClient(fake.addr) as client:
                keys = [f"k{i}" for i in range(200)]
                got = await asyncio.gather(*(client.kv.get(k) for k in keys))
                self.assertEqual(got, [k.encode() for k in keys])
                self.assertEqual(fake.connections, 1)
        finally:
            await fake.stop()

    async def test_connection_failed(self) -> None:
        client = FloClient(f"127.0.0.1:{free_port()}", timeout_ms=1000)
        with self.assertRaises(ConnectionFailedError) as cm:
            await client.connect()
        self.assertIsInstance(cm.exception, FloError)
        with self.assertRaises(ConnectionFailedError):
            await client.kv.get("k")  # lazy connect fails the same way
        with self.assertRaises(ConnectionFailedError):
            async with FloClient(f"127.0.0.1:{free_port()}"):
                pass

    async def test_server_drop_fails_in_flight_call(self) -> None:
        async def handler(h: wire.Header, env: wire.Envelope) -> None:
            fake.drop_all()
            return None

        fake = FakeServer(handler)
        await fake.start()
        try:
            client = FloClient(fake.addr)
            with self.assertRaises(ConnectionFailedError):
                await client.kv.put("k", b"v")  # not idempotent: never retried
            await client.close()
        finally:
            await fake.stop()


class LiveClientTest(ServerTestCase):
    client_timeout_ms = 1000

    async def test_lazy_connect_and_reuse_after_close(self) -> None:
        client = FloClient(self.addr, namespace=self.ns)  # no connect(), no async with
        self.assertFalse(client.connected)
        await client.kv.put("lazy", b"1")
        self.assertTrue(client.connected)
        await client.close()
        self.assertFalse(client.connected)
        self.assertEqual(await client.kv.get("lazy"), b"1")  # reconnects
        await client.close()

    async def test_fifty_concurrent_tasks(self) -> None:
        client = self.new_client(timeout_ms=30000)  # this test is about correctness, not latency

        async def work(i: int) -> None:
            for j in range(20):
                key = f"c{i}-{j}"
                await client.kv.put(key, f"{i}:{j}".encode())
                self.assertEqual(await client.kv.get(key), f"{i}:{j}".encode())

        await asyncio.gather(*(work(i) for i in range(50)))
        res = await client.kv.scan("c")
        self.assertEqual(len(res.entries), 100)  # default scan page
        self.assertEqual(client._main.pending if client._main else 0, 0)
        await client.close()

    async def test_fifty_concurrent_queue_tasks(self) -> None:
        await asyncio.gather(*(self.client.queue.enqueue("cq", f"{i}".encode()) for i in range(50)))
        got = await asyncio.gather(*(self.client.queue.dequeue("cq", 1) for _ in range(50)))
        self.assertEqual(sorted(int(r.messages[0].payload) for r in got), list(range(50)))

    async def test_concurrent_blocking_calls_do_not_block_others(self) -> None:
        waiters = [asyncio.create_task(self.client.kv.get(f"gate{i}", GetOptions(block_ms=0))) for i in range(10)]
        dq = asyncio.create_task(self.client.queue.dequeue("bq", 1, DequeueOptions(block_ms=0)))
        await asyncio.sleep(0.2)
        # Behind the parked calls they would wait forever; a bound only turns a hang into a failure.
        await asyncio.wait_for(asyncio.gather(*(self.client.kv.put(f"x{i}", b"v") for i in range(100))), 60)
        for i in range(10):
            await self.client.kv.put(f"gate{i}", f"{i}".encode())
        self.assertEqual(await asyncio.gather(*waiters), [f"{i}".encode() for i in range(10)])
        await self.client.queue.enqueue("bq", b"job")
        self.assertEqual((await asyncio.wait_for(dq, 5)).messages[0].payload, b"job")

    async def test_blocking_longer_than_timeout(self) -> None:
        client = self.new_client(timeout_ms=200)
        t0 = time.monotonic()
        self.assertIsNone(await client.kv.get("nothing", GetOptions(block_ms=800)))
        self.assertGreaterEqual(time.monotonic() - t0, 0.75)
        res = await client.queue.dequeue("empty", 1, DequeueOptions(block_ms=800))
        self.assertEqual(res.messages, [])

        async def later() -> None:
            await asyncio.sleep(0.7)
            await client.kv.put("soon", b"here")

        t = asyncio.create_task(later())
        self.assertEqual(await client.kv.get("soon", GetOptions(block_ms=0)), b"here")
        await t
        await client.close()

    async def test_cancelled_blocking_call_takes_nothing(self) -> None:
        waiter = asyncio.create_task(self.client.queue.dequeue("cancel-q", 1, DequeueOptions(block_ms=0)))
        await asyncio.sleep(0.2)
        waiter.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await waiter
        await asyncio.sleep(1.0)  # let the server see the disconnect, even on a loaded machine
        await self.client.queue.enqueue("cancel-q", b"m")
        res = await self.client.queue.dequeue("cancel-q", 1)
        self.assertEqual([m.payload for m in res.messages], [b"m"])

    async def test_cancelled_caller_does_not_keep_the_free_slot(self) -> None:
        # With max_pending reached, callers wait for room. A caller that is cancelled
        # in the same loop iteration as the reply that made room for it must pass
        # that room on; otherwise the next waiter waits forever (it has no deadline yet).
        client = self.new_client(max_pending=1)
        await client.connect()
        conn = client._main
        assert conn is not None
        a = asyncio.create_task(client.kv.put("room", b"1"))
        await asyncio.sleep(0)
        b = asyncio.create_task(client.kv.get("room"))
        c = asyncio.create_task(client.kv.get("room"))
        await asyncio.sleep(0)
        self.assertEqual((conn.pending, len(conn._room)), (1, 2))
        make_room = conn._make_room

        def make_room_then_cancel_b() -> None:
            make_room()
            if not b.done():
                b.cancel()  # e.g. an application timeout firing in this same iteration

        conn._make_room = make_room_then_cancel_b  # type: ignore[method-assign]
        await a
        with self.assertRaises(asyncio.CancelledError):
            await b
        self.assertEqual(await asyncio.wait_for(c, 3), b"1")
        self.assertEqual(await client.kv.get("room"), b"1")
        await client.close()

    async def test_invalid_arguments_raise_bad_request(self) -> None:
        # SEMANTICS 8.1: an empty name or key, anything over a size limit and a value
        # out of range raise BadRequestError, whether the client or the server notices.
        c = self.client
        cases = [
            lambda: c.kv.put("", b"x"),
            lambda: c.kv.get("k" * 70000),
            lambda: c.queue.enqueue("", b"x"),
            lambda: c.queue.enqueue("q", b"x", EnqueueOptions(priority=256)),
            lambda: c.action.invoke("a", b"", ActionInvokeOptions(priority=256)),
            lambda: c.kv.get("k", GetOptions(namespace="n" * 256)),
            lambda: c.kv.get("k", GetOptions(namespace="bad\x00ns")),  # rejected by the server
        ]
        for i, call in enumerate(cases):
            with self.subTest(case=i), self.assertRaises(BadRequestError):
                await call()

    async def test_debug_logging(self) -> None:
        client = self.new_client(debug=True)
        with self.assertLogs("flo", level="DEBUG") as logs:
            await client.kv.put("dbg", b"1")
            await client.kv.get("dbg")
        text = "\n".join(logs.output)
        self.assertIn("KV_PUT", text)
        self.assertIn("KV_GET", text)
        self.assertIn("->", text)
        self.assertIn("<-", text)
        await client.close()

    async def test_reconnect_after_proxy_drop(self) -> None:
        proxy = Proxy(self.addr)
        await proxy.start()
        try:
            client = FloClient(proxy.addr, namespace=self.ns)
            await client.kv.put("rk", b"1")
            proxy.drop_all()
            await asyncio.sleep(0.1)
            # The next call reconnects transparently.
            self.assertEqual(await client.kv.get("rk"), b"1")
            await client.kv.put("rk", b"2")
            self.assertEqual(proxy.accepted, 2)
            # A drop the client has not noticed yet: an idempotent read retries once.
            proxy.drop_all()
            self.assertEqual(await client.kv.get("rk"), b"2")
            # A non-idempotent call may fail once, then the next call works.
            proxy.drop_all()
            try:
                await client.kv.put("rk", b"3")
            except ConnectionFailedError:
                pass
            await client.kv.put("rk", b"4")
            self.assertEqual(await client.kv.get("rk"), b"4")
            # Blocking calls use pooled connections; a dead idle one is replaced.
            self.assertEqual(await client.kv.get("rk", GetOptions(block_ms=1000)), b"4")
            proxy.drop_all()
            self.assertEqual(await client.kv.get("rk", GetOptions(block_ms=1000)), b"4")
            await client.close()
        finally:
            await proxy.stop()


class StalledServerTest(AsyncTestCase):
    """A server that stops reading must not make a call outlive its timeout."""

    async def test_large_write_to_stalled_server_times_out(self) -> None:
        server = ServerProcess()
        addr = server.start()
        assert server.proc is not None
        try:
            client = FloClient(addr, timeout_ms=500)
            await client.connect()
            os.kill(server.proc.pid, signal.SIGSTOP)  # the server reads nothing more
            try:
                with self.assertRaises(OperationTimeoutError):
                    # 16 MiB cannot all fit in the socket buffers: the write stalls until the
                    # client's own 500 ms timeout (the wait_for bound, far later, only ends a hang
                    # and raises a plain TimeoutError, which fails the test).
                    await asyncio.wait_for(client.kv.put("big", b"x" * (16 << 20)), 30)
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            await client.close()
        finally:
            server.cleanup()


class RestartTest(AsyncTestCase):
    """Reconnect after the server process restarts on the same data dir and port."""

    async def test_reconnect_after_restart(self) -> None:
        server = ServerProcess()
        try:
            addr = await asyncio.to_thread(server.start)
            ns = unique("ns")
            client = FloClient(addr, namespace=ns, timeout_ms=2000)
            await client.kv.put("durable", b"yes")
            await asyncio.to_thread(server.stop)
            with self.assertRaises(ConnectionFailedError):
                await client.kv.get("durable")  # server is down
            await asyncio.to_thread(server.start, addr)
            self.assertEqual(await client.kv.get("durable"), b"yes")
            await client.kv.put("after", b"restart")
            await client.close()
        finally:
            server.cleanup()


class LoopChangeTest(unittest.TestCase):
    """A client created outside any loop works under successive asyncio.run calls."""

    def test_client_survives_a_new_event_loop(self) -> None:
        server = ServerProcess()
        try:
            addr = server.start()
            client = FloClient(addr, namespace=unique("ns"))  # created with no running loop
            asyncio.run(client.kv.put("loop", b"1"))
            self.assertEqual(asyncio.run(client.kv.get("loop")), b"1")

            async def blocking_then_close() -> object:
                try:
                    return await client.kv.get("loop", GetOptions(block_ms=100))
                finally:
                    await client.close()

            self.assertEqual(asyncio.run(blocking_then_close()), b"1")
        finally:
            server.cleanup()


if __name__ == "__main__":
    logging.basicConfig()
    unittest.main()
