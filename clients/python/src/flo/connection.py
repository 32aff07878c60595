"""One pipelined TCP connection to a Flo server.

The server answers the requests of a connection strictly in the order it
received them, so a connection keeps a FIFO of pending requests: a caller
queues its frame and appends its future in one synchronous step (so the FIFO
order is the byte order on the wire), and the protocol's ``data_received``
callback pops the head of the FIFO for every response frame it parses. The
echoed request id is checked against the head as well.

A caller that gives up (timeout or cancellation) leaves its entry in place; the
late reply is dropped when it arrives, so it can never be mistaken for the
answer to a later request. Frames queued in one event-loop iteration go out in
a single ``send``, and one timer per connection enforces every deadline.

Invariants:

1. ``_pending`` holds exactly the requests written and not yet answered, in
   write order; its length never exceeds ``max_pending`` (callers wait for room).
2. Once ``_closed`` is set no request is accepted, and every pending future has
   been completed with an exception.
"""

from __future__ import annotations

import asyncio
import collections
import struct
from typing import Optional

from . import wire
from .errors import (
    ConnectionFailedError,
    FloError,
    InvalidChecksumError,
    InvalidMagicError,
    OperationTimeoutError,
    ProtocolError,
    UnsupportedVersionError,
    error_for_status,
)

#: Bytes queued for the socket above which writers wait for it to drain.
_DRAIN_ABOVE = 256 * 1024
_HEADER = struct.Struct("<IIQIBBBB")


class _Pending:
    __slots__ = ("request_id", "future", "deadline", "timeout")

    def __init__(self, request_id: int, future: "asyncio.Future[tuple[int, bytes]]") -> None:
        self.request_id = request_id
        self.future = future
        self.deadline: Optional[float] = None
        self.timeout = 0.0


class _Protocol(asyncio.Protocol):
    """Feeds transport events to its Connection."""

    def __init__(self, conn: "Connection") -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        self.conn._on_data(data)

    def eof_received(self) -> bool:
        self.conn._fail(ConnectionFailedError(f"connection to {self.conn.addr} closed by the server"))
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        reason = f"connection to {self.conn.addr} lost: {exc}" if exc else f"connection to {self.conn.addr} closed"
        self.conn._fail(ConnectionFailedError(reason))
        self.conn._on_lost()

    def pause_writing(self) -> None:
        self.conn._paused = True

    def resume_writing(self) -> None:
        self.conn._resume()


class Connection:
    """A single TCP connection carrying pipelined request/response pairs.

    Safe to use from many tasks of one event loop at once. ``request`` raises
    :class:`ConnectionFailedError` if the connection is or becomes broken, and
    :class:`OperationTimeoutError` when the reply misses its deadline (the
    connection stays usable in that case).
    """

    def __init__(self, host: str, port: int, *, max_pending: int = 1024, label: str = "main") -> None:
        self.host = host
        self.port = port
        self.addr = f"{host}:{port}"
        self.label = label
        self._max_pending = max(1, max_pending)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._transport: Optional[asyncio.Transport] = None
        self._pending: collections.deque[_Pending] = collections.deque()
        self._room: collections.deque[asyncio.Future[None]] = collections.deque()
        self._buf = bytearray()
        self._closed = False
        self._close_reason = "connection closed"
        self._wbuf: list[bytes] = []
        self._wbuf_bytes = 0
        self._flush_scheduled = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._timer: Optional[asyncio.TimerHandle] = None
        self._lost: Optional[asyncio.Future[None]] = None
        #: Responses received so far; lets callers tell a fresh failure from one after traffic.
        self.responses = 0

    @property
    def closed(self) -> bool:
        """True once the connection is broken or closed; it is never reopened."""
        return self._closed

    @property
    def pending(self) -> int:
        """Requests written and not yet answered."""
        return len(self._pending)

    async def open(self, timeout: Optional[float]) -> None:
        """Connect, or raise :class:`ConnectionFailedError`."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._lost = loop.create_future()
        try:
            connect = loop.create_connection(lambda: _Protocol(self), self.host, self.port)
            transport, _ = await (connect if timeout is None else asyncio.wait_for(connect, timeout))
        except asyncio.TimeoutError:
            self._closed = True
            raise ConnectionFailedError(f"connect to {self.addr} timed out after {timeout:.3f}s") from None
        except OSError as e:
            self._closed = True
            raise ConnectionFailedError(f"connect to {self.addr}: {e}") from e
        self._transport = transport  # type: ignore[assignment]

    async def request(self, request_id: int, frame: bytes, timeout: Optional[float]) -> tuple[int, bytes]:
        """Send ``frame`` and return ``(status, payload)`` of its reply.

        ``timeout`` is in seconds; ``None`` waits as long as the connection lives.
        """
        while len(self._pending) >= self._max_pending and not self._closed:
            waiter = self._loop.create_future()  # type: ignore[union-attr]
            self._room.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._make_room()  # we were given room and cannot use it: pass it on
                raise
        if self._closed or self._transport is None:
            raise ConnectionFailedError(self._close_reason)
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        entry = _Pending(request_id, fut)
        # Queue the frame and its future with no await in between: FIFO order == wire order.
        self._pending.append(entry)
        self._wbuf.append(frame)
        self._wbuf_bytes += len(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if timeout is not None:
            entry.deadline = loop.time() + timeout
            entry.timeout = timeout
            if self._timer is None:
                self._timer = loop.call_at(entry.deadline, self._on_timer)
        if self._wbuf_bytes > _DRAIN_ABOVE or self._paused:
            self._flush()
            await self._drain(fut)
        return await fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._wbuf:
            return
        data = b"".join(self._wbuf) if len(self._wbuf) > 1 else self._wbuf[0]
        self._wbuf.clear()
        self._wbuf_bytes = 0
        if self._closed or self._transport is None:
            return
        try:
            self._transport.write(data)
        except (OSError, RuntimeError) as e:
            self._fail(ConnectionFailedError(f"write to {self.addr}: {e}"))

    async def _drain(self, fut: "asyncio.Future[tuple[int, bytes]]") -> None:
        """Wait until the socket takes more data, or until ``fut`` is done (its deadline
        passed or the connection failed): a server that stops reading must not hold a
        caller past its timeout."""
        if not self._paused or self._closed or fut.done():
            return
        waiter = self._loop.create_future()  # type: ignore[union-attr]
        self._drain_waiters.append(waiter)

        def wake(_: object) -> None:
            if not waiter.done():
                waiter.set_result(None)

        fut.add_done_callback(wake)
        try:
            await waiter
        finally:
            fut.remove_done_callback(wake)

    def _resume(self) -> None:
        self._paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def _on_timer(self) -> None:
        """Expire every pending request past its deadline; re-arm for the next one.

        One timer per connection instead of one per request: it fires at the
        earliest deadline, and replies that arrived in time just leave it to
        find nothing due and re-arm.
        """
        self._timer = None
        if self._closed or self._loop is None:
            return
        now = self._loop.time()
        nxt: Optional[float] = None
        for e in self._pending:
            if e.deadline is None or e.future.done():
                continue
            if e.deadline <= now:
                e.future.set_exception(
                    OperationTimeoutError(f"no reply to request {e.request_id} from {self.addr} within {e.timeout:.3f}s")
                )
            elif nxt is None or e.deadline < nxt:
                nxt = e.deadline
        if nxt is not None:
            self._timer = self._loop.call_at(nxt, self._on_timer)

    def _on_data(self, data: bytes) -> None:
        """Parse every complete frame in the receive buffer and hand each to its waiter."""
        buf = self._buf
        buf += data
        try:
            while len(buf) >= wire.HEADER_SIZE and not self._closed:
                magic, length, request_id, crc, version, code, _, _ = _HEADER.unpack_from(buf)
                if magic != wire.MAGIC:
                    raise InvalidMagicError(f"bad frame magic 0x{magic:08x} from {self.addr}")
                if version != wire.VERSION:
                    raise UnsupportedVersionError(f"unsupported protocol version {version} from {self.addr}")
                if length > wire.MAX_FRAME_PAYLOAD:
                    raise ProtocolError(f"response of {length} bytes exceeds the frame limit")
                end = wire.HEADER_SIZE + length
                if len(buf) < end:
                    return
                head = bytes(buf[: wire.HEADER_SIZE])
                payload = bytes(buf[wire.HEADER_SIZE : end])
                del buf[:end]
                self._on_frame(head, request_id, crc, code, payload)
        except FloError as e:
            self._fail(e)

    def _on_frame(self, head: bytes, request_id: int, crc: int, code: int, payload: bytes) -> None:
        if not self._pending:
            raise ProtocolError(f"unsolicited response (request id {request_id}) from {self.addr}")
        entry = self._pending[0]
        if wire.frame_crc(head[:16], head[20:24], payload) != crc:
            self._complete_head(exc=InvalidChecksumError(f"response to request {entry.request_id} failed its CRC32 check"))
            # The bytes are untrustworthy; start over on a new connection.
            self._fail(ConnectionFailedError("connection dropped after a corrupted response"))
            return
        if request_id != entry.request_id:
            if request_id == 0 and code != wire.Status.OK:
                # The server rejected a malformed frame and is closing the connection.
                err = error_for_status(code, payload)
                self._complete_head(exc=err)
                self._fail(ConnectionFailedError(f"server closed the connection: {err}"))
                return
            raise ProtocolError(f"response for request {request_id} arrived while {entry.request_id} was expected")
        self.responses += 1
        self._complete_head(result=(code, payload))

    def _complete_head(self, result: Optional[tuple[int, bytes]] = None, exc: Optional[BaseException] = None) -> None:
        entry = self._pending.popleft()
        self._make_room()
        if entry.future.done():
            return  # the caller gave up; drop the late reply
        if exc is not None:
            entry.future.set_exception(exc)
        else:
            entry.future.set_result(result)  # type: ignore[arg-type]

    def _make_room(self) -> None:
        while self._room:
            w = self._room.popleft()
            if not w.done():
                w.set_result(None)
                return

    def _fail(self, exc: BaseException) -> None:
        """Break the connection and fail every pending request with a copy of ``exc``."""
        if not self._closed:
            self._closed = True
            self._close_reason = str(exc) or self._close_reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
        while self._pending:
            entry = self._pending.popleft()
            if not entry.future.done():
                try:
                    copy = type(exc)(*exc.args)
                except Exception:  # pragma: no cover - exotic exception signatures
                    copy = exc
                entry.future.set_exception(copy)
        for w in [*self._room, *self._drain_waiters]:
            if not w.done():
                w.set_result(None)
        self._room.clear()
        self._drain_waiters = []

    def _on_lost(self) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def abort(self, reason: str = "connection closed") -> None:
        """Close at once (synchronously); pending requests fail with ConnectionFailedError."""
        if not self._closed:
            self._close_reason = reason
        if self._loop is not None and self._loop.is_closed():
            self._close_orphan()
            return
        self._fail(ConnectionFailedError(reason))

    def _close_orphan(self) -> None:
        """Release the socket of a connection whose event loop is already closed.

        The transport API needs a running loop, so the socket is closed directly
        (selector transports keep it in ``_sock``).
        """
        self._closed = True
        self._pending.clear()
        transport, self._transport = self._transport, None
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            sock.close()
            try:
                transport._sock = None  # type: ignore[union-attr]
            except AttributeError:  # pragma: no cover - other transport types
                pass

    async def close(self, reason: str = "connection closed") -> None:
        """Close and wait until the transport is gone."""
        self.abort(reason)
        if self._lost is not None and self._transport is not None:
            await asyncio.wait([self._lost], timeout=5)
