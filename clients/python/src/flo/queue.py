"""Queue operations: ``client.queue``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional, Union

from . import wire
from ._util import BytesLike, cut_utf8, name_bytes, namespace_of, payload_bytes, seq_list
from .options import (
    AckOptions,
    DequeueOptions,
    DlqDeleteOptions,
    DlqListOptions,
    DlqRequeueOptions,
    EnqueueOptions,
    NackOptions,
    PeekOptions,
    QueueStatsOptions,
    QueueTouchOptions,
)
from .results import DequeueResult, QueueStats
from .wire import OpCode, Tag

if TYPE_CHECKING:
    from .client import FloClient

Seqs = Union[int, Iterable[int]]


class QueueClient:
    """Priority queues with leases (visibility timeouts), retries and a dead-letter queue."""

    def __init__(self, client: "FloClient") -> None:
        self._client = client

    async def enqueue(
        self, queue: str, payload: Union[str, BytesLike], options: Optional[EnqueueOptions] = None
    ) -> int:
        """Add a message and return its seq (the original seq for a held dedup key)."""
        o = options or EnqueueOptions()
        _, reply = await self._client.request(
            OpCode.QUEUE_ENQUEUE, namespace_of(o), name_bytes(queue, "queue"), payload_bytes(payload, "payload"),
            wire.enqueue_options(o.priority, o.delay_ms, o.dedup_key),
        )
        return wire.decode_seq(reply)

    async def dequeue(self, queue: str, count: int = 1, options: Optional[DequeueOptions] = None) -> DequeueResult:
        """Lease up to ``count`` ready messages (highest priority first).

        Each returned message is invisible to others until acked, nacked or
        its visibility timeout passes. ``block_ms`` long-polls.
        """
        o = options or DequeueOptions()
        opts = wire.dequeue_options(count, o.visibility_timeout_ms, o.block_ms) + _detail(o.detailed)
        acks = seq_list(o.ack or [])
        _, reply = await self._client.request(
            OpCode.QUEUE_DEQUEUE, namespace_of(o), name_bytes(queue, "queue"),
            wire.encode_seq_list(acks) if acks else b"", opts, block_ms=o.block_ms,
        )
        return DequeueResult(messages=wire.decode_message_list(reply, o.detailed))

    async def ack(self, queue: str, seqs: Seqs, options: Optional[AckOptions] = None) -> None:
        """Remove messages for good. Unknown seqs are ignored; an empty list sends nothing."""
        await self._seq_op(OpCode.QUEUE_COMPLETE, queue, seqs, options, b"")

    async def nack(self, queue: str, seqs: Seqs, options: Optional[NackOptions] = None) -> None:
        """Give leased messages back for redelivery, or dead-letter them with ``to_dlq``."""
        o = options or NackOptions()
        opts = wire.Options()
        if o.to_dlq:
            opts.u8(Tag.SEND_TO_DLQ, 1)
        if o.delay_ms is not None:
            opts.u64(Tag.DELAY_MS, o.delay_ms)
        if o.reason is not None:
            # Cut, not refused (as the Go SDK does): a refused nack would leave
            # the messages leased until their visibility timeout.
            opts.raw(Tag.NACK_REASON, cut_utf8(o.reason, wire.MAX_OPTION_BYTES))
        await self._seq_op(OpCode.QUEUE_FAIL, queue, seqs, o, opts.build())

    async def touch(self, queue: str, seqs: Seqs, options: Optional[QueueTouchOptions] = None) -> None:
        """Renew leases: each deadline becomes now + the message's visibility timeout."""
        await self._seq_op(OpCode.QUEUE_TOUCH, queue, seqs, options, b"")

    async def dlq_list(self, queue: str, options: Optional[DlqListOptions] = None) -> DequeueResult:
        """List dead-lettered messages, oldest first."""
        o = options or DlqListOptions()
        _, reply = await self._client.request(
            OpCode.QUEUE_DLQ_LIST, namespace_of(o), name_bytes(queue, "queue"), b"",
            wire.Options().u32(Tag.LIMIT, wire.clamp_u32(o.limit)).build() + _detail(o.detailed), idempotent=True,
        )
        return DequeueResult(messages=wire.decode_message_list(reply, o.detailed))

    async def dlq_requeue(self, queue: str, seqs: Seqs, options: Optional[DlqRequeueOptions] = None) -> None:
        """Move dead-lettered messages back to ready (same seq, delivery count reset)."""
        await self._seq_op(OpCode.QUEUE_DLQ_REQUEUE, queue, seqs, options, b"")

    async def peek(self, queue: str, count: int = 1, options: Optional[PeekOptions] = None) -> DequeueResult:
        """Return up to ``count`` ready messages without leasing them."""
        detailed = bool(getattr(options, "detailed", False))
        _, reply = await self._client.request(
            OpCode.QUEUE_PEEK, namespace_of(options), name_bytes(queue, "queue"), b"",
            wire.Options().u32(Tag.COUNT, wire.clamp_u32(count)).build() + _detail(detailed), idempotent=True,
        )
        return DequeueResult(messages=wire.decode_message_list(reply, detailed))

    async def dlq_delete(self, queue: str, seqs: Seqs, options: Optional[DlqDeleteOptions] = None) -> int:
        """Delete dead-lettered messages for good; returns how many were deleted (flo extension)."""
        s = seq_list(seqs)
        name = name_bytes(queue, "queue")
        if not s:
            return 0
        _, reply = await self._client.request(
            OpCode.QUEUE_DLQ_DELETE, namespace_of(options), name, wire.encode_seq_list(s)
        )
        return wire.decode_u64(reply)

    async def dlq_purge(self, queue: str, options: Optional[DlqDeleteOptions] = None) -> int:
        """Delete every dead-lettered message of the queue; returns how many (flo extension)."""
        _, reply = await self._client.request(
            OpCode.QUEUE_DLQ_DELETE, namespace_of(options), name_bytes(queue, "queue"), b"",
            wire.Options().flag(Tag.DLQ_ALL).build(),
        )
        return wire.decode_u64(reply)

    async def stats(self, queue: str, options: Optional[QueueStatsOptions] = None) -> QueueStats:
        """Return the queue's depth by state: ready, delayed, in flight, DLQ (flo extension)."""
        _, reply = await self._client.request(
            OpCode.QUEUE_STATS, namespace_of(options), name_bytes(queue, "queue"), idempotent=True
        )
        return wire.decode_queue_stats(reply)

    async def _seq_op(self, op: int, queue: str, seqs: Seqs, options: object, opts: bytes) -> None:
        s = seq_list(seqs)
        name = name_bytes(queue, "queue")
        if not s:
            return
        await self._client.request(op, namespace_of(options), name, wire.encode_seq_list(s), opts)


def _detail(detailed: bool) -> bytes:
    return wire.Options().flag(Tag.MESSAGE_DETAIL).build() if detailed else b""
