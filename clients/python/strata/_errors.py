"""The exceptions of the strata client: one hierarchy, carrying the server's error code.

Every error the server answers itself has a JSON body {"error": {"code", "message", "status"}};
the client raises the class for its status with `.code` (stable, for programs), `.message` (for
people) and `.status`. A miss is never an exception. StrataUnavailable is the one error that did
not come from the server: it could not be reached, or went away mid-call (what fail_open covers).
"""
from typing import Dict, Optional, Type


class StrataError(Exception):
    """Base class: `code` is the server's error code, `status` its HTTP status (None when the
    server was not reached)."""

    def __init__(self, message: str, code: str = "error", status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"


class StrataUnavailable(StrataError):
    """The server could not be reached, did not answer in time, or closed the connection."""


class BadRequest(StrataError):
    """400: a malformed key, namespace, tenant, TTL, tag, body... (`code` says which)."""


class Unauthorized(StrataError):
    """401: no token, or one the server does not know."""


class Forbidden(StrataError):
    """403: the token lacks the role, or is bound to another tenant."""


class NotFound(StrataError):
    """404 where a miss is not the answer: no such route, session id given to update..."""


class LeaseNotHeld(StrataError):
    """409 lease_not_held: a lease token that is not the holder's."""


class PreconditionFailed(StrataError):
    """412: a conditional write whose condition did not hold."""


class TooLarge(StrataError):
    """413 / 414: a value over 1 MiB, a key over 512 bytes."""


class RateLimited(StrataError):
    """429 rate_limited: the server's own rate limits (not ratelimit(), which answers a decision).
    `retry_after` is the server's Retry-After in seconds."""

    retry_after: float = 1.0


class ServerError(StrataError):
    """5xx: the server could not do it (busy, out of memory, Redis needed and away)."""


class ComputeFailed(StrataError):
    """remember()/cached(): the caller that held the lease failed to compute the value and stored
    its error result (X-Cache-Error: 1); `message` is what it stored."""


_BY_STATUS: Dict[int, Type[StrataError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: LeaseNotHeld,
    412: PreconditionFailed,
    413: TooLarge,
    414: TooLarge,
    429: RateLimited,
}


def error_class(status: int) -> Type[StrataError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else StrataError
