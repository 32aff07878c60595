"""flo: asyncio Python SDK for the Flo server.

Quick start::

    import asyncio
    from flo import FloClient

    async def main() -> None:
        async with FloClient("localhost:9000") as client:
            await client.kv.put("user:123", b"John Doe")
            print(await client.kv.get("user:123"))

    asyncio.run(main())

Pure standard library; Python >= 3.10.
"""

from .client import FloClient, parse_endpoint
from .errors import (
    BadRequestError,
    ConflictError,
    ConnectionFailedError,
    FloError,
    GenericServerError,
    IncompleteResponseError,
    InternalServerError,
    InvalidChecksumError,
    InvalidMagicError,
    NonRetryableError,
    NotFoundError,
    OperationTimeoutError,
    OverloadedError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    UnsupportedVersionError,
    ValidationError,
)
from .options import (
    AckOptions,
    ActionDeleteOptions,
    ActionInvokeOptions,
    ActionListOptions,
    ActionRegisterOptions,
    ActionStatusOptions,
    ActionType,
    DeleteOptions,
    DequeueOptions,
    DlqDeleteOptions,
    DlqListOptions,
    DlqRequeueOptions,
    EnqueueOptions,
    GetOptions,
    HistoryOptions,
    NackOptions,
    NamespaceOptions,
    PeekOptions,
    PutOptions,
    QueueStatsOptions,
    QueueTouchOptions,
    ScanOptions,
    StreamAppendOptions,
    StreamGroupDlqListOptions,
    StreamGroupJoinOptions,
    StreamGroupOptions,
    StreamGroupReadOptions,
    StreamInfoOptions,
    StreamReadOptions,
    StreamStartMode,
    StreamTrimOptions,
    WorkerAwaitOptions,
    WorkerCompleteOptions,
    WorkerFailOptions,
    WorkerListOptions,
    WorkerRegisterOptions,
    WorkerTouchOptions,
)
from .results import (
    ActionInfo,
    ActionInvokeResult,
    ActionList,
    ActionRunStatus,
    DequeueResult,
    KVEntry,
    Message,
    QueueStats,
    RunStatus,
    ScanResult,
    StreamAppendResult,
    StreamDeadRecord,
    StreamID,
    StreamInfo,
    StreamReadResult,
    StreamRecord,
    StreamTrimResult,
    TaskAssignment,
    VersionEntry,
    WorkerAwaitResult,
    WorkerInfo,
    WorkerList,
    WorkerProcess,
    WorkerStatus,
)
from .worker import ActionContext, Worker

#: Upstream flo-python names for the same classes.
AppendResult = StreamAppendResult
ReadResult = StreamReadResult
ActionStatus = ActionRunStatus
Task = TaskAssignment
TouchOptions = QueueTouchOptions

__version__ = "0.1.0"

__all__ = [name for name in dir() if not name.startswith("_") and name not in {"client", "errors", "options", "results", "wire", "connection", "kv", "queue", "stream", "action", "worker"}]
