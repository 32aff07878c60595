"""The Flo binary protocol, version 1, as pure functions over bytes.

Nothing here does I/O or touches asyncio: the connection layer frames and
unframes with these functions, and the golden-frame tests call them directly
against ``wire/testdata/*.hex``. ``docs/protocol.md`` is the normative
description; this module mirrors the Go ``wire`` package.

Frame header (24 bytes, little-endian)::

    +-------+--------+------------+-------+---------+-------------+-------+----------+
    | 0..3  | 4..7   | 8..15      | 16..19| 20      | 21          | 22    | 23       |
    | magic | length | request_id | crc32 | version | op | status | flags | reserved |
    +-------+--------+------------+-------+---------+-------------+-------+----------+

The CRC-32 (IEEE, ``binascii.crc32``) covers bytes 0..15, bytes 20..23 and the
payload. Requests carry the envelope
``[ns_len:u16][ns][key_len:u16][key][value_len:u32][value][opts_len:u16][opts]``
with TLV options ``[tag:u8][len:u8][data]``.
"""

from __future__ import annotations

import binascii
import enum
import struct
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from .errors import (
    IncompleteResponseError,
    InvalidChecksumError,
    InvalidMagicError,
    UnsupportedVersionError,
    ValidationError,
)
from .results import (
    ActionInfo,
    ActionList,
    QueueStats,
    StreamDeadRecord,
    ActionRunStatus,
    KVEntry,
    Message,
    RunStatus,
    ScanResult,
    StreamAppendResult,
    StreamInfo,
    StreamRecord,
    StreamTrimResult,
    TaskAssignment,
    VersionEntry,
    WorkerInfo,
    WorkerList,
    WorkerProcess,
    WorkerStatus,
)

MAGIC = 0x004F4C46
MAGIC_BYTES = b"FLO\x00"
VERSION = 1
HEADER_SIZE = 24

MAX_NAMESPACE_BYTES = 255
MAX_KEY_BYTES = 65535
#: Largest value, payload, action input or result (SEMANTICS §8.2).
MAX_VALUE_BYTES = 16 * 1024 * 1024
#: Largest envelope value: an action input or a task result of MAX_VALUE_BYTES travels
#: behind a few fields of its own (priority, idempotency key, task id …), so the
#: envelope allows some room beyond it; the server's frame limit is 16 MiB + 192 KiB.
MAX_ENVELOPE_VALUE_BYTES = MAX_VALUE_BYTES + 64 * 1024
#: Largest fail message the server takes (BAD_REQUEST past it); the Worker cuts longer ones.
MAX_ERROR_BYTES = 64 * 1024
MAX_OPTION_BYTES = 255
MAX_OPTIONS_BYTES = 65535
#: Largest response payload the client accepts. One reply may carry many values: the
#: server stops a list near 64 MiB (queue, scan and history lists before the entry that
#: would pass it, stream lists after the record that passes it, so up to 80 MiB; see
#: docs/limits.md), so this is a sanity bound (as the Go client's) rather than the
#: 16 MiB limit of one value.
MAX_FRAME_PAYLOAD = (1 << 31) - 1

_HEADER = struct.Struct("<IIQIBBBB")


class OpCode(enum.IntEnum):
    """Request opcodes (header byte 21 of a request), the flo-python SDK's numbering."""

    PING = 0x00
    STREAM_APPEND = 0x10
    STREAM_READ = 0x11
    STREAM_TRIM = 0x12
    STREAM_INFO = 0x13
    STREAM_GROUP_JOIN = 0x21
    STREAM_GROUP_LEAVE = 0x22
    STREAM_GROUP_READ = 0x23
    STREAM_GROUP_ACK = 0x24
    STREAM_GROUP_NACK = 0x29
    STREAM_GROUP_TOUCH = 0x2A
    STREAM_GROUP_DLQ_LIST = 0x2D
    STREAM_GROUP_DLQ_REQUEUE = 0x2E
    KV_PUT = 0x30
    KV_GET = 0x31
    KV_DELETE = 0x32
    KV_SCAN = 0x33
    KV_HISTORY = 0x34
    QUEUE_ENQUEUE = 0x40
    QUEUE_DEQUEUE = 0x41
    QUEUE_COMPLETE = 0x42
    QUEUE_FAIL = 0x44
    QUEUE_DLQ_LIST = 0x46
    QUEUE_DLQ_DELETE = 0x47
    QUEUE_DLQ_REQUEUE = 0x48
    QUEUE_STATS = 0x4B
    QUEUE_PEEK = 0x4C
    QUEUE_TOUCH = 0x4D
    ACTION_REGISTER = 0x60
    ACTION_INVOKE = 0x61
    ACTION_STATUS = 0x62
    ACTION_LIST = 0x63
    ACTION_DELETE = 0x64
    WORKER_REGISTER = 0x69
    WORKER_TOUCH = 0x6A
    WORKER_AWAIT = 0x6B
    WORKER_COMPLETE = 0x6C
    WORKER_FAIL = 0x6D
    WORKER_LIST = 0x6E


class Status(enum.IntEnum):
    """Response statuses (header byte 21 of a response)."""

    OK = 0
    ERROR_GENERIC = 1
    NOT_FOUND = 2
    BAD_REQUEST = 3
    CROSS_CORE_TRANSACTION = 4
    NO_ACTIVE_TRANSACTION = 5
    GROUP_LOCKED = 6
    UNAUTHORIZED = 7
    CONFLICT = 8
    INTERNAL_ERROR = 9
    OVERLOADED = 10
    RATE_LIMITED = 11


class Tag(enum.IntEnum):
    """TLV option tags (PROTOCOL.md §4 plus the extensions of docs/protocol.md)."""

    TTL_SECONDS = 0x01
    CAS_VERSION = 0x02
    IF_NOT_EXISTS = 0x03
    IF_EXISTS = 0x04
    LIMIT = 0x05
    KEYS_ONLY = 0x06
    CURSOR = 0x07
    PRIORITY = 0x10
    DELAY_MS = 0x11
    VISIBILITY_TIMEOUT_MS = 0x12
    DEDUP_KEY = 0x13
    MAX_RETRIES = 0x14
    COUNT = 0x15
    SEND_TO_DLQ = 0x16
    BLOCK_MS = 0x17
    WAIT_MS = 0x18
    STREAM_START = 0x21
    STREAM_END = 0x22
    STREAM_TAIL = 0x23
    PARTITION = 0x24
    PARTITION_KEY = 0x25
    MAX_AGE_SECONDS = 0x26
    MAX_BYTES = 0x27
    DRY_RUN = 0x28
    RETENTION_COUNT = 0x29
    RETENTION_AGE = 0x2A
    RETENTION_BYTES = 0x2B
    ACK_TIMEOUT_MS = 0x30
    MAX_DELIVER = 0x31
    WORKER_ID = 0x40
    EXTEND_MS = 0x41
    MAX_TASKS = 0x42
    RETRY = 0x43
    TIMEOUT_MS = 0x50
    TIMESTAMP_MS = 0x70
    NACK_REASON = 0x71
    MESSAGE_DETAIL = 0x72
    DLQ_ALL = 0x73


def op_name(code: int) -> str:
    """Return the opcode's name for logs, or its hex value."""
    try:
        return OpCode(code).name
    except ValueError:
        return f"0x{code:02x}"


def status_name(code: int) -> str:
    """Return the status's name for logs, or its number."""
    try:
        return Status(code).name
    except ValueError:
        return f"status {code}"


# --- Framing -----------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """A decoded frame header. ``code`` is the opcode of a request or the status of a response."""

    magic: int
    length: int
    request_id: int
    crc32: int
    version: int
    code: int
    flags: int
    reserved: int


def frame_crc(head16: bytes, tail4: bytes, payload: bytes) -> int:
    """CRC-32 over header bytes 0..15, header bytes 20..23 and the payload."""
    crc = binascii.crc32(head16)
    crc = binascii.crc32(tail4, crc)
    return binascii.crc32(payload, crc) & 0xFFFFFFFF


def encode_frame(request_id: int, code: int, payload: bytes = b"", flags: int = 0) -> bytes:
    """Frame ``payload``; ``code`` is an opcode (request) or a status (response)."""
    head16 = struct.pack("<IIQ", MAGIC, len(payload), request_id)
    tail4 = bytes((VERSION, code, flags, 0))
    crc = frame_crc(head16, tail4, payload)
    return b"".join((head16, struct.pack("<I", crc), tail4, payload))


def decode_header(data: bytes) -> Header:
    """Decode the 24-byte header; raises on bad magic or version (not on CRC)."""
    if len(data) < HEADER_SIZE:
        raise IncompleteResponseError(f"frame header needs {HEADER_SIZE} bytes, got {len(data)}")
    h = Header(*_HEADER.unpack_from(data))
    if h.magic != MAGIC:
        raise InvalidMagicError(f"bad frame magic 0x{h.magic:08x}")
    if h.version != VERSION:
        raise UnsupportedVersionError(f"unsupported protocol version {h.version}")
    return h


def header_crc_ok(header_bytes: bytes, payload: bytes) -> bool:
    """Report whether the CRC in ``header_bytes`` matches the header and payload."""
    (crc,) = struct.unpack_from("<I", header_bytes, 16)
    return frame_crc(header_bytes[:16], header_bytes[20:24], payload) == crc


def decode_frame(data: bytes) -> tuple[Header, bytes]:
    """Decode one complete frame, checking magic, version, length and CRC."""
    h = decode_header(data)
    payload = bytes(data[HEADER_SIZE:])
    if len(payload) != h.length:
        raise IncompleteResponseError(f"frame declares {h.length} payload bytes, has {len(payload)}")
    if not header_crc_ok(data[:HEADER_SIZE], payload):
        raise InvalidChecksumError("response CRC32 mismatch")
    return h, payload


# --- Envelope and TLV ------------------------------------------------------------


def _to_bytes(value: str | bytes | bytearray | memoryview) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def encode_envelope(namespace: str, key: bytes = b"", value: bytes = b"", options: bytes = b"") -> bytes:
    """Encode the request payload envelope; every section is always written."""
    ns = namespace.encode("utf-8")
    if len(ns) > MAX_NAMESPACE_BYTES:
        raise ValidationError(f"namespace is {len(ns)} bytes; at most {MAX_NAMESPACE_BYTES} allowed")
    if len(key) > MAX_KEY_BYTES:
        raise ValidationError(f"key is {len(key)} bytes; at most {MAX_KEY_BYTES} allowed")
    if len(value) > MAX_ENVELOPE_VALUE_BYTES:
        raise ValidationError(f"value is {len(value)} bytes; at most {MAX_ENVELOPE_VALUE_BYTES} allowed")
    if len(options) > MAX_OPTIONS_BYTES:
        raise ValidationError(f"options are {len(options)} bytes; at most {MAX_OPTIONS_BYTES} allowed")
    return b"".join(
        (
            struct.pack("<H", len(ns)),
            ns,
            struct.pack("<H", len(key)),
            key,
            struct.pack("<I", len(value)),
            value,
            struct.pack("<H", len(options)),
            options,
        )
    )


@dataclass
class Envelope:
    """A decoded request envelope (used by tests and fake servers)."""

    namespace: str
    key: bytes
    value: bytes
    options: bytes


def decode_envelope(payload: bytes) -> Envelope:
    """Decode a request envelope with the upstream server's leniency."""
    if not payload:
        return Envelope("", b"", b"", b"")
    r = Reader(payload)
    ns = r.bytes16().decode("utf-8")
    key = r.bytes16()
    value = r.bytes32()
    options = b""
    if r.remaining >= 2:
        n = r.u16()
        if n <= r.remaining:
            options = r.take(n)
    return Envelope(ns, key, value, options)


_HEAD16 = struct.Struct("<IIQ")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_crc32 = binascii.crc32


def encode_request(
    request_id: int,
    opcode: int,
    namespace: str,
    key: bytes = b"",
    value: bytes = b"",
    options: bytes = b"",
) -> bytes:
    """Encode a complete request frame (header + envelope) in one pass.

    Equivalent to ``encode_frame(request_id, opcode, encode_envelope(...))``;
    this is the client's hot path, so it avoids the intermediate calls.
    """
    ns = namespace.encode("utf-8")
    if len(ns) > MAX_NAMESPACE_BYTES or len(key) > MAX_KEY_BYTES or len(value) > MAX_ENVELOPE_VALUE_BYTES \
            or len(options) > MAX_OPTIONS_BYTES:
        encode_envelope(namespace, key, value, options)  # raises the precise ValidationError
    payload = b"".join(
        (_U16.pack(len(ns)), ns, _U16.pack(len(key)), key, _U32.pack(len(value)), value, _U16.pack(len(options)), options)
    )
    head16 = _HEAD16.pack(MAGIC, len(payload), request_id)
    tail4 = bytes((VERSION, opcode, 0, 0))
    crc = _crc32(payload, _crc32(tail4, _crc32(head16))) & 0xFFFFFFFF
    return b"".join((head16, _U32.pack(crc), tail4, payload))


def encode_response(request_id: int, status: int, payload: bytes = b"") -> bytes:
    """Encode a complete response frame (for tests and fake servers)."""
    return encode_frame(request_id, status, payload)


class Options:
    """Builder for a TLV options blob."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def flag(self, tag: int) -> "Options":
        """Add a zero-length flag."""
        self._parts.append(bytes((tag, 0)))
        return self

    def u8(self, tag: int, v: int) -> "Options":
        """Add a 1-byte scalar."""
        self._parts.append(struct.pack("<BBB", tag, 1, _check_range(tag, v, 0xFF)))
        return self

    def u16(self, tag: int, v: int) -> "Options":
        """Add a 2-byte scalar."""
        self._parts.append(struct.pack("<BBH", tag, 2, _check_range(tag, v, 0xFFFF)))
        return self

    def u32(self, tag: int, v: int) -> "Options":
        """Add a 4-byte scalar."""
        self._parts.append(struct.pack("<BBI", tag, 4, _check_range(tag, v, 0xFFFFFFFF)))
        return self

    def u64(self, tag: int, v: int) -> "Options":
        """Add an 8-byte scalar."""
        self._parts.append(struct.pack("<BBQ", tag, 8, _check_range(tag, v, 0xFFFFFFFFFFFFFFFF)))
        return self

    def raw(self, tag: int, data: str | bytes) -> "Options":
        """Add a string or byte option of at most 255 bytes."""
        b = _to_bytes(data)
        if len(b) > MAX_OPTION_BYTES:
            raise ValidationError(f"option 0x{tag:02x} is {len(b)} bytes; at most {MAX_OPTION_BYTES} allowed")
        self._parts.append(bytes((tag, len(b))) + b)
        return self

    def build(self) -> bytes:
        """Return the encoded blob."""
        return b"".join(self._parts)


def _check_range(tag: int, v: int, hi: int) -> int:
    if not isinstance(v, int):
        raise ValidationError(f"option 0x{tag:02x} must be an integer, got {type(v).__name__}")
    v = int(v)
    if v < 0 or v > hi:
        raise ValidationError(f"option 0x{tag:02x} value {v} out of range 0..{hi}")
    return v


def parse_options(blob: bytes) -> list[tuple[int, bytes]]:
    """Split a TLV blob into (tag, data) pairs, stopping silently at a truncated entry."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i + 2 <= len(blob):
        tag, n = blob[i], blob[i + 1]
        if i + 2 + n > len(blob):
            break
        out.append((tag, bytes(blob[i + 2 : i + 2 + n])))
        i += 2 + n
    return out


def lookup_option(blob: bytes, tag: int) -> Optional[bytes]:
    """Return the data of the first option with ``tag``, or ``None``."""
    for t, data in parse_options(blob):
        if t == tag:
            return data
    return None


def option_uint(blob: bytes, tag: int) -> Optional[int]:
    """Return an unsigned scalar option of width 1, 2, 4 or 8, or ``None``."""
    data = lookup_option(blob, tag)
    if data is None or len(data) not in (1, 2, 4, 8):
        return None
    return int.from_bytes(data, "little")


# --- Body reader -----------------------------------------------------------------


class Reader:
    """Sequential little-endian reader over a body; raises IncompleteResponseError on a short read."""

    __slots__ = ("_b", "_i")

    def __init__(self, data: bytes) -> None:
        self._b = memoryview(data)
        self._i = 0

    @property
    def remaining(self) -> int:
        """Bytes not yet read."""
        return len(self._b) - self._i

    def take(self, n: int) -> bytes:
        """Read ``n`` bytes."""
        if n < 0 or self._i + n > len(self._b):
            raise IncompleteResponseError(
                f"response truncated: need {n} bytes at offset {self._i}, have {self.remaining}"
            )
        v = bytes(self._b[self._i : self._i + n])
        self._i += n
        return v

    def _unpack(self, fmt: str, size: int) -> int:
        if self._i + size > len(self._b):
            raise IncompleteResponseError(
                f"response truncated: need {size} bytes at offset {self._i}, have {self.remaining}"
            )
        (v,) = struct.unpack_from(fmt, self._b, self._i)
        self._i += size
        return int(v)

    def u8(self) -> int:
        """Read a u8."""
        return self._unpack("<B", 1)

    def u16(self) -> int:
        """Read a little-endian u16."""
        return self._unpack("<H", 2)

    def u32(self) -> int:
        """Read a little-endian u32."""
        return self._unpack("<I", 4)

    def u64(self) -> int:
        """Read a little-endian u64."""
        return self._unpack("<Q", 8)

    def i64(self) -> int:
        """Read a little-endian i64."""
        return self._unpack("<q", 8)

    def bytes16(self) -> bytes:
        """Read ``[len:u16][bytes]``."""
        return self.take(self.u16())

    def bytes32(self) -> bytes:
        """Read ``[len:u32][bytes]``."""
        return self.take(self.u32())

    def str16(self) -> str:
        """Read ``[len:u16][utf-8]``."""
        return _utf8(self.bytes16())

    def str32(self) -> str:
        """Read ``[len:u32][utf-8]``."""
        return _utf8(self.bytes32())

    def rest(self) -> bytes:
        """Read every remaining byte."""
        return self.take(self.remaining)


def _utf8(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


def _b16(b: bytes) -> bytes:
    return struct.pack("<H", len(b)) + b


def _b32(b: bytes) -> bytes:
    return struct.pack("<I", len(b)) + b


def _name(value: str | bytes, what: str) -> bytes:
    b = _to_bytes(value)
    if len(b) > 0xFFFF:
        raise ValidationError(f"{what} is {len(b)} bytes; at most 65535 allowed")
    return b


# --- KV bodies ---------------------------------------------------------------------


def kv_put_options(
    ttl_seconds: Optional[int] = None,
    cas_version: Optional[int] = None,
    if_not_exists: bool = False,
    if_exists: bool = False,
) -> bytes:
    """PUT options in the SDK's order: TTL_SECONDS, CAS_VERSION, IF_NOT_EXISTS, IF_EXISTS."""
    o = Options()
    if ttl_seconds is not None:
        o.u64(Tag.TTL_SECONDS, ttl_seconds)
    if cas_version is not None:
        o.u64(Tag.CAS_VERSION, cas_version)
    if if_not_exists:
        o.flag(Tag.IF_NOT_EXISTS)
    if if_exists:
        o.flag(Tag.IF_EXISTS)
    return o.build()


def decode_kv_put(payload: bytes) -> Optional[int]:
    """PUT OK payload: ``[version:u64]``, or empty (then ``None``)."""
    if len(payload) < 8:
        return None
    return struct.unpack_from("<Q", payload)[0]


def kv_scan_options(limit: Optional[int] = None, keys_only: bool = False) -> bytes:
    """SCAN options: LIMIT (u32), KEYS_ONLY=1 (u8)."""
    o = Options()
    if limit is not None:
        o.u32(Tag.LIMIT, clamp_u32(limit))
    if keys_only:
        o.u8(Tag.KEYS_ONLY, 1)
    return o.build()


def encode_scan_result(result: ScanResult) -> bytes:
    """Encode a scan reply ``[has_more:u8][cursor_len:u32][cursor][count:u32] entries``."""
    parts = [bytes((1 if result.has_more else 0,)), _b32(result.cursor or b""), struct.pack("<I", len(result.entries))]
    for e in result.entries:
        parts.append(_b16(e.key))
        parts.append(_b32(e.value or b""))
    return b"".join(parts)


def decode_scan_result(payload: bytes) -> ScanResult:
    """Decode a scan reply; a zero-length value decodes as ``None``."""
    if len(payload) < 9:
        raise IncompleteResponseError(f"scan response needs at least 9 bytes, got {len(payload)}")
    r = Reader(payload)
    has_more = r.u8() != 0
    cursor = r.bytes32() or None
    entries = []
    for _ in range(r.u32()):
        key = r.bytes16()
        value = r.bytes32()
        entries.append(KVEntry(key, value if value else None))
    return ScanResult(entries=entries, cursor=cursor, has_more=has_more)


def encode_history(entries: Sequence[VersionEntry]) -> bytes:
    """Encode a history reply ``[count:u32] count × ([version:u64][timestamp:i64][value_len:u32][value])``."""
    parts = [struct.pack("<I", len(entries))]
    for e in entries:
        parts.append(struct.pack("<Qq", e.version, e.timestamp))
        parts.append(_b32(e.value))
    return b"".join(parts)


def decode_history(payload: bytes) -> list[VersionEntry]:
    """Decode a history reply."""
    if len(payload) < 4:
        raise IncompleteResponseError(f"history response needs at least 4 bytes, got {len(payload)}")
    r = Reader(payload)
    out = []
    for _ in range(r.u32()):
        version = r.u64()
        ts = r.i64()
        out.append(VersionEntry(version=version, timestamp=ts, value=r.bytes32()))
    return out


# --- Queue bodies ------------------------------------------------------------------


def enqueue_options(priority: int = 0, delay_ms: Optional[int] = None, dedup_key: Optional[str] = None) -> bytes:
    """ENQUEUE options: PRIORITY (u8, only when ≠ 0), DELAY_MS (u64), DEDUP_KEY (string)."""
    o = Options()
    if priority:
        o.u8(Tag.PRIORITY, priority)
    if delay_ms is not None:
        o.u64(Tag.DELAY_MS, delay_ms)
    if dedup_key is not None:
        o.raw(Tag.DEDUP_KEY, dedup_key)
    return o.build()


def decode_seq(payload: bytes) -> int:
    """ENQUEUE OK payload: ``[seq:u64]``."""
    if len(payload) < 8:
        raise IncompleteResponseError(f"enqueue response needs 8 bytes, got {len(payload)}")
    return struct.unpack_from("<Q", payload)[0]


def clamp_u32(v: int) -> int:
    """Fit a count or limit into its u32 option. The server clamps counts and limits
    to their range (a count of 0 means 1 or the default, a limit of 0 the default), so
    a value below 0 or past u32 is clamped here rather than raised (SEMANTICS §2.5,
    §2.6, §3.3, §3.8, §4.3, §4.4, D26)."""
    return min(max(int(v), 0), 0xFFFFFFFF)


def dequeue_options(count: int, visibility_timeout_ms: Optional[int] = None, block_ms: Optional[int] = None) -> bytes:
    """DEQUEUE options: COUNT (always), VISIBILITY_TIMEOUT_MS, BLOCK_MS."""
    o = Options().u32(Tag.COUNT, clamp_u32(count))
    if visibility_timeout_ms is not None:
        # The server clamps the timeout to 12 h (SEMANTICS §3.3); a negative one is still refused.
        o.u32(Tag.VISIBILITY_TIMEOUT_MS, min(visibility_timeout_ms, 0xFFFFFFFF))
    if block_ms is not None:
        o.u32(Tag.BLOCK_MS, block_ms)
    return o.build()


def encode_seq_list(seqs: Iterable[int]) -> bytes:
    """Encode ``[count:u32] count × [seq:u64]``."""
    s = [int(x) for x in seqs]
    return struct.pack(f"<I{len(s)}Q", len(s), *s)


def decode_seq_list(value: bytes) -> list[int]:
    """Decode ``[count:u32] count × [seq:u64]``."""
    r = Reader(value)
    return [r.u64() for _ in range(r.u32())]


def encode_message_list(messages: Sequence[Message], detailed: bool = False) -> bytes:
    """Encode ``[count:u32] count × ([seq:u64][payload_len:u32][payload])``, plus flo's
    detail extension per message when ``detailed``."""
    parts = [struct.pack("<I", len(messages))]
    for m in messages:
        parts.append(struct.pack("<QI", m.seq, len(m.payload)))
        parts.append(m.payload)
        if detailed:
            parts.append(struct.pack("<BIqq", m.priority or 0, m.delivery_count or 0, m.enqueued_at or 0, m.dlq_at or 0))
            parts.append(_b16((m.reason or "").encode()))
    return b"".join(parts)


def decode_message_list(payload: bytes, detailed: bool = False) -> list[Message]:
    """Decode a message list (dequeue, peek, DLQ list). Fewer than 4 bytes means no messages.

    With ``detailed`` (the request carried MESSAGE_DETAIL 0x72) each record continues
    ``[priority:u8][deliveries:u32][enqueued_at_ms:i64][dlq_at_ms:i64][reason_len:u16][reason]``.
    """
    if len(payload) < 4:
        return []
    r = Reader(payload)
    out = []
    for _ in range(r.u32()):
        seq = r.u64()
        m = Message(seq=seq, payload=r.bytes32())
        if detailed:
            m.priority = r.u8()
            m.delivery_count = r.u32()
            m.enqueued_at = r.i64()
            dlq_at = r.i64()
            m.dlq_at = dlq_at or None
            m.reason = r.str16() or None
        out.append(m)
    return out


def encode_queue_stats(st: QueueStats) -> bytes:
    """Encode ``[ready:u64][delayed:u64][in_flight:u64][dlq:u64]``."""
    return struct.pack("<QQQQ", st.ready, st.delayed, st.in_flight, st.dlq)


def decode_queue_stats(payload: bytes) -> QueueStats:
    """Decode the QUEUE_STATS reply (a flo extension); trailing fields are ignored."""
    if len(payload) < 32:
        raise IncompleteResponseError(f"queue stats response needs 32 bytes, got {len(payload)}")
    ready, delayed, in_flight, dlq = struct.unpack_from("<QQQQ", payload)
    return QueueStats(ready=ready, delayed=delayed, in_flight=in_flight, dlq=dlq)


def decode_u64(payload: bytes) -> int:
    """Decode a ``[n:u64]`` reply (0 when shorter)."""
    return struct.unpack_from("<Q", payload)[0] if len(payload) >= 8 else 0


# --- Stream bodies -----------------------------------------------------------------


def stream_append_options(partition_key: Optional[str] = None, timestamp_ms: Optional[int] = None) -> bytes:
    """APPEND options (flo extensions): PARTITION_KEY 0x25 (string), TIMESTAMP_MS 0x70 (u64)."""
    o = Options()
    if partition_key is not None:
        o.raw(Tag.PARTITION_KEY, partition_key)
    if timestamp_ms is not None:
        o.u64(Tag.TIMESTAMP_MS, timestamp_ms)
    return o.build()


def encode_stream_append_result(result: StreamAppendResult) -> bytes:
    """Encode ``[sequence:u64][timestamp_ms:i64]``."""
    return struct.pack("<Qq", result.offset, result.timestamp)


def decode_stream_append_result(payload: bytes) -> StreamAppendResult:
    """Decode ``[sequence:u64][timestamp_ms:i64]``."""
    if len(payload) < 16:
        raise IncompleteResponseError(f"append response needs 16 bytes, got {len(payload)}")
    seq, ts = struct.unpack_from("<Qq", payload)
    return StreamAppendResult(offset=seq, timestamp=ts)


def stream_read_options(
    tail: bool = False,
    start: Optional[bytes] = None,
    end: Optional[bytes] = None,
    partition: Optional[int] = None,
    count: Optional[int] = None,
    block_ms: Optional[int] = None,
) -> bytes:
    """READ options in the SDK's order: TAIL, START, END, PARTITION, COUNT, BLOCK_MS.

    ``start``/``end`` are 16-byte StreamIDs (``StreamID.to_bytes()``).
    """
    o = Options()
    if tail:
        o.flag(Tag.STREAM_TAIL)
    if start is not None:
        o.raw(Tag.STREAM_START, start)
    if end is not None:
        o.raw(Tag.STREAM_END, end)
    if partition is not None:
        o.u32(Tag.PARTITION, partition)
    if count is not None:
        o.u32(Tag.COUNT, clamp_u32(count))
    if block_ms is not None:
        o.u32(Tag.BLOCK_MS, block_ms)
    return o.build()


def group_read_options(
    count: Optional[int] = None,
    block_ms: Optional[int] = None,
    ack_timeout_ms: Optional[int] = None,
    max_deliver: Optional[int] = None,
) -> bytes:
    """GROUP_READ options: COUNT, BLOCK_MS, then flo's group settings (ACK_TIMEOUT_MS, MAX_DELIVER)."""
    o = Options()
    if count is not None:
        o.u32(Tag.COUNT, clamp_u32(count))
    if block_ms is not None:
        o.u32(Tag.BLOCK_MS, block_ms)
    return o.build() + group_join_options(ack_timeout_ms, max_deliver)


def stream_trim_options(
    max_len: Optional[int] = None,
    max_age_seconds: Optional[int] = None,
    max_bytes: Optional[int] = None,
    dry_run: bool = False,
) -> bytes:
    """TRIM options: RETENTION_COUNT, RETENTION_AGE, RETENTION_BYTES (u64 each), DRY_RUN."""
    o = Options()
    if max_len is not None:
        o.u64(Tag.RETENTION_COUNT, max_len)
    if max_age_seconds is not None:
        o.u64(Tag.RETENTION_AGE, max_age_seconds)
    if max_bytes is not None:
        o.u64(Tag.RETENTION_BYTES, max_bytes)
    if dry_run:
        o.flag(Tag.DRY_RUN)
    return o.build()


def decode_stream_trim_result(payload: bytes) -> StreamTrimResult:
    """Decode ``[deleted_count:u64][first_seq:u64]``; shorter payloads report zeros."""
    if len(payload) >= 16:
        deleted, first = struct.unpack_from("<QQ", payload)
        return StreamTrimResult(deleted_count=deleted, first_offset=first)
    if len(payload) >= 8:
        return StreamTrimResult(deleted_count=struct.unpack_from("<Q", payload)[0])
    return StreamTrimResult()


def encode_stream_info(info: StreamInfo) -> bytes:
    """Encode ``[first_seq:u64][last_seq:u64][count:u64][bytes:u64]``."""
    return struct.pack("<QQQQ", info.first_offset, info.last_offset, info.count, info.bytes)


def decode_stream_info(payload: bytes) -> StreamInfo:
    """Decode the 32-byte INFO reply; extra trailing bytes are ignored."""
    if len(payload) < 32:
        raise IncompleteResponseError(f"stream info response needs 32 bytes, got {len(payload)}")
    first, last, count, size = struct.unpack_from("<QQQQ", payload)
    return StreamInfo(first_offset=first, last_offset=last, count=count, bytes=size)


def encode_group_consumer(group: str, consumer: str) -> bytes:
    """Encode ``[group_len:u16][group][consumer_len:u16][consumer]``."""
    return _b16(_name(group, "group")) + _b16(_name(consumer, "consumer"))


def encode_group_ack(group: str, seqs: Sequence[int]) -> bytes:
    """Encode ``[group_len:u16][group][count:u32] count × [seq:u64]`` (no consumer field).

    The same layout carries GROUP_NACK, GROUP_TOUCH and GROUP_DLQ_REQUEUE.
    """
    return _b16(_name(group, "group")) + encode_seq_list(seqs)


def encode_group_name(group: str) -> bytes:
    """Encode ``[group_len:u16][group]`` (the GROUP_DLQ_LIST value)."""
    return _b16(_name(group, "group"))


def group_join_options(ack_timeout_ms: Optional[int] = None, max_deliver: Optional[int] = None) -> bytes:
    """GROUP_JOIN settings (flo extension): ACK_TIMEOUT_MS (u32), MAX_DELIVER (u8)."""
    o = Options()
    if ack_timeout_ms is not None:
        o.u32(Tag.ACK_TIMEOUT_MS, ack_timeout_ms)
    if max_deliver is not None:
        o.u8(Tag.MAX_DELIVER, max_deliver)
    return o.build()


def encode_dead_records(records: Sequence[StreamDeadRecord]) -> bytes:
    """Encode a group dead-letter list (for tests and fake servers)."""
    parts = [struct.pack("<I", len(records))]
    for d in records:
        parts.append(struct.pack("<QqIq", d.offset, d.timestamp, d.deliveries, d.dead_at))
        parts.append(_b16(d.consumer.encode()))
        key = d.key if d.key is not None else (d.partition_key.encode() if d.partition_key is not None else None)
        parts.append(b"\x00" if key is None else b"\x01" + _b32(key))
        parts.append(_b32(d.payload))
    return b"".join(parts)


def decode_dead_records(payload: bytes) -> list[StreamDeadRecord]:
    """Decode a GROUP_DLQ_LIST reply (flo extension)::

        [count:u32] count × ([sequence:u64][timestamp_ms:i64][deliveries:u32][dead_at_ms:i64]
          [consumer_len:u16][consumer][key_present:u8]([key_len:u32][key])?[payload_len:u32][payload])
    """
    if len(payload) < 4:
        return []
    r = Reader(payload)
    out = []
    for _ in range(r.u32()):
        seq = r.u64()
        ts = r.i64()
        deliveries = r.u32()
        dead_at = r.i64()
        consumer = r.str16()
        key = r.bytes32() if r.u8() else None
        body = r.bytes32()
        out.append(
            StreamDeadRecord(
                offset=seq, timestamp=ts, deliveries=deliveries, dead_at=dead_at, consumer=consumer,
                payload=body, partition_key=_utf8(key) if key is not None else None, key=key,
            )
        )
    return out


def encode_record_list(records: Sequence[StreamRecord]) -> bytes:
    """Encode a record list (§6); a record's key is written when ``partition_key`` or ``key`` is set."""
    parts = [struct.pack("<I", len(records))]
    for rec in records:
        parts.append(struct.pack("<QqBI", rec.offset, rec.timestamp, rec.tier, rec.partition))
        key = rec.key if rec.key is not None else (rec.partition_key.encode() if rec.partition_key is not None else None)
        if key is None:
            parts.append(b"\x00")
        else:
            parts.append(b"\x01" + _b32(key))
        parts.append(_b32(rec.payload))
        parts.append(struct.pack("<I", len(rec.headers)))
        for hk, hv in rec.headers.items():
            parts.append(_b32(hk.encode()) + _b32(hv))
    return b"".join(parts)


def decode_record_list(payload: bytes) -> list[StreamRecord]:
    """Decode a READ / GROUP_READ reply (§6). Fewer than 4 bytes means no records.

    The record key carries the partition key on flo (exposed as
    ``partition_key``); headers, when present, are decoded rather than skipped.
    """
    if len(payload) < 4:
        return []
    r = Reader(payload)
    out = []
    for _ in range(r.u32()):
        seq = r.u64()
        ts = r.i64()
        tier = r.u8()
        partition = r.u32()
        key: Optional[bytes] = None
        if r.u8() != 0:
            key = r.bytes32()
        body = r.bytes32()
        headers: dict[str, bytes] = {}
        for _ in range(r.u32()):
            hk = r.bytes32()
            headers[_utf8(hk)] = r.bytes32()
        out.append(
            StreamRecord(
                offset=seq,
                timestamp=ts,
                payload=body,
                partition_key=_utf8(key) if key is not None else None,
                tier=tier,
                partition=partition,
                headers=headers,
                key=key,
            )
        )
    return out


# --- Action bodies -----------------------------------------------------------------


def encode_action_register(
    action_type: int, timeout_ms: int = 30000, max_retries: int = 3, description: Optional[str] = None
) -> bytes:
    """Encode the REGISTER value (§5.4)."""
    if not 0 <= timeout_ms <= 0xFFFFFFFF or not 0 <= max_retries <= 0xFFFFFFFF:
        raise ValidationError("timeout_ms and max_retries must fit in a u32")
    out = struct.pack("<BII", int(action_type), timeout_ms, max_retries)
    if description is not None:
        out += b"\x01" + _b16(_name(description, "description"))
    else:
        out += b"\x00"
    return out + b"\x00" * 5


def encode_action_invoke(
    input: bytes, priority: int = 10, idempotency_key: Optional[str] = None, delay_ms: int = 0
) -> bytes:
    """Encode the INVOKE value: priority, delay, no caller, optional idempotency key, input."""
    if not 0 <= priority <= 255:
        raise ValidationError(f"priority {priority} out of range 0..255")
    if delay_ms < 0:
        raise ValidationError(f"delay_ms must be >= 0, got {delay_ms}")
    out = struct.pack("<BqB", priority, delay_ms, 0)
    if idempotency_key is not None:
        out += b"\x01" + _b16(_name(idempotency_key, "idempotency key"))
    else:
        out += b"\x00"
    return out + bytes(input)


def decode_action_invoke(payload: bytes) -> str:
    """INVOKE OK payload: the whole payload is the run ID as UTF-8 text."""
    return _utf8(payload)


def encode_action_status(st: ActionRunStatus) -> bytes:
    """Encode the server-defined STATUS layout (§5.4) (for tests and fake servers)."""
    code = {v: k for k, v in RunStatus.BY_CODE.items()}.get(st.status, st.status_code)
    parts = [_b32(st.run_id.encode()), struct.pack("<Bq", code, st.created_at)]
    for t in (st.started_at, st.completed_at):
        parts.append(b"\x00" if t is None else b"\x01" + struct.pack("<q", t))
    parts.append(b"\x00" if st.result is None else b"\x01" + _b32(st.result))
    parts.append(b"\x00" if st.error is None else b"\x01" + _b32(st.error.encode()))
    parts.append(struct.pack("<I", st.retry_count))
    return b"".join(parts)


def decode_action_status(payload: bytes) -> ActionRunStatus:
    """Decode the server-defined STATUS layout (§5.4)::

        [run_id_len:u32][run_id][status:u8][created_at_ms:i64]
        [has_started:u8]([started_at_ms:i64])? [has_completed:u8]([completed_at_ms:i64])?
        [has_output:u8]([output_len:u32][output])? [has_error:u8]([error_len:u32][error])?
        [retry_count:u32]
    """
    r = Reader(payload)
    run_id = r.str32()
    code = r.u8()
    created = r.i64()
    started = r.i64() if r.u8() else None
    completed = r.i64() if r.u8() else None
    output = r.bytes32() if r.u8() else None
    error = r.str32() if r.u8() else None
    retry = r.u32() if r.remaining >= 4 else 0
    return ActionRunStatus(
        run_id=run_id,
        status=RunStatus.BY_CODE.get(code, f"unknown({code})"),
        created_at=created,
        started_at=started,
        completed_at=completed,
        result=output,
        error=error,
        retry_count=retry,
        status_code=code,
    )


def encode_action_list_request(limit: int = 100, cursor: Optional[bytes] = None) -> bytes:
    """Encode the LIST value ``[limit:u32][cursor: bytes to end]`` (the cursor is a flo extension)."""
    return struct.pack("<I", clamp_u32(limit)) + (cursor or b"")


def encode_action_list(actions: Sequence[ActionInfo], has_more: bool = False, cursor: bytes = b"") -> bytes:
    """Encode the LIST layout (for tests and fake servers); entries carry flo's settings
    extension when ``timeout_ms`` is set."""
    parts = [struct.pack("<I", len(actions))]
    for a in actions:
        parts.append(_b16(a.name.encode()))
        entry = struct.pack("<BIB", a.action_type, a.version, 1 if a.enabled else 0)
        if a.timeout_ms is not None:
            entry += struct.pack("<II", a.timeout_ms, a.max_retries or 0)
            entry += b"\x00" if a.description is None else b"\x01" + _b16(a.description.encode())
        parts.append(_b32(entry))
    parts.append(bytes((1 if has_more else 0,)) + _b16(cursor))
    return b"".join(parts)


def _decode_list_trailer(r: "Reader") -> tuple[bool, Optional[bytes]]:
    """Read ``[has_more:u8][cursor_len:u16][cursor]`` when present."""
    if r.remaining == 0:
        return False, None
    more = r.u8() != 0
    if r.remaining < 2:
        return more, None
    return more, r.bytes16() or None


def decode_action_list(payload: bytes) -> ActionList:
    """Decode the server-defined LIST layout (§5.4)::

        [count:u32] count × ([name_len:u16][name][entry_len:u32][type:u8][version:u32][enabled:u8] …)
        [has_more:u8][cursor_len:u16]

    ``entry_len`` bounds each entry; when it is longer than 6 the optional
    extension ``[timeout_ms:u32][max_retries:u32][has_desc:u8]([desc_len:u16][desc])?``
    is read from the extra bytes, and anything beyond is skipped. The trailer's
    cursor (a flo extension) resumes the listing.
    """
    if len(payload) < 4:
        return ActionList()
    r = Reader(payload)
    out = []
    for _ in range(r.u32()):
        name = r.str16()
        entry = Reader(r.bytes32())
        info = ActionInfo(name=name)
        if entry.remaining >= 6:
            info.action_type = entry.u8()
            info.version = entry.u32()
            info.enabled = entry.u8() != 0
        if entry.remaining >= 8:
            info.timeout_ms = entry.u32()
            info.max_retries = entry.u32()
            if entry.remaining >= 1 and entry.u8():
                info.description = entry.str16()
        out.append(info)
    more, cursor = _decode_list_trailer(r)
    return ActionList(out, more, cursor)


# --- Worker bodies -----------------------------------------------------------------


def encode_task_types(task_types: Sequence[str]) -> bytes:
    """Encode ``[count:u32] count × ([len:u16][task_type])``."""
    parts = [struct.pack("<I", len(task_types))]
    for t in task_types:
        parts.append(_b16(_name(t, "task type")))
    return b"".join(parts)


def encode_worker_register(task_types: Sequence[str], max_concurrency: Optional[int] = None) -> bytes:
    """Encode the WORKER_REGISTER value: task types, then ``has_caps = 0``, or (flo
    extension) ``has_caps = 1`` and ``[max_concurrency:u32]``."""
    if max_concurrency is None:
        return encode_task_types(task_types) + b"\x00"
    return encode_task_types(task_types) + b"\x01" + struct.pack("<I", max_concurrency)


def worker_await_options(
    block_ms: Optional[int] = None, timeout_ms: Optional[int] = None, count: Optional[int] = None
) -> bytes:
    """AWAIT options: COUNT (u32, flo's batch extension), BLOCK_MS (u32), TIMEOUT_MS (4 bytes, like the SDK)."""
    o = Options()
    if count is not None:
        o.u32(Tag.COUNT, clamp_u32(count))  # clamped, never refused: 0 (or less) means 1 (D26)
    if block_ms is not None:
        o.u32(Tag.BLOCK_MS, block_ms)
    if timeout_ms is not None:
        o.u32(Tag.TIMEOUT_MS, timeout_ms)
    return o.build()


def encode_task_assignment(task: TaskAssignment) -> bytes:
    """Encode a task assignment (for tests and fake servers)."""
    return b"".join(
        (
            _b16(task.task_id.encode()),
            _b16(task.action_name.encode()),
            struct.pack("<qI", task.created_at, task.attempt),
            task.input,
        )
    )


def decode_task_assignment(payload: bytes) -> Optional[TaskAssignment]:
    """Decode an AWAIT reply; an empty payload means no task."""
    if not payload:
        return None
    if len(payload) < 10:
        raise IncompleteResponseError(f"task assignment needs at least 10 bytes, got {len(payload)}")
    r = Reader(payload)
    task_id = r.str16()
    task_type = r.str16()
    created = r.i64()
    attempt = r.u32()
    return TaskAssignment(task_id=task_id, action_name=task_type, input=r.rest(), created_at=created, attempt=attempt)


def encode_task_batch(tasks: Sequence[TaskAssignment]) -> bytes:
    """Encode a batch AWAIT reply ``[count:u32] count × ([len:u32][task assignment])``."""
    parts = [struct.pack("<I", len(tasks))]
    for t in tasks:
        parts.append(_b32(encode_task_assignment(t)))
    return b"".join(parts)


def decode_task_batch(payload: bytes) -> list[TaskAssignment]:
    """Decode the reply to an AWAIT that carried COUNT (flo extension); empty means no task."""
    if len(payload) < 4:
        return []
    r = Reader(payload)
    out = []
    for _ in range(r.u32()):
        task = decode_task_assignment(r.bytes32())
        if task is None:
            raise IncompleteResponseError("empty assignment in a batch await reply")
        out.append(task)
    return out


def encode_worker_touch(task_id: str, extend_ms: int = 30000) -> bytes:
    """Encode ``[task_id_len:u16][task_id][extend_ms:u32]``."""
    if not 0 <= extend_ms <= 0xFFFFFFFF:
        raise ValidationError(f"extend_ms {extend_ms} out of range")
    return _b16(_name(task_id, "task id")) + struct.pack("<I", extend_ms)


def encode_worker_complete(task_id: str, result: bytes) -> bytes:
    """Encode ``[task_id_len:u16][task_id][result: bytes to end]``."""
    return _b16(_name(task_id, "task id")) + bytes(result)


def encode_worker_fail(task_id: str, error: str) -> bytes:
    """Encode ``[task_id_len:u16][task_id][error: bytes to end]``."""
    return _b16(_name(task_id, "task id")) + error.encode("utf-8")


def worker_fail_options(retry: bool) -> bytes:
    """FAIL options: a zero-length RETRY flag when ``retry``."""
    return Options().flag(Tag.RETRY).build() if retry else b""


def encode_worker_list_request(limit: int = 100, cursor: Optional[bytes] = None) -> bytes:
    """Encode the WORKER_LIST value ``[limit:u32][cursor: bytes to end]``."""
    return struct.pack("<I", clamp_u32(limit)) + (cursor or b"")


def encode_worker_list(workers: Sequence[WorkerInfo], has_more: bool = False, cursor: bytes = b"") -> bytes:
    """Encode the server-defined WORKER_LIST layout (for tests and fake servers)."""
    codes = {v: k for k, v in WorkerStatus.BY_CODE.items()}
    parts = [struct.pack("<I", len(workers))]
    for w in workers:
        parts.append(_b16(w.worker_id.encode()))
        parts.append(
            struct.pack(
                "<BBQQIIqq",
                w.worker_type,
                codes.get(w.status, 0),
                w.tasks_completed,
                w.tasks_failed,
                w.current_load,
                w.max_concurrency,
                w.registered_at,
                w.last_heartbeat,
            )
        )
        parts.append(struct.pack("<H", len(w.processes)))
        for p in w.processes:
            parts.append(_b16(p.name.encode()) + struct.pack("<BQQq", p.kind, p.run_count, p.fail_count, p.last_run_at))
        parts.append(b"\x00" if w.metadata is None else b"\x01" + _b16(w.metadata.encode()))
        parts.append(b"\x00" if w.machine_id is None else b"\x01" + _b16(w.machine_id.encode()))
    parts.append(bytes((1 if has_more else 0,)) + _b16(cursor))
    return b"".join(parts)


def decode_worker_list(payload: bytes) -> WorkerList:
    """Decode the server-defined WORKER_LIST layout (§5.5)."""
    if len(payload) < 4:
        return WorkerList()
    r = Reader(payload)
    out = []
    for _ in range(r.u32()):
        wid = r.str16()
        wtype = r.u8()
        status = r.u8()
        w = WorkerInfo(
            worker_id=wid,
            worker_type=wtype,
            status=WorkerStatus.BY_CODE.get(status, f"unknown({status})"),
            tasks_completed=r.u64(),
            tasks_failed=r.u64(),
            current_load=r.u32(),
            max_concurrency=r.u32(),
            registered_at=r.i64(),
            last_heartbeat=r.i64(),
        )
        for _ in range(r.u16()):
            name = r.str16()
            w.processes.append(
                WorkerProcess(name=name, kind=r.u8(), run_count=r.u64(), fail_count=r.u64(), last_run_at=r.i64())
            )
        if r.u8():
            w.metadata = r.str16()
        if r.u8():
            w.machine_id = r.str16()
        out.append(w)
    more, cursor = _decode_list_trailer(r)
    return WorkerList(out, more, cursor)
