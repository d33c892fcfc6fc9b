"""The seed services' cache layer, as they wrote it by hand over redis-py: bench/python's peer.

What every seed service carried in its `cache.py` (clients/python/MIGRATION.md shows it beside
strata's calls): a `CacheManager` over redis-py with JSON values (`get` is GET + json.loads,
`set` is SETEX of json.dumps), an in-memory fallback when Redis is not configured, the
`get_cache()` factory, the `@cache_result(ttl=, key_prefix=)` decorator (build a key from the
arguments, try GET, else compute and SETEX), `delete_pattern` (SCAN + DELETE), a fixed-window
`RateLimitCache` and a Redis session store. Reproduced here so that the benchmark measures the
code it replaces, not a tuned version of it.
"""
import functools
import hashlib
import json
import logging
import os
import time
import uuid
from typing import Any, Callable, Dict, Optional

import redis

logger = logging.getLogger(__name__)


class CacheManager:
    """Redis with JSON values; errors are logged and read as a miss."""

    def __init__(self, redis_url: str, default_ttl: int = 300) -> None:
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True,
                                          socket_connect_timeout=5, socket_timeout=5)
        self.default_ttl = default_ttl

    def get(self, key: str) -> Optional[Any]:
        try:
            value = self.redis.get(key)
            return json.loads(value) if value is not None else None
        except (redis.RedisError, ValueError) as exc:
            logger.warning("cache get %s failed: %s", key, exc)
            return None

    def set(self, key: str, value: Any, ttl: Optional[int] = None) -> bool:
        try:
            self.redis.setex(key, ttl or self.default_ttl, json.dumps(value, default=str))
            return True
        except redis.RedisError as exc:
            logger.warning("cache set %s failed: %s", key, exc)
            return False

    def delete(self, key: str) -> bool:
        try:
            return bool(self.redis.delete(key))
        except redis.RedisError:
            return False

    def delete_pattern(self, pattern: str) -> int:
        try:
            keys = list(self.redis.scan_iter(match=pattern, count=500))
            return self.redis.delete(*keys) if keys else 0
        except redis.RedisError:
            return 0


class MemoryCacheManager:
    """The fallback when REDIS_URL is not set: a dict with expiry times, per process."""

    def __init__(self, default_ttl: int = 300) -> None:
        self.data: Dict[str, Any] = {}
        self.default_ttl = default_ttl

    def get(self, key: str) -> Optional[Any]:
        item = self.data.get(key)
        if item is None or item[1] < time.time():
            return None
        return item[0]

    def set(self, key: str, value: Any, ttl: Optional[int] = None) -> bool:
        self.data[key] = (value, time.time() + (ttl or self.default_ttl))
        return True

    def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    def delete_pattern(self, pattern: str) -> int:
        prefix = pattern.rstrip("*")
        doomed = [k for k in self.data if k.startswith(prefix)]
        for k in doomed:
            del self.data[k]
        return len(doomed)


_cache: Optional[Any] = None


def get_cache() -> Any:
    """One CacheManager per process: Redis when REDIS_URL is set, else memory."""
    global _cache
    if _cache is None:
        url = os.environ.get("REDIS_URL")
        _cache = CacheManager(url) if url else MemoryCacheManager()
    return _cache


def cache_key(prefix: str, args: Any, kwargs: Any) -> str:
    raw = f"{args}:{sorted(kwargs.items())}"
    return f"cache:{prefix}:{hashlib.md5(raw.encode()).hexdigest()}"


def cache_result(ttl: int = 300, key_prefix: str = "") -> Callable[[Callable[..., Any]],
                                                                  Callable[..., Any]]:
    """Cache-aside: the key from the prefix and the arguments; GET, else compute and SETEX."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            cache = get_cache()
            key = cache_key(key_prefix or func.__name__, args, kwargs)
            cached = cache.get(key)
            if cached is not None:
                return cached
            result = func(*args, **kwargs)
            cache.set(key, result, ttl)
            return result

        return wrapper

    return decorator


class RateLimitCache:
    """A fixed window per user: INCR the window's counter, EXPIRE it on the first hit."""

    def __init__(self, r: "redis.Redis[str]") -> None:
        self.redis = r

    def is_allowed(self, user: str, limit: int, window: int) -> bool:
        key = f"ratelimit:{user}:{int(time.time() // window)}"
        count = self.redis.incr(key)
        if count == 1:
            self.redis.expire(key, window)
        return int(count) <= limit


class SessionStore:
    """Sessions as JSON under session:{id}, with a TTL renewed on every read."""

    def __init__(self, r: "redis.Redis[str]", ttl: int = 3600) -> None:
        self.redis, self.ttl = r, ttl

    def create(self, data: Dict[str, Any]) -> str:
        sid = uuid.uuid4().hex
        self.redis.setex(f"session:{sid}", self.ttl, json.dumps(data))
        return sid

    def get(self, sid: str) -> Optional[Dict[str, Any]]:
        raw = self.redis.get(f"session:{sid}")
        if raw is None:
            return None
        self.redis.expire(f"session:{sid}", self.ttl)
        return dict(json.loads(raw))

    def delete(self, sid: str) -> None:
        self.redis.delete(f"session:{sid}")
