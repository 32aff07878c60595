"""The high-level Worker against a real server."""

from __future__ import annotations

import asyncio
import threading
import time
import unittest

from .harness import ServerTestCase
from flo import ActionContext, ActionRegisterOptions, NonRetryableError, RunStatus, ValidationError, Worker, WorkerFailOptions
from flo.worker import encode_output


class EncodeOutputTest(unittest.TestCase):
    def test_encode_output(self) -> None:
        self.assertEqual(encode_output(None), b"")
        self.assertEqual(encode_output(b"x"), b"x")
        self.assertEqual(encode_output("é"), "é".encode())
        self.assertEqual(encode_output({"a": 1}), b'{"a": 1}')


class WorkerTest(ServerTestCase):
    client_timeout_ms = 1000

    async def wait_terminal(self, run_id: str, timeout: float = 15.0):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            st = await self.client.action.status(run_id)
            if st.is_terminal:
                return st
            self.assertLess(time.monotonic(), deadline, f"run {run_id} still {st.status}")
            await asyncio.sleep(0.05)

    async def test_handles_tasks_with_concurrency(self) -> None:
        worker = Worker(self.client, "w-conc", concurrency=4, block_ms=10000)
        running = 0
        peak = 0

        @worker.action("square")
        async def square(ctx: ActionContext) -> dict[str, int]:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.4)
            running -= 1
            n = ctx.json()["n"]
            return {"n": n, "square": n * n}

        await worker.start()
        try:
            runs = [(await self.client.action.invoke("square", f'{{"n": {i}}}'.encode())).run_id for i in range(8)]
            results = [await self.wait_terminal(r) for r in runs]
        finally:
            await worker.stop()
        self.assertEqual([s.status for s in results], [RunStatus.COMPLETED] * 8)
        self.assertEqual(results[3].result, b'{"n": 3, "square": 9}')
        self.assertEqual(peak, 4)  # four at a time, never more
        self.assertEqual(worker.completed, 8)
        workers = {w.worker_id for w in await self.client.worker.list()}
        self.assertIn("w-conc", workers)

    async def test_lease_is_extended_while_handler_runs(self) -> None:
        # Renewed every 1/3 s: a loaded machine may delay a renewal by a few hundred ms.
        worker = Worker(self.client, "w-lease", concurrency=1, lease_ms=1000)

        @worker.action("slow", ActionRegisterOptions(timeout_ms=1000, max_retries=0))
        async def slow(ctx: ActionContext) -> bytes:
            await asyncio.sleep(2.5)  # two and a half lease periods
            return b"finished"

        async with worker:
            run = (await self.client.action.invoke("slow", b"")).run_id
            st = await self.wait_terminal(run)
        self.assertEqual((st.status, st.result, st.attempt), (RunStatus.COMPLETED, b"finished", 1))

    async def test_failures_retry_unless_non_retryable(self) -> None:
        worker = Worker(self.client, "w-fail", concurrency=2)
        attempts: dict[str, int] = {}

        @worker.action("flaky", ActionRegisterOptions(max_retries=2))
        async def flaky(ctx: ActionContext) -> str:
            attempts[ctx.task_id] = ctx.attempt
            if ctx.attempt < 2:
                raise RuntimeError("transient")
            return "ok on attempt %d" % ctx.attempt

        @worker.action("fatal", ActionRegisterOptions(max_retries=5))
        async def fatal(ctx: ActionContext) -> None:
            raise NonRetryableError("bad input")

        @worker.action("sync")
        def sync_handler(ctx: ActionContext) -> bytes:  # plain functions run in a thread
            return ctx.input[::-1]

        await worker.start()
        try:
            r1 = (await self.client.action.invoke("flaky", b"")).run_id
            r2 = (await self.client.action.invoke("fatal", b"")).run_id
            r3 = (await self.client.action.invoke("sync", b"abc")).run_id
            s1, s2, s3 = [await self.wait_terminal(r) for r in (r1, r2, r3)]
        finally:
            await worker.stop()
        self.assertEqual((s1.status, s1.result), (RunStatus.COMPLETED, b"ok on attempt 2"))
        self.assertEqual((s2.status, s2.error, s2.attempt), (RunStatus.FAILED, "bad input", 1))
        self.assertEqual(s3.result, b"cba")

    async def test_plain_handlers_run_up_to_concurrency_at_once(self) -> None:
        # "runs up to `concurrency` handlers at once" holds for plain (thread) handlers
        # too: asyncio's default executor has at most 32 threads (min(32, cpus + 4)), so
        # tasks past that were claimed, leased, and left waiting for a thread.
        n = 40
        barrier = threading.Barrier(n, timeout=20)
        worker = Worker(self.client, "w-threads", concurrency=n, block_ms=5000)

        @worker.action("rendezvous")
        def rendezvous(ctx: ActionContext) -> bytes:
            barrier.wait()  # returns only once all n handlers are running
            return b"met"

        async with worker:
            runs = [(await self.client.action.invoke("rendezvous", b"")).run_id for _ in range(n)]
            results = [await self.wait_terminal(r, timeout=60.0) for r in runs]
        self.assertEqual({(s.status, s.result) for s in results}, {(RunStatus.COMPLETED, b"met")})

    async def test_result_the_server_cannot_take_fails_the_task(self) -> None:
        # A result over 16 MiB (SEMANTICS §8.2) is a failure of the handler's output, like
        # a result that is not JSON-serialisable: the task is failed with the reason at
        # once, not left running (no complete, no more touches) until its lease expires.
        worker = Worker(self.client, "w-big")

        @worker.action("oversize", ActionRegisterOptions(max_retries=0))
        async def oversize(ctx: ActionContext) -> bytes:
            return b"x" * (16 * 1024 * 1024 + 1)

        @worker.action("unserialisable", ActionRegisterOptions(max_retries=0))
        async def unserialisable(ctx: ActionContext) -> object:
            return object()

        async with worker:
            r1 = (await self.client.action.invoke("oversize", b"")).run_id
            r2 = (await self.client.action.invoke("unserialisable", b"")).run_id
            s1, s2 = [await self.wait_terminal(r, timeout=20.0) for r in (r1, r2)]
        self.assertEqual(s1.status, RunStatus.FAILED)
        self.assertIn("16777217", s1.error or "")
        self.assertEqual(s2.status, RunStatus.FAILED)
        self.assertIn("TypeError", s2.error or "")

    async def test_a_failure_message_over_the_server_limit_is_cut_not_lost(self) -> None:
        # The server takes fail messages of at most 64 KiB (BAD_REQUEST past it). A
        # handler error with a longer message used to be refused on every report, so the
        # task stayed leased until its lease expired and the error was lost; it is cut at
        # the limit on a character boundary (as the Go TaskWorker does) and fails at once.
        worker = Worker(self.client, "w-long-error", lease_ms=60_000)

        @worker.action("long", ActionRegisterOptions(max_retries=0, timeout_ms=60_000))
        async def long(ctx: ActionContext) -> None:
            raise NonRetryableError("\u00e9" * (40 * 1024))  # 80 KiB of 2-byte characters

        @worker.action("edge", ActionRegisterOptions(max_retries=0, timeout_ms=60_000))
        async def edge(ctx: ActionContext) -> None:
            raise NonRetryableError("e" * (64 * 1024))  # exactly at the limit: kept whole

        async with worker:
            r1 = (await self.client.action.invoke("long", b"")).run_id
            r2 = (await self.client.action.invoke("edge", b"")).run_id
            s1, s2 = [await self.wait_terminal(r, timeout=10.0) for r in (r1, r2)]
        self.assertEqual(s1.status, RunStatus.FAILED)
        self.assertEqual(s1.error, "\u00e9" * (32 * 1024))
        self.assertEqual(s2.status, RunStatus.FAILED)
        self.assertEqual(s2.error, "e" * (64 * 1024))

    async def test_counts_only_reports_the_server_accepted(self) -> None:
        # completed/failed count outcomes the server took, as Go's TaskWorker
        # Completed()/Failed() do: a report refused as stale (CONFLICT, here because
        # the handler ended its own run first) is not counted.
        worker = Worker(self.client, "w-count")

        @worker.action("ends-itself-then-returns", ActionRegisterOptions(max_retries=0))
        async def returns(ctx: ActionContext) -> bytes:
            await self.client.worker.fail("w-count", ctx.task_id, "ended here", WorkerFailOptions(retry=False))
            return b"too late"

        @worker.action("ends-itself-then-raises", ActionRegisterOptions(max_retries=0))
        async def raises(ctx: ActionContext) -> None:
            await self.client.worker.complete("w-count", ctx.task_id, b"done here")
            raise RuntimeError("too late")

        async with worker:
            r1 = (await self.client.action.invoke("ends-itself-then-returns", b"")).run_id
            r2 = (await self.client.action.invoke("ends-itself-then-raises", b"")).run_id
            s1, s2 = [await self.wait_terminal(r) for r in (r1, r2)]
            deadline = time.monotonic() + 10
            while worker.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        self.assertEqual((s1.status, s1.error), (RunStatus.FAILED, "ended here"))
        self.assertEqual((s2.status, s2.result), (RunStatus.COMPLETED, b"done here"))
        self.assertEqual((worker.completed, worker.failed), (0, 0))

    async def test_stop_drains_running_handlers(self) -> None:
        worker = Worker(self.client, "w-drain", concurrency=2)
        started = asyncio.Event()
        release = asyncio.Event()

        @worker.action("drain")
        async def drain(ctx: ActionContext) -> bytes:
            started.set()
            await release.wait()
            return b"drained"

        await worker.start()
        run = (await self.client.action.invoke("drain", b"")).run_id
        await asyncio.wait_for(started.wait(), 10)
        # The handler runs until released: stop() must wait for it, however
        # long the machine takes to get here.
        stopping = asyncio.ensure_future(worker.stop())
        await asyncio.sleep(0.3)
        try:
            self.assertFalse(stopping.done(), "stop() returned before the handler finished")
        finally:
            release.set()
        await asyncio.wait_for(stopping, 10)
        st = await self.client.action.status(run)
        self.assertEqual((st.status, st.result), (RunStatus.COMPLETED, b"drained"))
        # After stop nothing is claimed: a new run stays pending.
        run2 = (await self.client.action.invoke("drain", b"")).run_id
        await asyncio.sleep(0.3)
        self.assertEqual((await self.client.action.status(run2)).status, RunStatus.PENDING)

    async def test_stop_as_a_task_arrives_still_runs_it(self) -> None:
        # stop() may land after the server handed out a task but before the poll
        # loop took it over; the task must then be run (drained), not dropped until
        # its lease expires, which for an action without retries ends it timed out.
        worker = Worker(self.client, "w-race", concurrency=1, lease_ms=2000)
        ran: list[str] = []

        @worker.action("race", ActionRegisterOptions(max_retries=0))
        async def race(ctx: ActionContext) -> bytes:
            ran.append(ctx.task_id)
            return b"ran"

        await_task = self.client.worker.await_task
        stopper: list[asyncio.Task[None]] = []

        async def await_then_stop(*args, **kwargs):  # type: ignore[no-untyped-def]
            res = await await_task(*args, **kwargs)
            if res.tasks and not stopper:
                stopper.append(asyncio.ensure_future(worker.stop()))  # runs before the loop resumes
            return res

        self.client.worker.await_task = await_then_stop  # type: ignore[method-assign]
        await worker.start()
        run = (await self.client.action.invoke("race", b"")).run_id
        st = await self.wait_terminal(run)
        await asyncio.wait_for(stopper[0], 10)
        self.assertEqual((st.status, st.result, ran), (RunStatus.COMPLETED, b"ran", [run]))

    async def test_stop_timeout_cancels_and_fails_for_retry(self) -> None:
        worker = Worker(self.client, "w-cancel", concurrency=1)
        started = asyncio.Event()

        @worker.action("stuck")
        async def stuck(ctx: ActionContext) -> None:
            started.set()
            await asyncio.sleep(60)

        await worker.start()
        run = (await self.client.action.invoke("stuck", b"")).run_id
        await asyncio.wait_for(started.wait(), 10)
        await worker.stop(timeout=0.2)
        st = await self.client.action.status(run)
        self.assertEqual(st.status, RunStatus.PENDING)  # failed with retry, to be picked up again
        self.assertIn("worker stopped", st.error or "")

    async def test_stop_waits_at_most_the_drain_timeout(self) -> None:
        # As the Go SDK's TaskWorker: a handler that never returns does not hold
        # stop() — here the end of an `async with` — forever.
        worker = Worker(self.client, "w-drain-limit", concurrency=1, drain_timeout=0.2)
        started = asyncio.Event()

        @worker.action("hangs")
        async def hangs(ctx: ActionContext) -> None:
            started.set()
            await asyncio.Event().wait()

        await worker.start()
        run = (await self.client.action.invoke("hangs", b"")).run_id
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.wait_for(worker.__aexit__(None, None, None), 10)
        st = await self.client.action.status(run)
        self.assertEqual(st.status, RunStatus.PENDING)  # failed with retry
        self.assertIn("worker stopped", st.error or "")
        with self.assertRaises(ValidationError):
            Worker(self.client, "w-bad", drain_timeout=-1)

    async def test_run_until_stopped(self) -> None:
        worker = Worker(self.client, concurrency=1)

        @worker.action("echo")
        async def echo(ctx: ActionContext) -> bytes:
            return ctx.input

        runner = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.wait_started(), 10)
        run = (await self.client.action.invoke("echo", b"hi")).run_id
        st = await self.wait_terminal(run)
        self.assertEqual(st.result, b"hi")
        await worker.stop()
        await asyncio.wait_for(runner, 5)

    async def test_requires_a_handler(self) -> None:
        with self.assertRaises(ValidationError):
            await Worker(self.client, "empty").start()
