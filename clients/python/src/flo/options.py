"""Per-call option dataclasses.

Every options class has a ``namespace`` field: ``None`` uses the client's
default namespace, a string overrides it for that one call. Fields left at
their defaults are not sent, so the server applies its own defaults.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Sequence

from .results import StreamID


@dataclass
class NamespaceOptions:
    """Options for calls whose only setting is the namespace."""

    namespace: Optional[str] = None


# --- KV ---------------------------------------------------------------------


@dataclass
class GetOptions:
    """Options for ``kv.get``.

    ``block_ms``: ``None`` returns at once; ``0`` waits until the key exists
    with no time limit; ``N`` waits at most N ms. The client never times out a
    call while the server is legitimately waiting.
    """

    block_ms: Optional[int] = None
    namespace: Optional[str] = None


@dataclass
class PutOptions:
    """Options for ``kv.put``: expiry and write conditions."""

    ttl_seconds: Optional[int] = None
    cas_version: Optional[int] = None
    if_not_exists: bool = False
    if_exists: bool = False
    namespace: Optional[str] = None


@dataclass
class DeleteOptions(NamespaceOptions):
    """Options for ``kv.delete``."""


@dataclass
class ScanOptions:
    """Options for ``kv.scan``. ``cursor`` is the opaque ``ScanResult.cursor`` of the previous page."""

    cursor: Optional[bytes] = None
    limit: Optional[int] = None
    keys_only: bool = False
    namespace: Optional[str] = None


@dataclass
class HistoryOptions:
    """Options for ``kv.history``: at most ``limit`` versions (server default 10, max 64)."""

    limit: Optional[int] = None
    namespace: Optional[str] = None


# --- Queues -----------------------------------------------------------------


@dataclass
class EnqueueOptions:
    """Options for ``queue.enqueue``. Priority 0-255, higher is more urgent."""

    priority: int = 0
    delay_ms: Optional[int] = None
    dedup_key: Optional[str] = None
    namespace: Optional[str] = None


@dataclass
class DequeueOptions:
    """Options for ``queue.dequeue``; ``block_ms`` follows the rules of :class:`GetOptions`.

    ``detailed`` asks for each message's priority, delivery count, enqueue time
    and last failure reason (a flo extension). ``ack`` lists seqs to acknowledge
    before dequeuing, in the same request and durable write (a flo extension):
    a consumer that finished a message and wants the next pays one round trip.
    """

    block_ms: Optional[int] = None
    visibility_timeout_ms: Optional[int] = None
    namespace: Optional[str] = None
    detailed: bool = False
    ack: Optional[Sequence[int]] = None


@dataclass
class AckOptions(NamespaceOptions):
    """Options for ``queue.ack``."""


@dataclass
class NackOptions:
    """Options for ``queue.nack``: ``to_dlq`` dead-letters the messages at once.

    flo extensions: ``delay_ms`` makes a retried message ready again only after
    that delay; ``reason`` is kept as the message's last failure reason, shown
    by detailed listings (cut to 255 UTF-8 bytes at a character boundary).
    """

    to_dlq: bool = False
    namespace: Optional[str] = None
    reason: Optional[str] = None
    delay_ms: Optional[int] = None


@dataclass
class DlqListOptions:
    """Options for ``queue.dlq_list``; ``detailed`` as in :class:`DequeueOptions`."""

    limit: int = 100
    namespace: Optional[str] = None
    detailed: bool = False


@dataclass
class DlqRequeueOptions(NamespaceOptions):
    """Options for ``queue.dlq_requeue``."""


@dataclass
class PeekOptions:
    """Options for ``queue.peek``; ``detailed`` as in :class:`DequeueOptions`."""

    namespace: Optional[str] = None
    detailed: bool = False


@dataclass
class DlqDeleteOptions(NamespaceOptions):
    """Options for ``queue.dlq_delete`` and ``queue.dlq_purge``."""


@dataclass
class QueueTouchOptions(NamespaceOptions):
    """Options for ``queue.touch``."""


@dataclass
class QueueStatsOptions(NamespaceOptions):
    """Options for ``queue.stats``."""


# --- Streams ----------------------------------------------------------------


class StreamStartMode(enum.Enum):
    """Where ``stream.read`` starts.

    BEGINNING (the default) reads from the first retained record; OFFSET from
    the first record with offset >= ``offset``; TIMESTAMP from the earliest
    record whose timestamp is >= ``timestamp``; TAIL returns the newest records
    (or, when blocking, only records appended after the call).
    """

    BEGINNING = "beginning"
    OFFSET = "offset"
    TAIL = "tail"
    TIMESTAMP = "timestamp"


@dataclass
class StreamAppendOptions:
    """Options for ``stream.append``.

    ``partition_key`` is stored with the record and returned as
    ``StreamRecord.partition_key``; ``timestamp`` (Unix ms, > 0) replaces the
    server clock. ``timestamp_ms`` is accepted as an alias of ``timestamp``.
    """

    partition_key: Optional[str] = None
    timestamp: Optional[int] = None
    namespace: Optional[str] = None
    timestamp_ms: Optional[int] = None


@dataclass
class StreamReadOptions:
    """Options for ``stream.read``.

    Without ``start_mode`` the mode is inferred: OFFSET when ``offset`` is set,
    TIMESTAMP when ``timestamp`` is set, otherwise BEGINNING. The upstream-style
    fields ``start``/``end`` (:class:`StreamID`), ``tail`` and ``partition`` are
    accepted too.
    """

    start_mode: Optional[StreamStartMode] = None
    offset: Optional[int] = None
    timestamp: Optional[int] = None
    count: Optional[int] = None
    block_ms: Optional[int] = None
    namespace: Optional[str] = None
    start: Optional[StreamID] = None
    end: Optional[StreamID] = None
    tail: bool = False
    partition: Optional[int] = None


@dataclass
class StreamGroupReadOptions:
    """Options for ``stream.group_read`` (server default count 10).

    ``ack_timeout_ms`` and ``max_deliver`` change the group's settings, as in
    :class:`StreamGroupJoinOptions`.
    """

    count: Optional[int] = None
    block_ms: Optional[int] = None
    namespace: Optional[str] = None
    ack_timeout_ms: Optional[int] = None
    max_deliver: Optional[int] = None


@dataclass
class StreamGroupOptions(NamespaceOptions):
    """Options for ``stream.group_leave``, ``group_ack``, ``group_nack``, ``group_touch``
    and ``group_dlq_requeue``."""


@dataclass
class StreamGroupJoinOptions:
    """Options for ``stream.group_join``. ``ack_timeout_ms`` (default 30000) and
    ``max_deliver`` (default 10, at most 255) set the whole group's settings (flo extension)."""

    ack_timeout_ms: Optional[int] = None
    max_deliver: Optional[int] = None
    namespace: Optional[str] = None


@dataclass
class StreamGroupDlqListOptions:
    """Options for ``stream.group_dlq_list``."""

    limit: Optional[int] = None
    namespace: Optional[str] = None


@dataclass
class StreamInfoOptions(NamespaceOptions):
    """Options for ``stream.info``."""


@dataclass
class StreamTrimOptions:
    """Options for ``stream.trim``: keep at most ``max_len`` records, drop records older
    than ``max_age_seconds``, keep at most ``max_bytes`` bytes; ``dry_run`` only reports."""

    max_len: Optional[int] = None
    max_age_seconds: Optional[int] = None
    max_bytes: Optional[int] = None
    dry_run: bool = False
    namespace: Optional[str] = None


# --- Actions ----------------------------------------------------------------


class ActionType(enum.IntEnum):
    """How an action runs: USER actions are executed by external workers."""

    USER = 0
    WASM = 1


@dataclass
class ActionRegisterOptions:
    """Options for ``action.register``."""

    timeout_ms: int = 30000
    max_retries: int = 3
    description: Optional[str] = None
    namespace: Optional[str] = None


@dataclass
class ActionInvokeOptions:
    """Options for ``action.invoke``. Priority 0-255, higher first; an
    ``idempotency_key`` makes repeated invokes return the first run; ``delay_ms``
    (up to 30 days) holds the run back before its first claim."""

    priority: int = 10
    idempotency_key: Optional[str] = None
    namespace: Optional[str] = None
    delay_ms: Optional[int] = None


@dataclass
class ActionStatusOptions(NamespaceOptions):
    """Options for ``action.status``.

    ``block_ms`` (a flo extension): ``None`` answers at once; ``0`` waits until
    the run has ended with no time limit; ``N`` waits at most N ms and then
    answers with the run as it is.
    """

    block_ms: Optional[int] = None


@dataclass
class ActionListOptions:
    """Options for ``action.list``; ``cursor`` is the ``cursor`` of a previous page."""

    prefix: str = ""
    limit: int = 100
    namespace: Optional[str] = None
    cursor: Optional[bytes] = None


@dataclass
class ActionDeleteOptions(NamespaceOptions):
    """Options for ``action.delete``."""


# --- Workers ----------------------------------------------------------------


@dataclass
class WorkerRegisterOptions:
    """Options for ``worker.register``; ``max_concurrency`` is reported by ``worker.list``
    (a flo extension)."""

    namespace: Optional[str] = None
    max_concurrency: Optional[int] = None


@dataclass
class WorkerAwaitOptions:
    """Options for ``worker.await_task``.

    ``block_ms`` follows the rules of :class:`GetOptions` (``None``: do not
    wait). ``timeout_ms`` > 0 overrides the action's lease for this claim.
    ``count`` (a flo extension) claims up to that many tasks at once (below 1 means 1, at most 100); they are
    returned in ``WorkerAwaitResult.tasks``.
    """

    block_ms: Optional[int] = None
    timeout_ms: Optional[int] = None
    namespace: Optional[str] = None
    count: Optional[int] = None


@dataclass
class WorkerTouchOptions:
    """Options for ``worker.touch``: the lease becomes now + ``extend_ms``."""

    extend_ms: int = 30000
    namespace: Optional[str] = None


@dataclass
class WorkerCompleteOptions(NamespaceOptions):
    """Options for ``worker.complete``."""


@dataclass
class WorkerFailOptions:
    """Options for ``worker.fail``: ``retry=False`` makes the failure terminal."""

    retry: bool = True
    namespace: Optional[str] = None


@dataclass
class WorkerListOptions:
    """Options for ``worker.list``: workers whose ID starts with ``prefix``;
    ``cursor`` is the ``cursor`` of a previous page."""

    limit: int = 100
    namespace: Optional[str] = None
    cursor: Optional[bytes] = None
    prefix: str = ""


__all__ = [
    "NamespaceOptions",
    "GetOptions",
    "PutOptions",
    "DeleteOptions",
    "ScanOptions",
    "HistoryOptions",
    "EnqueueOptions",
    "DequeueOptions",
    "AckOptions",
    "NackOptions",
    "DlqListOptions",
    "DlqRequeueOptions",
    "PeekOptions",
    "DlqDeleteOptions",
    "QueueTouchOptions",
    "QueueStatsOptions",
    "StreamStartMode",
    "StreamAppendOptions",
    "StreamReadOptions",
    "StreamGroupReadOptions",
    "StreamGroupOptions",
    "StreamGroupJoinOptions",
    "StreamGroupDlqListOptions",
    "StreamInfoOptions",
    "StreamTrimOptions",
    "ActionType",
    "ActionRegisterOptions",
    "ActionInvokeOptions",
    "ActionStatusOptions",
    "ActionListOptions",
    "ActionDeleteOptions",
    "WorkerRegisterOptions",
    "WorkerAwaitOptions",
    "WorkerTouchOptions",
    "WorkerCompleteOptions",
    "WorkerFailOptions",
    "WorkerListOptions",
]
