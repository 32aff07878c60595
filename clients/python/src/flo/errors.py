"""Exceptions raised by the flo SDK.

Every exception derives from :class:`FloError`. A non-OK response status maps to
exactly one :class:`ServerError` subclass (see :func:`error_for_status`); the
client itself raises :class:`ConnectionFailedError` when it cannot reach or
loses the server, :class:`InvalidChecksumError` when a response's CRC32 does not
match, and :class:`OperationTimeoutError` when a call outlives its deadline.
"""

from __future__ import annotations

from typing import Optional


class FloError(Exception):
    """Base class of every error the flo SDK raises."""


# --- Server statuses -------------------------------------------------------


class ServerError(FloError):
    """A response carried a non-OK status. ``status_code`` is the wire status."""

    status_code: int = 1
    default_message: str = "Server error"

    def __init__(self, message: Optional[str] = None, status_code: Optional[int] = None) -> None:
        if status_code is not None:
            self.status_code = status_code
        self.message = message or self.default_message
        super().__init__(self.message)


class GenericServerError(ServerError):
    """ERROR_GENERIC (1), and any status the SDK has no dedicated class for."""

    status_code = 1
    default_message = "Server error"


class NotFoundError(ServerError):
    """NOT_FOUND (2): the key's history, the action, the run or the task does not exist."""

    status_code = 2
    default_message = "Not found"


class BadRequestError(ServerError):
    """BAD_REQUEST (3): invalid request parameters."""

    status_code = 3
    default_message = "Bad request"


class UnauthorizedError(ServerError):
    """UNAUTHORIZED (7): authentication failed."""

    status_code = 7
    default_message = "Unauthorized"


class ConflictError(ServerError):
    """CONFLICT (8): a CAS version mismatch, a failed if_exists/if_not_exists, or a stale worker report."""

    status_code = 8
    default_message = "Conflict"


class InternalServerError(ServerError):
    """INTERNAL_ERROR (9): an unexpected server fault."""

    status_code = 9
    default_message = "Internal server error"


class OverloadedError(ServerError):
    """OVERLOADED (10): a server capacity limit was hit; the call may be retried."""

    status_code = 10
    default_message = "Server overloaded"


class RateLimitedError(ServerError):
    """RATE_LIMITED (11): the caller is being rate limited."""

    status_code = 11
    default_message = "Rate limited"


_STATUS_ERRORS: dict[int, type[ServerError]] = {
    1: GenericServerError,
    2: NotFoundError,
    3: BadRequestError,
    7: UnauthorizedError,
    8: ConflictError,
    9: InternalServerError,
    10: OverloadedError,
    11: RateLimitedError,
}


def error_for_status(status: int, payload: bytes = b"") -> ServerError:
    """Build the exception for a non-OK ``status``; the payload is the server's message."""
    cls = _STATUS_ERRORS.get(status, GenericServerError)
    try:
        message = payload.decode("utf-8") if payload else ""
    except UnicodeDecodeError:
        message = ""
    if not message:
        message = cls.default_message
    if cls is GenericServerError and status != 1:
        message = f"{message} (status {status})"
    return cls(message, status_code=status)


# --- Client-side failures --------------------------------------------------


class ConnectionFailedError(FloError, ConnectionError):
    """The client could not connect to the server, or the connection broke mid-call."""


class OperationTimeoutError(FloError, TimeoutError):
    """A call did not get its reply within the client's deadline."""


class ProtocolError(FloError):
    """The server sent bytes the client cannot interpret."""


class InvalidChecksumError(ProtocolError):
    """A response's CRC32 did not match its contents."""


class InvalidMagicError(ProtocolError):
    """A response did not start with the Flo magic bytes."""


class UnsupportedVersionError(ProtocolError):
    """A response carried a protocol version other than 1."""


class IncompleteResponseError(ProtocolError):
    """A response body was shorter than its layout requires."""


class ValidationError(BadRequestError, ValueError):
    """An argument was rejected by the client before anything was sent.

    It is a :class:`BadRequestError`, the error the server raises for the same
    arguments (an empty name, a size limit, a value out of range), so callers
    need not care which side noticed.
    """


class NonRetryableError(FloError):
    """Raise from a :class:`flo.Worker` handler to fail the task without a retry."""


__all__ = [
    "FloError",
    "ServerError",
    "GenericServerError",
    "NotFoundError",
    "BadRequestError",
    "UnauthorizedError",
    "ConflictError",
    "InternalServerError",
    "OverloadedError",
    "RateLimitedError",
    "ConnectionFailedError",
    "OperationTimeoutError",
    "ProtocolError",
    "InvalidChecksumError",
    "InvalidMagicError",
    "UnsupportedVersionError",
    "IncompleteResponseError",
    "ValidationError",
    "NonRetryableError",
    "error_for_status",
]
