"""Stream operations: ``client.stream``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional, Union

from . import wire
from ._util import BytesLike, name_bytes, namespace_of, payload_bytes, seq_list, stream_id_bytes
from .errors import ValidationError
from .options import (
    StreamAppendOptions,
    StreamGroupDlqListOptions,
    StreamGroupJoinOptions,
    StreamGroupOptions,
    StreamGroupReadOptions,
    StreamInfoOptions,
    StreamReadOptions,
    StreamStartMode,
    StreamTrimOptions,
)
from .results import StreamAppendResult, StreamDeadRecord, StreamID, StreamInfo, StreamReadResult, StreamTrimResult
from .wire import OpCode, Status, Tag

if TYPE_CHECKING:
    from .client import FloClient

Offsets = Union[int, StreamID, Iterable[Union[int, StreamID]]]


# The read option each start mode takes its position from (BEGINNING: none).
_MODE_FIELD: dict[StreamStartMode, Optional[str]] = {
    StreamStartMode.BEGINNING: None,
    StreamStartMode.OFFSET: "offset",
    StreamStartMode.TIMESTAMP: "timestamp",
    StreamStartMode.TAIL: "tail",
}


def read_position(o: StreamReadOptions) -> tuple[bool, Optional[StreamID]]:
    """Map read options to (tail flag, STREAM_START id) as flo expects them.

    OFFSET → ``StreamID(0, offset)``; TIMESTAMP → ``StreamID(timestamp, 0)``;
    TAIL → the tail flag; BEGINNING → neither. Without ``start_mode`` the mode
    is the one whose field is set (``offset``, ``timestamp``, ``tail`` or the
    upstream-style ``start``). Options naming two positions — two of those
    fields, or a field that is not the ``start_mode``'s — are refused with
    :class:`ValidationError`, as the Go SDK refuses them, rather than one of
    them being read silently.
    """
    mode = o.start_mode
    if isinstance(mode, str):
        mode = StreamStartMode(mode.lower())
    given = [name for name, v in (("offset", o.offset), ("timestamp", o.timestamp), ("start", o.start)) if v is not None]
    if o.tail:
        given.append("tail")
    if len(given) > 1:
        raise ValidationError(f"stream read: {' and '.join(given)} name different positions; set one")
    if mode is not None and given and given[0] != _MODE_FIELD[mode]:
        raise ValidationError(f"stream read: {given[0]} does not go with start_mode {mode.name}")
    if mode is StreamStartMode.TAIL or o.tail:
        return True, None
    if o.start is not None:
        return False, o.start
    if mode is StreamStartMode.OFFSET or o.offset is not None:
        return False, StreamID.from_sequence(o.offset or 0)
    if mode is StreamStartMode.TIMESTAMP or o.timestamp is not None:
        return False, StreamID.from_timestamp(o.timestamp or 0)
    return False, None


class StreamClient:
    """Append-only logs with offsets, timestamp reads and consumer groups."""

    def __init__(self, client: "FloClient") -> None:
        self._client = client

    async def append(
        self, stream: str, payload: Union[str, BytesLike], options: Optional[StreamAppendOptions] = None
    ) -> StreamAppendResult:
        """Append a record; returns its offset and timestamp."""
        o = options or StreamAppendOptions()
        ts = o.timestamp if o.timestamp is not None else o.timestamp_ms
        _, reply = await self._client.request(
            OpCode.STREAM_APPEND, namespace_of(o), name_bytes(stream, "stream"), payload_bytes(payload, "payload"),
            wire.stream_append_options(o.partition_key, ts), allow=(Status.NOT_FOUND,),
        )
        return wire.decode_stream_append_result(reply)

    async def read(self, stream: str, options: Optional[StreamReadOptions] = None) -> StreamReadResult:
        """Read records in ascending offset order (see :class:`StreamStartMode`)."""
        o = options or StreamReadOptions()
        tail, start = read_position(o)
        opts = wire.stream_read_options(
            tail=tail,
            start=stream_id_bytes(start, "start position") if start is not None else None,
            end=stream_id_bytes(o.end, "end position") if o.end is not None else None,
            partition=o.partition,
            count=o.count,
            block_ms=o.block_ms,
        )
        _, reply = await self._client.request(
            OpCode.STREAM_READ, namespace_of(o), name_bytes(stream, "stream"), b"", opts,
            block_ms=o.block_ms, allow=(Status.NOT_FOUND,), idempotent=True,
        )
        return StreamReadResult(records=wire.decode_record_list(reply))

    async def info(self, stream: str, options: Optional[StreamInfoOptions] = None) -> StreamInfo:
        """Return first/last offset, record count and size (zeros for an unknown stream)."""
        _, reply = await self._client.request(
            OpCode.STREAM_INFO, namespace_of(options), name_bytes(stream, "stream"),
            allow=(Status.NOT_FOUND,), idempotent=True,
        )
        return wire.decode_stream_info(reply)

    async def trim(self, stream: str, options: Optional[StreamTrimOptions] = None) -> StreamTrimResult:
        """Drop old records by count, age or size; ``dry_run`` only reports."""
        o = options or StreamTrimOptions()
        _, reply = await self._client.request(
            OpCode.STREAM_TRIM, namespace_of(o), name_bytes(stream, "stream"), b"",
            wire.stream_trim_options(o.max_len, o.max_age_seconds, o.max_bytes, o.dry_run),
            allow=(Status.NOT_FOUND,),
        )
        return wire.decode_stream_trim_result(reply)

    async def group_join(
        self,
        stream: str,
        group: str,
        consumer: str,
        options: Optional[Union[StreamGroupJoinOptions, StreamGroupOptions]] = None,
    ) -> None:
        """Join ``consumer`` to ``group`` (creating the group at the start of the stream).

        :class:`StreamGroupJoinOptions` may also set the group's ack timeout and delivery limit.
        """
        opts = wire.group_join_options(getattr(options, "ack_timeout_ms", None), getattr(options, "max_deliver", None))
        await self._client.request(
            OpCode.STREAM_GROUP_JOIN, namespace_of(options), name_bytes(stream, "stream"),
            wire.encode_group_consumer(_req(group, "group"), _req(consumer, "consumer")), opts,
            allow=(Status.NOT_FOUND,),
        )

    async def group_leave(
        self, stream: str, group: str, consumer: str, options: Optional[StreamGroupOptions] = None
    ) -> None:
        """Remove ``consumer``; its pending records become redeliverable at once."""
        await self._client.request(
            OpCode.STREAM_GROUP_LEAVE, namespace_of(options), name_bytes(stream, "stream"),
            wire.encode_group_consumer(_req(group, "group"), _req(consumer, "consumer")), allow=(Status.NOT_FOUND,),
        )

    async def group_read(
        self, stream: str, group: str, consumer: str, options: Optional[StreamGroupReadOptions] = None
    ) -> StreamReadResult:
        """Read records for ``consumer``: expired pending entries first, then new records."""
        o = options or StreamGroupReadOptions()
        _, reply = await self._client.request(
            OpCode.STREAM_GROUP_READ, namespace_of(o), name_bytes(stream, "stream"),
            wire.encode_group_consumer(_req(group, "group"), _req(consumer, "consumer")),
            wire.group_read_options(o.count, o.block_ms, o.ack_timeout_ms, o.max_deliver),
            block_ms=o.block_ms, allow=(Status.NOT_FOUND,),
        )
        return StreamReadResult(records=wire.decode_record_list(reply))

    async def group_ack(
        self, stream: str, group: str, offsets: Offsets, options: Optional[StreamGroupOptions] = None
    ) -> int:
        """Acknowledge records for ``group``; returns how many were pending.

        Unknown offsets are ignored; an empty list sends nothing.
        """
        return await self._group_seqs(OpCode.STREAM_GROUP_ACK, stream, group, offsets, options)

    async def group_nack(
        self, stream: str, group: str, offsets: Offsets, options: Optional[StreamGroupOptions] = None
    ) -> int:
        """Make pending records redeliverable at once; returns how many (flo extension)."""
        return await self._group_seqs(OpCode.STREAM_GROUP_NACK, stream, group, offsets, options)

    async def group_touch(
        self, stream: str, group: str, offsets: Offsets, options: Optional[StreamGroupOptions] = None
    ) -> int:
        """Reset the ack deadline of pending records; returns how many (flo extension)."""
        return await self._group_seqs(OpCode.STREAM_GROUP_TOUCH, stream, group, offsets, options)

    async def group_dlq_list(
        self, stream: str, group: str, options: Optional[StreamGroupDlqListOptions] = None
    ) -> list[StreamDeadRecord]:
        """List records the group stopped delivering after too many attempts (flo extension)."""
        o = options or StreamGroupDlqListOptions()
        opts = wire.Options()
        if o.limit is not None:
            opts.u32(Tag.LIMIT, o.limit)
        _, reply = await self._client.request(
            OpCode.STREAM_GROUP_DLQ_LIST, namespace_of(o), name_bytes(stream, "stream"),
            wire.encode_group_name(_req(group, "group")), opts.build(), allow=(Status.NOT_FOUND,), idempotent=True,
        )
        return wire.decode_dead_records(reply)

    async def group_dlq_requeue(
        self, stream: str, group: str, offsets: Offsets, options: Optional[StreamGroupOptions] = None
    ) -> int:
        """Move dead-lettered records back to the group, redeliverable at once; returns how many
        (flo extension)."""
        return await self._group_seqs(OpCode.STREAM_GROUP_DLQ_REQUEUE, stream, group, offsets, options)

    async def _group_seqs(self, op: int, stream: str, group: str, offsets: Offsets, options: object) -> int:
        s = seq_list(offsets)
        name = name_bytes(stream, "stream")
        g = _req(group, "group")
        if not s:
            return 0
        _, reply = await self._client.request(
            op, namespace_of(options), name, wire.encode_group_ack(g, s), allow=(Status.NOT_FOUND,)
        )
        return wire.decode_u64(reply)


def _req(value: str, what: str) -> str:
    if not value:
        raise ValidationError(f"{what} must not be empty")
    return value
