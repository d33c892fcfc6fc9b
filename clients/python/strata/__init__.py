"""strata: the Python client of strata's HTTP API (a two-tier cache, leases, rate limits,
sessions). `Strata` blocks (thread-safe, keep-alive pool); `AsyncStrata` is its asyncio twin.

    from strata import Strata
    cache = Strata()                     # STRATA_URL, STRATA_TOKEN, STRATA_TENANT
    cache.set("user:42", {"name": "Ada"}, ttl=60, tags=["user-42"])
    cache.get("user:42")                 # {'name': 'Ada'}

    @cache.cached(ns="reports", ttl=600)
    def daily(day: str) -> dict: ...     # one computation per key across every process
"""
from ._aio import AsyncSessions, AsyncStrata
from ._codec import JsonSerializer, Serializer
from ._errors import (BadRequest, ComputeFailed, Forbidden, LeaseNotHeld, NotFound,
                      PreconditionFailed, RateLimited, ServerError, StrataError,
                      StrataUnavailable, TooLarge, Unauthorized)
from ._results import InvalidateResult, PurgeResult, RateLimitDecision, WriteResult
from ._sync import Sessions, Strata

__version__ = "0.1.0"

__all__ = [
    "Strata", "AsyncStrata", "Sessions", "AsyncSessions",
    "Serializer", "JsonSerializer",
    "WriteResult", "RateLimitDecision", "InvalidateResult", "PurgeResult",
    "StrataError", "StrataUnavailable", "BadRequest", "Unauthorized", "Forbidden", "NotFound",
    "LeaseNotHeld", "PreconditionFailed", "TooLarge", "RateLimited", "ServerError",
    "ComputeFailed",
]
