"""KV store operations: ``client.kv``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

from . import wire
from ._util import BytesLike, name_bytes, namespace_of, payload_bytes, to_bytes
from .options import DeleteOptions, GetOptions, HistoryOptions, PutOptions, ScanOptions
from .results import ScanResult, VersionEntry
from .wire import OpCode, Status, Tag

if TYPE_CHECKING:
    from .client import FloClient

Key = Union[str, BytesLike]
_NOT_FOUND = (Status.NOT_FOUND,)


class KVClient:
    """Versioned key-value storage with TTL, CAS, scans and history."""

    def __init__(self, client: "FloClient") -> None:
        self._client = client

    async def get(self, key: Key, options: Optional[GetOptions] = None) -> Optional[bytes]:
        """Return the value of ``key``, or ``None`` if it is absent (or empty).

        With ``GetOptions(block_ms=…)`` waits until the key exists (``0`` = no
        limit); on timeout returns ``None``.
        """
        block_ms = options.block_ms if options is not None else None
        opts = wire.Options().u32(Tag.BLOCK_MS, block_ms).build() if block_ms is not None else b""
        status, payload = await self._client.request(
            OpCode.KV_GET, namespace_of(options), name_bytes(key, "key"), b"", opts,
            block_ms=block_ms, allow=_NOT_FOUND, idempotent=True,
        )
        if status == Status.NOT_FOUND or not payload:
            return None
        return payload

    async def put(self, key: Key, value: Union[str, BytesLike], options: Optional[PutOptions] = None) -> Optional[int]:
        """Write ``value`` and return the key's new version (``None`` if the server does not report it).

        Raises :class:`ConflictError` when a CAS / if_exists / if_not_exists
        condition fails; nothing changes then.
        """
        o = options or PutOptions()
        opts = wire.kv_put_options(o.ttl_seconds, o.cas_version, o.if_not_exists, o.if_exists)
        _, payload = await self._client.request(
            OpCode.KV_PUT, namespace_of(o), name_bytes(key, "key"), payload_bytes(value), opts
        )
        return wire.decode_kv_put(payload)

    async def delete(self, key: Key, options: Optional[DeleteOptions] = None) -> None:
        """Delete ``key``. Deleting an absent key succeeds."""
        await self._client.request(
            OpCode.KV_DELETE, namespace_of(options), name_bytes(key, "key"), allow=(Status.NOT_FOUND,)
        )

    async def scan(self, prefix: Key = "", options: Optional[ScanOptions] = None) -> ScanResult:
        """Return one page of live keys starting with ``prefix``, in byte order."""
        o = options or ScanOptions()
        _, payload = await self._client.request(
            OpCode.KV_SCAN, namespace_of(o), to_bytes(prefix, "prefix"), o.cursor or b"",
            wire.kv_scan_options(o.limit, o.keys_only), idempotent=True,
        )
        return wire.decode_scan_result(payload)

    async def history(self, key: Key, options: Optional[HistoryOptions] = None) -> list[VersionEntry]:
        """Return the key's versions, newest first. Raises :class:`NotFoundError` for a key never written."""
        o = options or HistoryOptions()
        opts = wire.Options()
        if o.limit is not None:
            opts.u32(Tag.LIMIT, wire.clamp_u32(o.limit))
        _, payload = await self._client.request(
            OpCode.KV_HISTORY, namespace_of(o), name_bytes(key, "key"), b"", opts.build(), idempotent=True
        )
        return wire.decode_history(payload)
