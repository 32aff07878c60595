"""Action operations: ``client.action``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

from . import wire
from ._util import BytesLike, name_bytes, namespace_of, payload_bytes, to_bytes
from .options import (
    ActionDeleteOptions,
    ActionInvokeOptions,
    ActionListOptions,
    ActionRegisterOptions,
    ActionStatusOptions,
    ActionType,
)
from .results import ActionInvokeResult, ActionList, ActionRunStatus
from .wire import OpCode, Status, Tag

if TYPE_CHECKING:
    from .client import FloClient


class ActionClient:
    """Named task types: register them, invoke runs, query run status."""

    def __init__(self, client: "FloClient") -> None:
        self._client = client

    async def register(
        self,
        name: str,
        action_type: ActionType = ActionType.USER,
        options: Optional[ActionRegisterOptions] = None,
    ) -> None:
        """Create or replace the action ``name`` (an upsert; never a conflict)."""
        o = options or ActionRegisterOptions()
        value = wire.encode_action_register(int(action_type), o.timeout_ms, o.max_retries, o.description)
        await self._client.request(OpCode.ACTION_REGISTER, namespace_of(o), name_bytes(name, "action name"), value)

    async def invoke(
        self, name: str, input: Union[str, BytesLike] = b"", options: Optional[ActionInvokeOptions] = None
    ) -> ActionInvokeResult:
        """Create a run of ``name`` with ``input``; raises NotFoundError for an unknown action.

        With an ``idempotency_key`` a repeated invoke returns the first run's ID.
        """
        o = options or ActionInvokeOptions()
        value = wire.encode_action_invoke(payload_bytes(input, "input"), o.priority, o.idempotency_key, o.delay_ms or 0)
        _, reply = await self._client.request(
            OpCode.ACTION_INVOKE, namespace_of(o), name_bytes(name, "action name"), value
        )
        return ActionInvokeResult(run_id=wire.decode_action_invoke(reply))

    async def status(self, run_id: str, options: Optional[ActionStatusOptions] = None) -> ActionRunStatus:
        """Return the run's status, result, error and timing; NotFoundError for an unknown run.

        With ``ActionStatusOptions(block_ms=…)`` the server answers once the run
        has ended (or the wait is over).
        """
        block_ms = options.block_ms if options is not None else None
        opts = wire.Options().u32(Tag.BLOCK_MS, block_ms).build() if block_ms is not None else b""
        _, reply = await self._client.request(
            OpCode.ACTION_STATUS, namespace_of(options), name_bytes(run_id, "run id"), b"", opts,
            block_ms=block_ms, idempotent=True,
        )
        return wire.decode_action_status(reply)

    async def list(self, options: Optional[ActionListOptions] = None) -> ActionList:
        """Return registered actions whose names start with ``prefix``, sorted by name.

        The result is a list; its ``has_more``/``cursor`` attributes page through long listings.
        """
        o = options or ActionListOptions()
        _, reply = await self._client.request(
            OpCode.ACTION_LIST, namespace_of(o), to_bytes(o.prefix or "", "prefix"),
            wire.encode_action_list_request(o.limit, o.cursor), idempotent=True,
        )
        return wire.decode_action_list(reply)

    async def delete(self, name: str, options: Optional[ActionDeleteOptions] = None) -> None:
        """Remove the registration (idempotent). Existing runs are not affected."""
        await self._client.request(
            OpCode.ACTION_DELETE, namespace_of(options), name_bytes(name, "action name"), allow=(Status.NOT_FOUND,)
        )
