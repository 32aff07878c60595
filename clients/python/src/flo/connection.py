"""One pipelined TCP connection to a Flo server.

The server answers the requests of a connection strictly in the order it
received them, so a connection keeps a FIFO of pending requests: a caller
writes its frame and appends its future in one synchronous step (so the FIFO
order is the byte order on the wire), and a single reader task pops the head
of the FIFO for every response frame it reads. A caller that gives up (timeout
or cancellation) leaves its entry in place; the reader discards the late reply
when it arrives, so it can never be mistaken for the answer to a later request.

Invariants:

1. ``_pending`` holds exactly the requests written and not yet answered, in
   write order.
2. Each entry holds one slot of ``_slots`` (the bounded pending queue), released
   exactly once: by the reader when the reply arrives, or by ``_fail``.
3. Once ``_closed`` is set, no new request is accepted and every pending future
   is completed with an exception.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from dataclasses import dataclass
from typing import Optional

from . import wire
from .errors import (
    ConnectionFailedError,
    FloError,
    InvalidChecksumError,
    OperationTimeoutError,
    ProtocolError,
    error_for_status,
)

#: Bytes buffered in the transport above which a writer waits for the socket to drain.
_DRAIN_ABOVE = 256 * 1024


@dataclass
class _Pending:
    request_id: int
    future: "asyncio.Future[tuple[int, bytes]]"


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
        self.label = label
        self._max_pending = max_pending
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._read_task: Optional[asyncio.Task[None]] = None
        self._pending: collections.deque[_Pending] = collections.deque()
        self._slots: Optional[asyncio.Semaphore] = None
        self._drain_lock: Optional[asyncio.Lock] = None
        self._closed = False
        self._close_reason = "connection closed"
        #: Number of responses received; lets callers tell a fresh failure from one after traffic.
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
        try:
            if timeout is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            else:
                self._reader, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), timeout
                )
        except asyncio.TimeoutError:
            self._closed = True
            raise ConnectionFailedError(
                f"connect to {self.host}:{self.port} timed out after {timeout:.3f}s"
            ) from None
        except OSError as e:
            self._closed = True
            raise ConnectionFailedError(f"connect to {self.host}:{self.port}: {e}") from e
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._slots = asyncio.Semaphore(self._max_pending)
        self._drain_lock = asyncio.Lock()
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())

    async def request(self, request_id: int, frame: bytes, timeout: Optional[float]) -> tuple[int, bytes]:
        """Send ``frame`` and return ``(status, payload)`` of its reply.

        ``timeout`` is in seconds; ``None`` waits as long as the connection lives.
        """
        if self._closed or self._writer is None or self._slots is None:
            raise ConnectionFailedError(self._close_reason)
        await self._slots.acquire()
        if self._closed:
            self._slots.release()
            raise ConnectionFailedError(self._close_reason)
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        # Append and write with no await in between: FIFO order == wire order.
        self._pending.append(_Pending(request_id, fut))
        writer = self._writer
        try:
            writer.write(frame)
            transport = writer.transport
            if transport.get_write_buffer_size() > _DRAIN_ABOVE:
                assert self._drain_lock is not None
                async with self._drain_lock:
                    await writer.drain()
        except (OSError, RuntimeError) as e:
            self._fail(ConnectionFailedError(f"write to {self.host}:{self.port}: {e}"))
        try:
            if timeout is None:
                return await fut
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise OperationTimeoutError(
                f"no reply to request {request_id} from {self.host}:{self.port} within {timeout:.3f}s"
            ) from None

    async def _read_loop(self) -> None:
        assert self._reader is not None
        reader = self._reader
        try:
            while True:
                head = await reader.readexactly(wire.HEADER_SIZE)
                header = wire.decode_header(head)
                if header.length > wire.MAX_FRAME_PAYLOAD:
                    raise ProtocolError(f"response of {header.length} bytes exceeds the frame limit")
                payload = await reader.readexactly(header.length) if header.length else b""
                if not self._pending:
                    raise ProtocolError(f"unsolicited response (request id {header.request_id})")
                entry = self._pending[0]
                if not wire.header_crc_ok(head, payload):
                    self._complete_head(exc=InvalidChecksumError(
                        f"response to request {entry.request_id} failed its CRC32 check"
                    ))
                    # The bytes are untrustworthy; start over on a new connection.
                    self._fail(ConnectionFailedError("connection dropped after a corrupted response"))
                    return
                if header.request_id != entry.request_id:
                    if header.request_id == 0 and header.code != wire.Status.OK:
                        # The server rejected a malformed frame and is closing.
                        err = error_for_status(header.code, payload)
                        self._complete_head(exc=err)
                        self._fail(ConnectionFailedError(f"server closed the connection: {err}"))
                        return
                    raise ProtocolError(
                        f"response for request {header.request_id} arrived while {entry.request_id} was expected"
                    )
                self.responses += 1
                self._complete_head(result=(header.code, payload))
        except asyncio.IncompleteReadError:
            self._fail(ConnectionFailedError(f"connection to {self.host}:{self.port} closed by the server"))
        except (OSError, ConnectionError) as e:
            self._fail(ConnectionFailedError(f"connection to {self.host}:{self.port} lost: {e}"))
        except FloError as e:
            self._fail(e)
        except asyncio.CancelledError:
            self._fail(ConnectionFailedError(self._close_reason))
            raise

    def _complete_head(
        self, result: Optional[tuple[int, bytes]] = None, exc: Optional[BaseException] = None
    ) -> None:
        entry = self._pending.popleft()
        assert self._slots is not None
        self._slots.release()
        if entry.future.done():
            return  # the caller gave up; drop the late reply
        if exc is not None:
            entry.future.set_exception(exc)
        else:
            entry.future.set_result(result)  # type: ignore[arg-type]

    def _fail(self, exc: BaseException) -> None:
        """Break the connection and fail every pending request with a copy of ``exc``."""
        if not self._closed:
            self._closed = True
            self._close_reason = str(exc) or self._close_reason
        if self._writer is not None:
            self._writer.close()
        while self._pending:
            entry = self._pending.popleft()
            if self._slots is not None:
                self._slots.release()
            if not entry.future.done():
                try:
                    copy = type(exc)(*exc.args)
                except Exception:  # pragma: no cover - exotic exception signatures
                    copy = exc
                entry.future.set_exception(copy)

    def abort(self, reason: str = "connection closed") -> None:
        """Close at once (synchronously); pending requests fail with ConnectionFailedError."""
        self._close_reason = reason
        self._fail(ConnectionFailedError(reason))
        if self._read_task is not None and not self._read_task.done():
            self._read_task.cancel()

    async def close(self, reason: str = "connection closed") -> None:
        """Close and wait for the reader task to finish."""
        self.abort(reason)
        if self._read_task is not None:
            await asyncio.wait([self._read_task])
        if self._writer is not None:
            try:
                await self._writer.wait_closed()
            except (OSError, ConnectionError, asyncio.CancelledError, RuntimeError):
                pass
