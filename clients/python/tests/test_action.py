"""client.action and client.worker (the raw calls) against a real server."""

from __future__ import annotations

import asyncio
import time

from .harness import ServerTestCase
from flo import (
    ActionInvokeOptions,
    ActionListOptions,
    ActionRegisterOptions,
    ActionStatusOptions,
    ActionType,
    BadRequestError,
    ConflictError,
    NotFoundError,
    RunStatus,
    WorkerAwaitOptions,
    WorkerFailOptions,
    WorkerListOptions,
    WorkerRegisterOptions,
    WorkerTouchOptions,
)


class ActionTest(ServerTestCase):
    client_timeout_ms = 1000

    async def wait_status(self, run_id: str, want: str, timeout: float = 10.0) -> object:
        deadline = time.monotonic() + timeout
        while True:
            st = await self.client.action.status(run_id)
            if st.status == want:
                return st
            self.assertLess(time.monotonic(), deadline, f"run {run_id} stuck in {st.status}, wanted {want}")
            await asyncio.sleep(0.05)

    async def test_register_list_delete(self) -> None:
        a = self.client.action
        await a.register("process-image", ActionType.USER, ActionRegisterOptions(timeout_ms=60000, max_retries=3))
        await a.register("process-video", options=ActionRegisterOptions(description="videos"))
        await a.register("resize")
        names = [x.name for x in await a.list()]
        self.assertEqual(names, ["process-image", "process-video", "resize"])
        listed = await a.list(ActionListOptions(prefix="process-"))
        self.assertEqual([x.name for x in listed], ["process-image", "process-video"])
        self.assertEqual(listed[0].action_type, ActionType.USER)
        if listed[0].timeout_ms is not None:  # the server includes the settings
            self.assertEqual((listed[0].timeout_ms, listed[0].max_retries), (60000, 3))
            self.assertEqual(listed[1].description, "videos")
        self.assertEqual(len(await a.list(ActionListOptions(limit=1))), 1)
        await a.delete("process-image")
        await a.delete("process-image")  # idempotent
        self.assertEqual([x.name for x in await a.list()], ["process-video", "resize"])
        with self.assertRaises(NotFoundError):
            await a.invoke("process-image", b"x")

    async def test_list_pages(self) -> None:
        for i in range(5):
            await self.client.action.register(f"page-{i}")
        names: list[str] = []
        page = await self.client.action.list(ActionListOptions(limit=2))
        names += [a.name for a in page]
        while page.has_more:
            page = await self.client.action.list(ActionListOptions(limit=2, cursor=page.cursor))
            names += [a.name for a in page]
        self.assertEqual(names, [f"page-{i}" for i in range(5)])
        for i in range(3):
            await self.client.worker.register(f"pw-{i}", ["page-0"], WorkerRegisterOptions(max_concurrency=7))
        workers = await self.client.worker.list(WorkerListOptions(limit=2))
        self.assertTrue(workers.has_more)
        rest = await self.client.worker.list(WorkerListOptions(limit=2, cursor=workers.cursor))
        self.assertEqual([w.worker_id for w in [*workers, *rest]], ["pw-0", "pw-1", "pw-2"])
        self.assertEqual({w.max_concurrency for w in [*workers, *rest]}, {7})

    async def test_list_limit_out_of_range_is_clamped_not_raised(self) -> None:
        # SEMANTICS §5.2: a list is capped at 1000, so any limit is clamped, never a
        # struct.error (which is not even a FloError).
        await self.client.action.register("clamp")
        await self.client.worker.register("clamp-w", ["clamp"])
        for limit in (2**40, -1):
            self.assertEqual([a.name for a in await self.client.action.list(ActionListOptions(limit=limit))], ["clamp"])
            self.assertEqual(
                [w.worker_id for w in await self.client.worker.list(WorkerListOptions(limit=limit))], ["clamp-w"]
            )

    async def test_status_waits_for_the_run_to_end(self) -> None:
        await self.client.action.register("slow-end")
        run_id = (await self.client.action.invoke("slow-end", b"in")).run_id
        st = await self.client.action.status(run_id, ActionStatusOptions(block_ms=200))
        self.assertEqual(st.status, RunStatus.PENDING)  # nothing happened: the run as it is
        waiter = asyncio.ensure_future(self.client.action.status(run_id, ActionStatusOptions(block_ms=0)))
        task = (await self.client.worker.await_task("w", ["slow-end"])).task
        assert task is not None
        await asyncio.sleep(0.1)
        self.assertFalse(waiter.done(), "a waiting status answered before the run ended")
        await self.client.worker.complete("w", task.task_id, b"out")
        st = await asyncio.wait_for(waiter, 10)
        self.assertEqual((st.status, st.result), (RunStatus.COMPLETED, b"out"))

    async def test_register_rejects_wasm(self) -> None:
        with self.assertRaises(BadRequestError):
            await self.client.action.register("w", ActionType.WASM)

    async def test_invoke_status_complete(self) -> None:
        a, w = self.client.action, self.client.worker
        await a.register("job")
        inv = await a.invoke("job", b'{"n": 1}', ActionInvokeOptions(priority=10))
        self.assertTrue(inv.run_id)
        st = await a.status(inv.run_id)
        self.assertEqual((st.run_id, st.status, st.result, st.attempt), (inv.run_id, RunStatus.PENDING, None, 0))
        self.assertGreater(st.created_at, 1_600_000_000_000)
        self.assertIsNone(st.started_at)
        await w.register("w1", ["job"])
        res = await w.await_task("w1", ["job"])
        task = res.task
        assert task is not None
        self.assertEqual((task.task_id, task.action_name, task.input, task.attempt), (inv.run_id, "job", b'{"n": 1}', 1))
        self.assertEqual((task.task_type, task.payload), ("job", b'{"n": 1}'))
        self.assertGreater(task.created_at, 0)
        st = await a.status(inv.run_id)
        self.assertEqual(st.status, RunStatus.RUNNING)
        self.assertIsNotNone(st.started_at)
        await w.touch("w1", task.task_id, WorkerTouchOptions(extend_ms=10000))
        with self.assertRaises(ConflictError):
            await w.touch("intruder", task.task_id)
        await w.complete("w1", task.task_id, b"done!")
        st = await a.status(inv.run_id, ActionStatusOptions())
        self.assertEqual((st.status, st.result, st.error), (RunStatus.COMPLETED, b"done!", None))
        self.assertTrue(st.is_terminal)
        self.assertIsNotNone(st.completed_at)
        await w.complete("w1", task.task_id, b"again")  # already completed: OK, first result kept
        self.assertEqual((await a.status(inv.run_id)).result, b"done!")
        with self.assertRaises(NotFoundError):
            await a.status("no-such-run")
        with self.assertRaises(NotFoundError):
            await w.complete("w1", "no-such-run", b"")

    async def test_idempotency_and_priority(self) -> None:
        a, w = self.client.action, self.client.worker
        await a.register("idem")
        r1 = await a.invoke("idem", b"1", ActionInvokeOptions(idempotency_key="order-123"))
        r2 = await a.invoke("idem", b"2", ActionInvokeOptions(idempotency_key="order-123"))
        self.assertEqual(r1.run_id, r2.run_id)
        low = await a.invoke("idem", b"low", ActionInvokeOptions(priority=1))
        high = await a.invoke("idem", b"high", ActionInvokeOptions(priority=200))
        order = []
        for _ in range(3):
            t = (await w.await_task("w", ["idem"])).task
            assert t is not None
            order.append(t.task_id)
        self.assertEqual(order, [high.run_id, r1.run_id, low.run_id])

    async def test_fail_retry_and_terminal(self) -> None:
        a, w = self.client.action, self.client.worker
        await a.register("flaky", options=ActionRegisterOptions(max_retries=1))
        run = (await a.invoke("flaky", b"")).run_id
        t = (await w.await_task("w", ["flaky"])).task
        assert t is not None
        with self.assertRaises(ConflictError):
            await w.fail("someone-else", t.task_id, "stale")
        await w.fail("w", t.task_id, "boom")  # retry=True by default
        st = await a.status(run)
        self.assertEqual((st.status, st.error), (RunStatus.PENDING, "boom"))
        # Backoff of ~1 s, then the second (last) attempt.
        t = (await w.await_task("w", ["flaky"], WorkerAwaitOptions(block_ms=5000))).task
        assert t is not None
        self.assertEqual(t.attempt, 2)
        await w.fail("w", t.task_id, "boom again", WorkerFailOptions(retry=True))
        st = await a.status(run)
        self.assertEqual((st.status, st.error, st.attempt), (RunStatus.FAILED, "boom again", 2))
        with self.assertRaises(ConflictError):
            await w.complete("w", t.task_id, b"too late")

    async def test_fail_without_retry(self) -> None:
        a, w = self.client.action, self.client.worker
        await a.register("once")
        run = (await a.invoke("once", b"")).run_id
        t = (await w.await_task("w", ["once"])).task
        assert t is not None
        await w.fail("w", t.task_id, "fatal", WorkerFailOptions(retry=False))
        self.assertEqual((await a.status(run)).status, RunStatus.FAILED)

    async def test_await_blocking_and_timeout(self) -> None:
        a, w = self.client.action, self.client.worker
        await a.register("slow")
        self.assertIsNone((await w.await_task("w", ["slow"])).task)  # no block_ms: no wait
        t0 = time.monotonic()
        self.assertIsNone((await w.await_task("w", ["slow"], WorkerAwaitOptions(block_ms=1200))).task)
        self.assertGreaterEqual(time.monotonic() - t0, 1.1)

        async def later() -> str:
            await asyncio.sleep(1.2)
            return (await a.invoke("slow", b"in")).run_id

        inv = asyncio.create_task(later())
        res = await w.await_task("w", ["slow"], WorkerAwaitOptions(block_ms=0, timeout_ms=500))
        run_id = await inv
        assert res.task is not None
        self.assertEqual(res.task.task_id, run_id)
        # The claim used a 500 ms lease: without a touch it expires and the run is retried.
        await self.wait_status(run_id, RunStatus.PENDING, timeout=5)
        with self.assertRaises(BadRequestError):
            await w.await_task("w", [])

    async def test_invoke_delay_and_worker_prefix(self) -> None:
        a, w = self.client.action, self.client.worker
        await a.register("delayed")
        run = (await a.invoke("delayed", b"", ActionInvokeOptions(delay_ms=500))).run_id
        self.assertIsNone((await w.await_task("w", ["delayed"])).task)
        t0 = time.monotonic()
        task = (await w.await_task("w", ["delayed"], WorkerAwaitOptions(block_ms=5000))).task
        assert task is not None
        self.assertEqual(task.task_id, run)
        self.assertGreater(time.monotonic() - t0, 0.2)
        await w.register("alpha-1", ["delayed"])
        await w.register("beta-1", ["delayed"])
        self.assertEqual([x.worker_id for x in await w.list(WorkerListOptions(prefix="alpha"))], ["alpha-1"])

    async def test_await_batch(self) -> None:
        a, w = self.client.action, self.client.worker
        await a.register("batch")
        runs = [(await a.invoke("batch", f"{i}".encode())).run_id for i in range(3)]
        res = await w.await_task("w", ["batch"], WorkerAwaitOptions(count=2))
        self.assertEqual([t.task_id for t in res.tasks], runs[:2])
        self.assertEqual(res.task, res.tasks[0])
        res = await w.await_task("w", ["batch"], WorkerAwaitOptions(count=5, block_ms=1000))
        self.assertEqual([t.task_id for t in res.tasks], runs[2:])
        empty = await w.await_task("w", ["batch"], WorkerAwaitOptions(count=5))
        self.assertEqual((empty.task, empty.tasks), (None, []))

    async def test_await_batch_count_is_clamped_not_refused(self) -> None:
        # A count is clamped, never refused (SEMANTICS D26, docs/limits.md): 0 and a
        # negative count claim one task, as Go's AwaitBatch does, and a count past u32
        # is served as the limit (100).
        a, w = self.client.action, self.client.worker
        await a.register("clamp")
        runs = [(await a.invoke("clamp", f"{i}".encode())).run_id for i in range(3)]
        for count in (0, -3):
            res = await w.await_task("w", ["clamp"], WorkerAwaitOptions(count=count))
            self.assertEqual(len(res.tasks), 1, f"count={count}")
        res = await w.await_task("w", ["clamp"], WorkerAwaitOptions(count=2**40))
        self.assertEqual([t.task_id for t in res.tasks], runs[2:])

    async def test_worker_register_and_list(self) -> None:
        w = self.client.worker
        await w.register("worker-1", ["process-image", "resize-image"])
        await w.register("worker-2", ["x"])
        workers = await w.list()
        by_id = {x.worker_id: x for x in workers}
        self.assertEqual(set(by_id), {"worker-1", "worker-2"})
        self.assertEqual(sorted(by_id["worker-1"].task_types), ["process-image", "resize-image"])
        self.assertEqual(by_id["worker-1"].status, "active")
        self.assertGreater(by_id["worker-1"].last_heartbeat, 0)
        self.assertEqual(len(await w.list(WorkerListOptions(limit=1))), 1)
        self.assertEqual(await w.list(WorkerListOptions(namespace=self.ns + "-none")), [])

    async def test_namespaces_are_isolated(self) -> None:
        a, w = self.client.action, self.client.worker
        other = self.ns + "-o"
        await a.register("iso", options=ActionRegisterOptions(namespace=other))
        with self.assertRaises(NotFoundError):
            await a.invoke("iso", b"")
        run = (await a.invoke("iso", b"", ActionInvokeOptions(namespace=other))).run_id
        with self.assertRaises(NotFoundError):
            await a.status(run)
        self.assertEqual((await a.status(run, ActionStatusOptions(namespace=other))).status, RunStatus.PENDING)
        self.assertIsNone((await w.await_task("w", ["iso"])).task)
        t = (await w.await_task("w", ["iso"], WorkerAwaitOptions(namespace=other))).task
        assert t is not None
        self.assertEqual(t.task_id, run)
        self.assertEqual([x.name for x in await a.list(ActionListOptions(namespace=other))], ["iso"])


class SizeLimitTest(ServerTestCase):
    """SEMANTICS §8.2: a value, payload, action input or result may be up to 16 MiB."""

    client_timeout_ms = 30000

    async def test_input_and_result_of_16_mib(self) -> None:
        limit = 16 * 1024 * 1024
        big = b"i" * limit
        await self.client.action.register("big", ActionType.USER)
        run = await self.client.action.invoke("big", big, ActionInvokeOptions(idempotency_key="k" * 256))
        task = (await self.client.worker.await_task("w", ["big"])).task
        assert task is not None
        self.assertEqual((task.task_id, len(task.input)), (run.run_id, limit))
        del task
        await self.client.worker.complete("w", run.run_id, b"r" * limit)
        st = await self.client.action.status(run.run_id)
        self.assertEqual((st.status, len(st.result or b"")), (RunStatus.COMPLETED, limit))
        # One byte more is refused, as it is for every other value.
        for call in (
            self.client.action.invoke("big", big + b"!"),
            self.client.worker.complete("w", run.run_id, big + b"!"),
            self.client.kv.put("k", big + b"!"),
            self.client.queue.enqueue("q", big + b"!"),
            self.client.stream.append("s", big + b"!"),
        ):
            with self.assertRaises(BadRequestError):
                await call
