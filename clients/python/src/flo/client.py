"""FloClient: the entry point of the SDK.

A client owns one pipelined *main* connection for ordinary calls and a small
pool of *blocking* connections. Every call that carries ``block_ms`` (a blocking
get, dequeue, read, group read or await_task) borrows a connection of its own
for the duration of the wait, so a parked call never delays the other calls of
the client; after the reply the connection goes back to the pool. A blocking
call that is cancelled or times out closes its connection, which makes the
server cancel the parked request instead of handing data to a caller that is
gone.

Deadlines: an ordinary call must be answered within ``timeout_ms``. A blocking
call with ``block_ms = N > 0`` gets ``N + max(timeout_ms, 2000)`` ms; with
``block_ms = 0`` (wait forever) it has no client deadline at all. The client therefore never
times out while the server is legitimately waiting.

Connections are made lazily: the first call connects if ``connect()`` was not
called. A broken connection is replaced on the next call; read-only calls that
fail because the connection broke before any reply are retried once on a new
connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Optional

from . import wire
from .action import ActionClient
from .connection import Connection
from .errors import ConnectionFailedError, ValidationError, error_for_status
from .kv import KVClient
from .queue import QueueClient
from .stream import StreamClient
from .worker import WorkerClient

logger = logging.getLogger("flo")
logger.addHandler(logging.NullHandler())

DEFAULT_PORT = 9000

#: Least extra time a blocking call gets beyond block_ms for the reply to arrive:
#: a busy machine must not turn a legitimate wait into a client-side timeout.
_BLOCKING_MARGIN_MS = 2000


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``"host:port"`` (or ``"[v6]:port"``, or a bare host) into host and port."""
    ep = endpoint.strip()
    for scheme in ("flo://", "tcp://"):
        if ep.startswith(scheme):
            ep = ep[len(scheme) :]
    if not ep:
        raise ValidationError("empty endpoint")
    if ep.startswith("["):
        host, _, rest = ep[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif ep.count(":") == 1:
        host, port = ep.split(":")
    else:
        host, port = ep, ""
    if not port:
        return host or "127.0.0.1", DEFAULT_PORT
    try:
        p = int(port)
    except ValueError:
        raise ValidationError(f"bad port in endpoint {endpoint!r}") from None
    if not 0 < p < 65536:
        raise ValidationError(f"bad port in endpoint {endpoint!r}")
    return host or "127.0.0.1", p


class FloClient:
    """An asyncio client for one Flo server.

    Usable with ``async with``, with explicit ``connect()``/``close()``, or with
    neither (it connects on first use). One client may be shared by any number
    of tasks of one event loop.

    Args:
        endpoint: ``"host:port"`` of the server.
        namespace: default namespace of every call (each call may override it).
        timeout_ms: connect timeout and deadline of every non-blocking call.
        debug: log every request and reply at DEBUG level on the ``flo`` logger.
        max_idle_blocking: blocking connections kept open for reuse.
        max_pending: requests in flight on the main connection before callers wait.
    """

    def __init__(
        self,
        endpoint: str,
        namespace: str = "default",
        timeout_ms: int = 5000,
        debug: bool = False,
        *,
        max_idle_blocking: int = 8,
        max_pending: int = 1024,
    ) -> None:
        self.endpoint = endpoint
        self.host, self.port = parse_endpoint(endpoint)
        self.namespace = namespace
        self.timeout_ms = timeout_ms
        self.debug = debug
        self.max_idle_blocking = max_idle_blocking
        self.max_pending = max_pending
        if debug and logger.level == logging.NOTSET:
            logger.setLevel(logging.DEBUG)

        self.kv = KVClient(self)
        self.queue = QueueClient(self)
        self.stream = StreamClient(self)
        self.action = ActionClient(self)
        self.worker = WorkerClient(self)

        self._ids = itertools.count(1)
        self._main: Optional[Connection] = None
        self._connect_lock: Optional[asyncio.Lock] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._idle: list[Connection] = []
        self._busy: set[Connection] = set()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"FloClient({self.endpoint!r}, namespace={self.namespace!r}, {state})"

    # --- lifecycle ------------------------------------------------------------

    async def connect(self) -> None:
        """Open the main connection now (otherwise the first call does).

        Raises :class:`ConnectionFailedError` if the server cannot be reached
        within ``timeout_ms``.
        """
        await self._main_connection()

    async def close(self) -> None:
        """Close every connection. Calls in flight fail with ConnectionFailedError.

        The client may be used again afterwards; it reconnects on the next call.
        """
        conns = [c for c in [self._main, *self._idle, *self._busy] if c is not None]
        self._main = None
        self._idle.clear()
        self._busy.clear()
        for c in conns:
            await c.close("client closed")

    async def __aenter__(self) -> "FloClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """True while the main connection is open."""
        return self._main is not None and not self._main.closed

    async def ping(self) -> None:
        """Round-trip a PING; raises if the server does not answer."""
        await self.request(wire.OpCode.PING, None, idempotent=True)

    # --- plumbing -------------------------------------------------------------

    @property
    def _timeout_s(self) -> Optional[float]:
        return self.timeout_ms / 1000.0 if self.timeout_ms and self.timeout_ms > 0 else None

    def _check_loop(self) -> None:
        """Forget connections made in another event loop (e.g. a second ``asyncio.run``)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None:
            for c in [self._main, *self._idle, *self._busy]:
                if c is not None:
                    try:
                        c.abort("event loop changed")
                    except RuntimeError:  # pragma: no cover - the old loop is still running elsewhere
                        pass
            self._main = None
            self._idle.clear()
            self._busy.clear()
        self._loop = loop
        self._connect_lock = asyncio.Lock()

    async def _main_connection(self) -> Connection:
        conn = self._main
        if conn is not None and not conn.closed and self._loop is asyncio.get_running_loop():
            return conn
        self._check_loop()
        assert self._connect_lock is not None
        async with self._connect_lock:
            conn = self._main
            if conn is not None and not conn.closed:
                return conn
            conn = Connection(self.host, self.port, max_pending=self.max_pending, label="main")
            await conn.open(self._timeout_s)
            if self.debug:
                logger.debug("flo: connected to %s:%d", self.host, self.port)
            self._main = conn
            return conn

    async def _borrow_blocking(self) -> Connection:
        self._check_loop()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                self._busy.add(conn)
                return conn
        conn = Connection(self.host, self.port, max_pending=1, label="blocking")
        await conn.open(self._timeout_s)
        self._busy.add(conn)
        return conn

    def _return_blocking(self, conn: Connection, reusable: bool) -> None:
        self._busy.discard(conn)
        if reusable and not conn.closed and len(self._idle) < self.max_idle_blocking:
            self._idle.append(conn)
        else:
            conn.abort("blocking call abandoned")

    async def request(
        self,
        opcode: int,
        namespace: Optional[str],
        key: bytes = b"",
        value: bytes = b"",
        options: bytes = b"",
        *,
        block_ms: Optional[int] = None,
        allow: tuple[int, ...] = (),
        idempotent: bool = False,
    ) -> tuple[int, bytes]:
        """Send one request and return ``(status, payload)``.

        Statuses other than OK and those in ``allow`` raise the matching
        :class:`ServerError`. With ``block_ms`` set the call runs on a dedicated
        connection and its deadline is extended as described in the module doc.
        This is the low-level escape hatch used by the primitive clients.
        """
        ns = self.namespace if namespace is None else namespace
        attempts = 2 if idempotent else 1
        for attempt in range(attempts):
            request_id = next(self._ids)
            frame = wire.encode_request(request_id, opcode, ns, key, value, options)
            if self.debug:
                logger.debug(
                    "flo -> #%d %s ns=%r key=%r value=%dB opts=%s",
                    request_id, wire.op_name(opcode), ns, _short(key), len(value), options.hex(),
                )
            try:
                if block_ms is None:
                    conn = self._main  # fast path: no coroutine when already connected
                    if conn is None or conn.closed or self._loop is not asyncio.get_running_loop():
                        conn = await self._main_connection()
                    seen = conn.responses
                    try:
                        status, payload = await conn.request(request_id, frame, self._timeout_s)
                    except ConnectionFailedError:
                        # Retry only when the connection died without answering anything
                        # since we wrote, which is what a server restart looks like.
                        if attempt + 1 < attempts and conn.responses == seen:
                            continue
                        raise
                else:
                    status, payload = await self._blocking_request(request_id, frame, block_ms, idempotent)
            except Exception as e:
                if self.debug:
                    logger.debug("flo <- #%d %s failed: %s: %s", request_id, wire.op_name(opcode), type(e).__name__, e)
                raise
            if self.debug:
                logger.debug(
                    "flo <- #%d %s %s %dB%s",
                    request_id, wire.op_name(opcode), wire.status_name(status), len(payload),
                    f" {payload[:200]!r}" if status != wire.Status.OK else "",
                )
            if status != wire.Status.OK and status not in allow:
                raise error_for_status(status, payload)
            return status, payload
        raise AssertionError("unreachable")  # pragma: no cover

    async def _blocking_request(
        self, request_id: int, frame: bytes, block_ms: int, idempotent: bool
    ) -> tuple[int, bytes]:
        if block_ms < 0:
            raise ValidationError(f"block_ms must be >= 0, got {block_ms}")
        if block_ms == 0:
            deadline: Optional[float] = None  # the server waits as long as it takes
        else:
            deadline = (block_ms + max(self.timeout_ms, _BLOCKING_MARGIN_MS)) / 1000.0
        while True:
            pooled = bool(self._idle)
            conn = await self._borrow_blocking()
            reusable = False
            try:
                result = await conn.request(request_id, frame, deadline)
                reusable = True
                return result
            except ConnectionFailedError:
                # An idle pooled connection may have died unnoticed (a server restart):
                # a read-only call is safe to send again on a fresh one.
                if idempotent and pooled:
                    continue
                raise
            finally:
                self._return_blocking(conn, reusable)


def _short(key: bytes) -> bytes:
    return key if len(key) <= 64 else key[:61] + b"..."
