"""Worker operations (``client.worker``) and the high-level :class:`Worker`.

``client.worker`` is the raw protocol: register, await_task, complete, fail,
touch, list. :class:`Worker` builds a task runner on top of it::

    worker = Worker(client, "resizer-1", concurrency=4)

    @worker.action("resize-image")
    async def resize(ctx: ActionContext) -> bytes:
        return do_resize(ctx.input)

    await worker.start()
    ...
    await worker.stop()          # stops polling, lets running handlers finish (30 s at most)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
import os
import random
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Sequence, Union

from . import wire
from ._util import BytesLike, cut_utf8, name_bytes, namespace_of, payload_bytes, to_bytes
from .errors import (
    ConflictError,
    ConnectionFailedError,
    FloError,
    NonRetryableError,
    NotFoundError,
    OperationTimeoutError,
    ValidationError,
)
from .options import (
    ActionRegisterOptions,
    ActionType,
    WorkerAwaitOptions,
    WorkerCompleteOptions,
    WorkerFailOptions,
    WorkerListOptions,
    WorkerRegisterOptions,
    WorkerTouchOptions,
)
from .results import TaskAssignment, WorkerAwaitResult, WorkerList
from .wire import OpCode

if TYPE_CHECKING:
    from .client import FloClient

logger = logging.getLogger("flo.worker")


class WorkerClient:
    """Low-level worker calls. Task types are action names; a task ID is a run ID."""

    def __init__(self, client: "FloClient") -> None:
        self._client = client

    async def register(
        self, worker_id: str, task_types: Sequence[str], options: Optional[WorkerRegisterOptions] = None
    ) -> None:
        """Create or replace the worker record for ``worker_id``."""
        await self._client.request(
            OpCode.WORKER_REGISTER, namespace_of(options), name_bytes(worker_id, "worker id"),
            wire.encode_worker_register(list(task_types), getattr(options, "max_concurrency", None)),
        )

    async def await_task(
        self, worker_id: str, task_types: Sequence[str], options: Optional[WorkerAwaitOptions] = None
    ) -> WorkerAwaitResult:
        """Claim the best claimable run of any of ``task_types``.

        ``block_ms`` None returns at once; 0 waits without limit; N waits at most
        N ms. ``result.task`` is ``None`` when nothing was claimed.
        """
        o = options or WorkerAwaitOptions()
        if isinstance(task_types, str):
            task_types = [task_types]
        _, reply = await self._client.request(
            OpCode.WORKER_AWAIT, namespace_of(o), name_bytes(worker_id, "worker id"),
            wire.encode_task_types(list(task_types)), wire.worker_await_options(o.block_ms, o.timeout_ms, o.count),
            block_ms=o.block_ms,
        )
        if o.count is not None:
            tasks = wire.decode_task_batch(reply)
            return WorkerAwaitResult(task=tasks[0] if tasks else None, tasks=tasks)
        task = wire.decode_task_assignment(reply)
        return WorkerAwaitResult(task=task, tasks=[task] if task else [])

    async def touch(self, worker_id: str, task_id: str, options: Optional[WorkerTouchOptions] = None) -> None:
        """Extend the task's lease to now + ``extend_ms`` (ConflictError if this worker does not hold it)."""
        o = options or WorkerTouchOptions()
        await self._client.request(
            OpCode.WORKER_TOUCH, namespace_of(o), name_bytes(worker_id, "worker id"),
            wire.encode_worker_touch(task_id, o.extend_ms),
        )

    async def complete(
        self,
        worker_id: str,
        task_id: str,
        result: Union[str, BytesLike] = b"",
        options: Optional[WorkerCompleteOptions] = None,
    ) -> None:
        """Record the run's result; the first terminal report wins."""
        await self._client.request(
            OpCode.WORKER_COMPLETE, namespace_of(options), name_bytes(worker_id, "worker id"),
            wire.encode_worker_complete(task_id, payload_bytes(result, "result")),
        )

    async def fail(
        self, worker_id: str, task_id: str, error: str = "", options: Optional[WorkerFailOptions] = None
    ) -> None:
        """Fail the current attempt; with ``retry`` (the default) the run is retried if attempts remain."""
        o = options or WorkerFailOptions()
        await self._client.request(
            OpCode.WORKER_FAIL, namespace_of(o), name_bytes(worker_id, "worker id"),
            wire.encode_worker_fail(task_id, str(error)), wire.worker_fail_options(o.retry),
        )

    async def list(self, options: Optional[WorkerListOptions] = None) -> WorkerList:
        """Return the namespace's registered workers."""
        o = options or WorkerListOptions()
        _, reply = await self._client.request(
            OpCode.WORKER_LIST, namespace_of(o), to_bytes(o.prefix or "", "prefix"),
            wire.encode_worker_list_request(o.limit, o.cursor), idempotent=True,
        )
        return wire.decode_worker_list(reply)


# --- High-level worker ---------------------------------------------------------


class ActionContext:
    """What a :class:`Worker` handler receives: the task plus lease control."""

    def __init__(self, worker: "Worker", task: TaskAssignment) -> None:
        self.worker = worker
        self.task = task

    @property
    def task_id(self) -> str:
        """The run ID."""
        return self.task.task_id

    @property
    def run_id(self) -> str:
        """The run ID (same as ``task_id``)."""
        return self.task.task_id

    @property
    def action_name(self) -> str:
        """The action (task type) being run."""
        return self.task.action_name

    @property
    def input(self) -> bytes:
        """The invoke input."""
        return self.task.input

    @property
    def payload(self) -> bytes:
        """Upstream name of ``input``."""
        return self.task.input

    @property
    def attempt(self) -> int:
        """Attempt number, from 1."""
        return self.task.attempt

    def json(self) -> Any:
        """Decode the input as JSON."""
        return json.loads(self.task.input or b"null")

    @staticmethod
    def to_bytes(value: Any) -> bytes:
        """Encode a result the way the Worker does (bytes, str, None, or JSON)."""
        return encode_output(value)

    async def touch(self, extend_ms: Optional[int] = None) -> None:
        """Extend the lease now (the Worker also does this on its own while the handler runs)."""
        await self.worker.client.worker.touch(
            self.worker.worker_id,
            self.task.task_id,
            WorkerTouchOptions(extend_ms=extend_ms or self.worker.lease_ms, namespace=self.worker.namespace),
        )


Handler = Callable[[ActionContext], Union[Awaitable[Any], Any]]


def encode_output(value: Any) -> bytes:
    """Turn a handler's return value into result bytes: bytes as-is, str as UTF-8, None as empty, else JSON."""
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


#: How long ``Worker.stop()`` waits for running handlers unless told otherwise
#: (the Go SDK's ``TaskWorkerOptions.DrainTimeout`` default).
DEFAULT_DRAIN_TIMEOUT = 30.0


class Worker:
    """Runs handlers for actions: registers, long-polls, executes, reports.

    * ``@worker.action(name)`` registers a handler (async or plain function
      taking an :class:`ActionContext`). On start each action is registered
      (type USER, with the options given to the decorator or the defaults),
      then the worker itself.
    * Up to ``concurrency`` handlers run at once; each poll claims as many
      tasks as there are free slots (one AWAIT with flo's COUNT extension).
    * While a handler runs its lease is extended every ``lease_ms / 3`` ms
      (claims are made with a ``lease_ms`` lease).
    * A handler's return value completes the task; an exception fails it with
      retry, unless it is a :class:`NonRetryableError`.
    * ``stop()`` stops claiming, cancels the parked poll (the server cancels it
      without handing out a task) and waits for running handlers to finish, at
      most ``drain_timeout`` seconds (default 30, as the Go SDK's TaskWorker;
      ``None`` waits as long as they run); handlers still running then are
      cancelled and their tasks failed with retry.
    """

    def __init__(
        self,
        client: "FloClient",
        worker_id: Optional[str] = None,
        *,
        concurrency: int = 10,
        namespace: Optional[str] = None,
        block_ms: int = 30000,
        lease_ms: int = 30000,
        register_actions: bool = True,
        drain_timeout: Optional[float] = DEFAULT_DRAIN_TIMEOUT,
    ) -> None:
        if concurrency < 1:
            raise ValidationError("concurrency must be >= 1")
        if drain_timeout is not None and drain_timeout < 0:
            raise ValidationError("drain_timeout must be >= 0 (or None to wait without limit)")
        self.client = client
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{random.randrange(1 << 32):08x}"
        self.concurrency = concurrency
        self.namespace = namespace
        self.block_ms = block_ms
        self.lease_ms = lease_ms
        self.register_actions = register_actions
        self.drain_timeout = drain_timeout
        self._handlers: dict[str, Handler] = {}
        self._action_options: dict[str, Optional[ActionRegisterOptions]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._run_task: Optional[asyncio.Task[None]] = None
        self._poll: Optional[asyncio.Task[WorkerAwaitResult]] = None
        self._stopping: Optional[asyncio.Event] = None
        self._started: Optional[asyncio.Event] = None
        # Plain handlers run here: asyncio's default executor may have fewer threads
        # than `concurrency`, which would leave claimed tasks waiting for one.
        self._executor: Optional[ThreadPoolExecutor] = None
        # Reports the server accepted (as Go's TaskWorker Completed()/Failed()):
        # a complete or fail refused as stale, or never delivered, is not counted.
        self.completed = 0
        self.failed = 0

    # --- handler registration ---

    def action(self, name: str, options: Optional[ActionRegisterOptions] = None) -> Callable[[Handler], Handler]:
        """Decorator: handle tasks of action ``name``."""

        def deco(fn: Handler) -> Handler:
            self.register_handler(name, fn, options)
            return fn

        return deco

    def register_handler(self, name: str, fn: Handler, options: Optional[ActionRegisterOptions] = None) -> None:
        """Handle tasks of action ``name`` with ``fn`` (what the decorator calls)."""
        if not name:
            raise ValidationError("action name must not be empty")
        self._handlers[name] = fn
        self._action_options[name] = options

    @property
    def actions(self) -> list[str]:
        """Names of the handled actions."""
        return list(self._handlers)

    @property
    def in_flight(self) -> int:
        """Handlers running now."""
        return len(self._running)

    # --- lifecycle ---

    async def start(self) -> None:
        """Register actions and the worker, then run the poll loop in the background."""
        if self._run_task is not None and not self._run_task.done():
            return
        await self._setup()
        self._run_task = asyncio.get_running_loop().create_task(self._loop())
        if self._started is None:
            self._started = asyncio.Event()
        self._started.set()

    async def run(self) -> None:
        """Register, then poll and execute until :meth:`stop` is called."""
        await self.start()
        assert self._run_task is not None
        await asyncio.shield(self._run_task)

    async def stop(self, timeout: Optional[float] = None) -> None:
        """Stop claiming tasks and wait for running handlers.

        Handlers still running after ``timeout`` seconds (default: the worker's
        ``drain_timeout``, 30 s unless set) are cancelled; their tasks are failed
        with retry so another worker picks them up.
        """
        if timeout is None:
            timeout = self.drain_timeout
        if self._stopping is None:
            self._stopping = asyncio.Event()
        self._stopping.set()
        if self._run_task is not None:
            # The loop is either parked in await_task or waiting for a free slot:
            # cancel it (which also cancels the poll and closes its connection).
            self._run_task.cancel()
            await asyncio.wait([self._run_task])
        if self._running:
            done, pending = await asyncio.wait(set(self._running), timeout=timeout)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # threads of cancelled handlers finish on their own
            self._executor = None

    async def __aenter__(self) -> "Worker":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- internals ---

    async def _setup(self) -> None:
        if not self._handlers:
            raise ValidationError("worker has no actions; add one with @worker.action(name)")
        if self._stopping is None or self._stopping.is_set():
            self._stopping = asyncio.Event()
        if self.register_actions:
            for name, opts in self._action_options.items():
                o = opts or ActionRegisterOptions()
                if o.namespace is None and self.namespace is not None:
                    o = ActionRegisterOptions(o.timeout_ms, o.max_retries, o.description, self.namespace)
                await self.client.action.register(name, ActionType.USER, o)
        await self.client.worker.register(
            self.worker_id, self.actions,
            WorkerRegisterOptions(namespace=self.namespace, max_concurrency=self.concurrency),
        )

    async def wait_started(self) -> None:
        """Return once the actions and the worker are registered and polling has begun."""
        if self._started is None:
            self._started = asyncio.Event()
        await self._started.wait()

    async def _loop(self) -> None:
        try:
            await self._poll_loop()
        except asyncio.CancelledError:
            if self._stopping is None or not self._stopping.is_set():
                raise

    async def _poll_loop(self) -> None:
        assert self._stopping is not None
        stopping = self._stopping
        slots = asyncio.Semaphore(self.concurrency)
        backoff = 0.05
        while not stopping.is_set():
            await slots.acquire()
            free = 1
            while not slots.locked():  # claim as many tasks as there are free slots
                await slots.acquire()
                free += 1
            if stopping.is_set():
                _release(slots, free)
                break
            opts = WorkerAwaitOptions(
                block_ms=self.block_ms, timeout_ms=self.lease_ms, namespace=self.namespace,
                count=free if free > 1 else None,
            )
            self._poll = asyncio.get_running_loop().create_task(
                self.client.worker.await_task(self.worker_id, self.actions, opts)
            )
            try:
                result = await self._take_poll(self._poll, stopping)
            except asyncio.CancelledError:
                _release(slots, free)
                if stopping.is_set():
                    break
                raise
            except FloError as e:
                _release(slots, free)
                logger.warning("worker %s: await_task failed: %s; retrying", self.worker_id, e)
                try:
                    await asyncio.wait_for(stopping.wait(), backoff * (0.5 + random.random()))
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)
                continue
            finally:
                self._poll = None
            backoff = 0.05
            _release(slots, free - len(result.tasks))
            for task in result.tasks:
                t = asyncio.get_running_loop().create_task(self._execute(task, slots))
                self._running.add(t)
                t.add_done_callback(self._running.discard)

    @staticmethod
    async def _take_poll(
        poll: "asyncio.Task[WorkerAwaitResult]", stopping: asyncio.Event
    ) -> WorkerAwaitResult:
        """Wait for the poll. When stop() cancels the loop, cancel the poll (which makes
        the server drop the parked wait) unless it has already finished: tasks the
        server has handed out are then returned, to be run and drained, not dropped
        until their leases expire."""
        try:
            return await asyncio.shield(poll)
        except asyncio.CancelledError:
            if not poll.done():
                poll.cancel()
                await asyncio.wait([poll])
            if stopping.is_set() and not poll.cancelled() and poll.exception() is None:
                return poll.result()
            raise

    async def _execute(self, task: TaskAssignment, slots: asyncio.Semaphore) -> None:
        keepalive = asyncio.get_running_loop().create_task(self._keep_alive(task))
        try:
            handler = self._handlers.get(task.action_name)
            try:
                if handler is None:
                    raise NonRetryableError(f"no handler for action {task.action_name!r}")
                ctx = ActionContext(self, task)
                if inspect.iscoroutinefunction(handler):
                    out = await handler(ctx)
                else:
                    if self._executor is None:
                        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="flo-worker")
                    call = functools.partial(contextvars.copy_context().run, handler, ctx)
                    out = await asyncio.get_running_loop().run_in_executor(self._executor, call)
                    if inspect.isawaitable(out):
                        out = await out
                output = payload_bytes(encode_output(out), "result")
            except asyncio.CancelledError:
                await asyncio.shield(self._report_fail(task, "worker stopped before the handler finished", True))
                raise
            except NonRetryableError as e:
                await self._report_fail(task, str(e) or type(e).__name__, False)
            except Exception as e:  # noqa: BLE001 - any handler failure fails the task
                await self._report_fail(task, f"{type(e).__name__}: {e}", True)
            else:
                if await self._report(
                    lambda: self.client.worker.complete(
                        self.worker_id, task.task_id, output, WorkerCompleteOptions(namespace=self.namespace)
                    ),
                    task,
                    "complete",
                ):
                    self.completed += 1
        finally:
            keepalive.cancel()
            slots.release()

    async def _report_fail(self, task: TaskAssignment, error: str, retry: bool) -> None:
        error = cut_utf8(error, wire.MAX_ERROR_BYTES)
        if await self._report(
            lambda: self.client.worker.fail(
                self.worker_id, task.task_id, error, WorkerFailOptions(retry=retry, namespace=self.namespace)
            ),
            task,
            "fail",
        ):
            self.failed += 1

    async def _report(self, call: Callable[[], Awaitable[None]], task: TaskAssignment, what: str) -> bool:
        """Send a terminal report, retrying transport failures a few times; a server
        verdict is final. Returns whether the server accepted the report."""
        for attempt in range(5):
            try:
                await call()
                return True
            except (ConnectionFailedError, OperationTimeoutError) as e:
                if attempt == 4:
                    break
                logger.warning("worker %s: %s of task %s failed (%s); retrying", self.worker_id, what, task.task_id, e)
                await asyncio.sleep(0.1 * (2**attempt) * (0.5 + random.random()))
            except FloError as e:
                logger.warning("worker %s: %s of task %s rejected: %s", self.worker_id, what, task.task_id, e)
                return False
        logger.error("worker %s: giving up on %s of task %s", self.worker_id, what, task.task_id)
        return False

    async def _keep_alive(self, task: TaskAssignment) -> None:
        interval = max(self.lease_ms / 3000.0, 0.05)
        opts = WorkerTouchOptions(extend_ms=self.lease_ms, namespace=self.namespace)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.client.worker.touch(self.worker_id, task.task_id, opts)
            except (ConflictError, NotFoundError) as e:
                logger.warning("worker %s: lost the lease of task %s: %s", self.worker_id, task.task_id, e)
                return
            except FloError as e:
                logger.warning("worker %s: touch of task %s failed: %s", self.worker_id, task.task_id, e)


def _release(slots: asyncio.Semaphore, n: int) -> None:
    for _ in range(n):
        slots.release()


__all__ = ["WorkerClient", "Worker", "ActionContext", "Handler", "encode_output"]
