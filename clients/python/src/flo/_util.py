"""Small helpers shared by the primitive clients."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Union

from .errors import ValidationError
from .results import StreamID
from .wire import MAX_VALUE_BYTES

BytesLike = Union[bytes, bytearray, memoryview]

U64_MAX = 2**64 - 1


def to_bytes(value: Union[str, BytesLike], what: str = "value") -> bytes:
    """Encode ``str`` as UTF-8 and copy byte-likes; anything else is a ValidationError."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise ValidationError(f"{what} must be bytes or str, got {type(value).__name__}")


def payload_bytes(value: Union[str, BytesLike], what: str = "value") -> bytes:
    """Like :func:`to_bytes`, for a value, payload, action input or result: at most 16 MiB."""
    b = to_bytes(value, what)
    if len(b) > MAX_VALUE_BYTES:
        raise ValidationError(f"{what} is {len(b)} bytes; at most {MAX_VALUE_BYTES} allowed")
    return b


def cut_utf8(s: str, n: int) -> str:
    """``s`` cut to at most ``n`` UTF-8 bytes without splitting a character: for
    diagnostic texts (failure reasons), where a cut text beats a refused call."""
    b = s.encode("utf-8", "replace")
    if len(b) <= n:
        return s
    return b[:n].decode("utf-8", "ignore")


def name_bytes(name: Union[str, BytesLike], what: str) -> bytes:
    """Encode a required name (key, queue, stream …); empty names are rejected client-side."""
    b = to_bytes(name, what)
    if not b:
        raise ValidationError(f"{what} must not be empty")
    return b


def namespace_of(options: Any) -> Optional[str]:
    """Return the namespace override of an options object, if any."""
    return getattr(options, "namespace", None) if options is not None else None


def seq_list(seqs: Union[int, StreamID, Iterable[Union[int, StreamID]]]) -> list[int]:
    """Normalise a seq/offset argument: one int, StreamIDs or a list of either."""
    if isinstance(seqs, (int, StreamID)):
        seqs = [seqs]
    out = []
    for s in seqs:
        n = s.sequence if isinstance(s, StreamID) else int(s)
        if not 0 <= n <= U64_MAX:
            raise ValidationError(f"seq/offset {n} out of range 0..{U64_MAX}")
        out.append(n)
    return out



def stream_id_bytes(sid: StreamID, what: str) -> bytes:
    """Encode a StreamID option, refusing halves a u64 cannot hold."""
    for half in (sid.timestamp_ms, sid.sequence):
        if not 0 <= half <= U64_MAX:
            raise ValidationError(f"{what} {sid} out of range: both halves must be 0..{U64_MAX}")
    return sid.to_bytes()
