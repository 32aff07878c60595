"""Result dataclasses returned by the client.

Field names follow the product spec (``offset``, ``timestamp``,
``action_name``, ``input`` …); read-only properties expose the names the
upstream flo-python client used for the same values (``sequence``,
``timestamp_ms``, ``task_type``, ``payload`` …) so code written for it keeps
working.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True, order=True)
class StreamID:
    """A stream position: ``[timestamp_ms:u64][sequence:u64]`` on the wire (little-endian on v1).

    flo positions records by a dense integer offset; ``StreamID.from_sequence(n)``
    (timestamp 0) addresses offset n, and ``StreamID(timestamp_ms=T)`` (sequence
    0) addresses the first record whose timestamp is >= T.
    """

    timestamp_ms: int = 0
    sequence: int = 0

    @classmethod
    def from_sequence(cls, sequence: int) -> "StreamID":
        """Return the ID that addresses offset ``sequence``."""
        return cls(0, sequence)

    @classmethod
    def from_timestamp(cls, timestamp_ms: int) -> "StreamID":
        """Return the ID that addresses the first record at or after ``timestamp_ms``."""
        return cls(timestamp_ms, 0)

    @classmethod
    def parse(cls, text: str) -> "StreamID":
        """Parse ``"<timestamp_ms>-<sequence>"`` or a bare sequence number."""
        if "-" in text:
            ts, seq = text.split("-", 1)
            return cls(int(ts), int(seq))
        return cls(0, int(text))

    @classmethod
    def from_bytes(cls, data: bytes) -> "StreamID":
        """Decode the 16-byte little-endian wire form."""
        ts, seq = struct.unpack_from("<QQ", data)
        return cls(ts, seq)

    def to_bytes(self) -> bytes:
        """Encode the 16-byte little-endian wire form."""
        return struct.pack("<QQ", self.timestamp_ms, self.sequence)

    def __str__(self) -> str:
        return f"{self.timestamp_ms}-{self.sequence}"


# --- KV ---------------------------------------------------------------------


@dataclass
class KVEntry:
    """One key of a scan page. ``value`` is ``None`` for keys-only scans and empty values."""

    key: bytes
    value: Optional[bytes] = None


@dataclass
class ScanResult:
    """A page of ``kv.scan``. Pass ``cursor`` back in ``ScanOptions`` while ``has_more``."""

    entries: list[KVEntry] = field(default_factory=list)
    cursor: Optional[bytes] = None
    has_more: bool = False


@dataclass
class VersionEntry:
    """One version of a key from ``kv.history``; ``timestamp`` is Unix ms."""

    version: int
    timestamp: int
    value: bytes

    @property
    def timestamp_ms(self) -> int:
        """Upstream name of ``timestamp``."""
        return self.timestamp


# --- Queues -----------------------------------------------------------------


@dataclass
class Message:
    """A queue message.

    ``seq`` and ``payload`` are always set. The other fields are filled only
    when the call asked for details (``detailed=True``): priority, number of
    deliveries so far, enqueue time and DLQ entry time (Unix ms), and the last
    failure reason.
    """

    seq: int
    payload: bytes
    delivery_count: Optional[int] = None
    priority: Optional[int] = None
    enqueued_at: Optional[int] = None
    dlq_at: Optional[int] = None
    reason: Optional[str] = None

    @property
    def sequence(self) -> int:
        """Alias of ``seq``."""
        return self.seq


@dataclass
class DequeueResult:
    """Messages returned by ``dequeue``, ``peek`` and ``dlq_list``."""

    messages: list[Message] = field(default_factory=list)


@dataclass
class QueueStats:
    """Depth of a queue by state (``queue.stats``)."""

    ready: int = 0
    delayed: int = 0
    in_flight: int = 0
    dlq: int = 0


# --- Streams ----------------------------------------------------------------


@dataclass
class StreamAppendResult:
    """Where ``stream.append`` put the record."""

    offset: int
    timestamp: int

    @property
    def sequence(self) -> int:
        """Upstream name of ``offset``."""
        return self.offset

    @property
    def timestamp_ms(self) -> int:
        """Upstream name of ``timestamp``."""
        return self.timestamp

    @property
    def id(self) -> StreamID:
        """The record's position as a :class:`StreamID`."""
        return StreamID(self.timestamp, self.offset)


@dataclass
class StreamRecord:
    """A stream record. ``partition_key`` is the key given at append (``None`` if none)."""

    offset: int
    timestamp: int
    payload: bytes
    partition_key: Optional[str] = None
    tier: int = 0
    partition: int = 0
    headers: dict[str, bytes] = field(default_factory=dict)
    key: Optional[bytes] = None

    @property
    def sequence(self) -> int:
        """Upstream name of ``offset``."""
        return self.offset

    @property
    def timestamp_ms(self) -> int:
        """Upstream name of ``timestamp``."""
        return self.timestamp

    @property
    def id(self) -> StreamID:
        """The record's position as a :class:`StreamID`."""
        return StreamID(self.timestamp, self.offset)


@dataclass
class StreamReadResult:
    """Records returned by ``stream.read`` and ``stream.group_read``, ascending by offset."""

    records: list[StreamRecord] = field(default_factory=list)


@dataclass
class StreamDeadRecord:
    """A record a consumer group gave up on after too many deliveries (``group_dlq_list``)."""

    offset: int
    timestamp: int
    payload: bytes
    deliveries: int = 0
    dead_at: int = 0
    consumer: str = ""
    partition_key: Optional[str] = None
    key: Optional[bytes] = None

    @property
    def sequence(self) -> int:
        """Upstream name of ``offset``."""
        return self.offset


@dataclass
class StreamInfo:
    """Summary of a stream. An unknown stream reports zeros."""

    first_offset: int
    last_offset: int
    count: int
    bytes: int

    @property
    def first_seq(self) -> int:
        """Upstream name of ``first_offset``."""
        return self.first_offset

    @property
    def last_seq(self) -> int:
        """Upstream name of ``last_offset``."""
        return self.last_offset


@dataclass
class StreamTrimResult:
    """Outcome of ``stream.trim``: records removed (or that would be, on a dry run)."""

    deleted_count: int = 0
    first_offset: int = 0


# --- Actions ----------------------------------------------------------------


class RunStatus:
    """The run states reported in ``ActionRunStatus.status`` (lowercase strings)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    BY_CODE: dict[int, str] = {
        0: PENDING,
        1: RUNNING,
        2: COMPLETED,
        3: FAILED,
        4: CANCELLED,
        5: TIMED_OUT,
    }
    TERMINAL: frozenset[str] = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})


@dataclass
class ActionInvokeResult:
    """The run created (or, with an idempotency key, found) by ``action.invoke``."""

    run_id: str


@dataclass
class ActionRunStatus:
    """The state of one run, as returned by ``action.status``.

    ``status`` is one of :class:`RunStatus`; ``result`` holds the bytes passed
    to ``complete`` (only once completed); ``error`` the last failure message.
    Times are Unix ms. ``retry_count`` is the number of claims so far (the
    SEMANTICS ``attempt``), also available as ``attempt``.
    """

    run_id: str
    status: str
    created_at: int = 0
    started_at: Optional[int] = None
    completed_at: Optional[int] = None
    result: Optional[bytes] = None
    error: Optional[str] = None
    retry_count: int = 0
    status_code: int = 0

    @property
    def attempt(self) -> int:
        """Number of claims so far."""
        return self.retry_count

    @property
    def output(self) -> Optional[bytes]:
        """Alias of ``result``."""
        return self.result

    @property
    def is_terminal(self) -> bool:
        """True once the run is completed, failed, cancelled or timed out."""
        return self.status in RunStatus.TERMINAL


@dataclass
class ActionInfo:
    """A registered action as listed by ``action.list``.

    ``timeout_ms``, ``max_retries`` and ``description`` are filled when the
    server includes them in the entry.
    """

    name: str
    action_type: int = 0
    version: int = 0
    enabled: bool = True
    timeout_ms: Optional[int] = None
    max_retries: Optional[int] = None
    description: Optional[str] = None


class ActionList(list):  # type: ignore[type-arg]
    """A page of ``action.list``: a ``list[ActionInfo]`` that also carries ``has_more`` and ``cursor``.

    Pass ``cursor`` back in ``ActionListOptions(cursor=...)`` to fetch the next page.
    """

    def __init__(self, items: "list[ActionInfo] | None" = None, has_more: bool = False, cursor: Optional[bytes] = None) -> None:
        super().__init__(items or [])
        self.has_more = has_more
        self.cursor = cursor


# --- Workers ----------------------------------------------------------------


@dataclass
class TaskAssignment:
    """A task handed to a worker: one attempt of a run.

    ``task_id`` is the run ID, ``action_name`` the action (task type),
    ``input`` the invoke input, ``created_at`` Unix ms, ``attempt`` counts from 1.
    """

    task_id: str
    action_name: str
    input: bytes
    created_at: int = 0
    attempt: int = 0

    @property
    def task_type(self) -> str:
        """Upstream name of ``action_name``."""
        return self.action_name

    @property
    def payload(self) -> bytes:
        """Upstream name of ``input``."""
        return self.input

    @property
    def run_id(self) -> str:
        """The run this task belongs to (same as ``task_id``)."""
        return self.task_id


@dataclass
class WorkerAwaitResult:
    """The outcome of ``worker.await_task``: ``task`` is ``None`` when nothing arrived.

    With ``WorkerAwaitOptions(count=N)`` every claimed task is in ``tasks`` (and
    ``task`` is the first of them).
    """

    task: Optional[TaskAssignment] = None
    tasks: list[TaskAssignment] = field(default_factory=list)


@dataclass
class WorkerProcess:
    """A task type a worker serves, with its counters."""

    name: str
    kind: int = 0
    run_count: int = 0
    fail_count: int = 0
    last_run_at: int = 0


class WorkerStatus:
    """Worker states reported in ``WorkerInfo.status``."""

    ACTIVE = "active"
    IDLE = "idle"
    DRAINING = "draining"
    UNHEALTHY = "unhealthy"

    BY_CODE: dict[int, str] = {0: ACTIVE, 1: IDLE, 2: DRAINING, 3: UNHEALTHY}


@dataclass
class WorkerInfo:
    """A registered worker as listed by ``worker.list``. Times are Unix ms."""

    worker_id: str
    worker_type: int = 0
    status: str = WorkerStatus.ACTIVE
    tasks_completed: int = 0
    tasks_failed: int = 0
    current_load: int = 0
    max_concurrency: int = 0
    registered_at: int = 0
    last_heartbeat: int = 0
    processes: list[WorkerProcess] = field(default_factory=list)
    metadata: Optional[str] = None
    machine_id: Optional[str] = None

    @property
    def task_types(self) -> list[str]:
        """Names of the task types the worker serves."""
        return [p.name for p in self.processes]


class WorkerList(list):  # type: ignore[type-arg]
    """A page of ``worker.list``: a ``list[WorkerInfo]`` that also carries ``has_more`` and ``cursor``."""

    def __init__(self, items: "list[WorkerInfo] | None" = None, has_more: bool = False, cursor: Optional[bytes] = None) -> None:
        super().__init__(items or [])
        self.has_more = has_more
        self.cursor = cursor


__all__ = [
    "StreamID",
    "KVEntry",
    "ScanResult",
    "VersionEntry",
    "Message",
    "DequeueResult",
    "QueueStats",
    "StreamDeadRecord",
    "StreamAppendResult",
    "StreamRecord",
    "StreamReadResult",
    "StreamInfo",
    "StreamTrimResult",
    "RunStatus",
    "ActionInvokeResult",
    "ActionRunStatus",
    "ActionInfo",
    "ActionList",
    "TaskAssignment",
    "WorkerAwaitResult",
    "WorkerProcess",
    "WorkerStatus",
    "WorkerInfo",
    "WorkerList",
]
