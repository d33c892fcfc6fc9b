"""What calls answer besides values: write results, rate-limit decisions, invalidations."""
from dataclasses import dataclass, field
from typing import Dict, Optional


@dataclass(frozen=True)
class WriteResult:
    """The answer to a write.

    stored: False when the write was not made: set(create=True) on a key that exists, or the
    server unreachable under fail_open. l1_only: the server said `X-Cache-Write: l1-only`: only
    its memory took the write (Redis down, read-only, ...), other instances do not see it and it
    does not survive a restart; `reason` is its X-Cache-Reason. Truthy when stored."""

    stored: bool = True
    l1_only: bool = False
    reason: Optional[str] = None
    items: Dict[str, str] = field(default_factory=dict)  # set_many: key -> "ok", "l1-only", ...

    def __bool__(self) -> bool:
        return self.stored


@dataclass(frozen=True)
class RateLimitDecision:
    """POST /v1/ratelimit's answer: allowed, and the figures (seconds, rounded up)."""

    allowed: bool
    limit: int
    remaining: int
    reset: float
    retry_after: float

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class InvalidateResult:
    tags_invalidated: int
    keys_removed: int
    l1_only: bool = False


@dataclass(frozen=True)
class PurgeResult:
    tags: int
    urls: int
    keys: int
    soft: bool
