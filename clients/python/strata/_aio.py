"""AsyncStrata: the asyncio client, HTTP/1.1 over asyncio streams with keep-alive.

Each request takes an idle connection (or opens one) and gives it back once its answer is read,
unless the server closes it. A reused connection the server had closed while idle is retried
once on a new one, as in the blocking client. The HTTP it speaks is what strata answers:
Content-Length bodies (chunked is read too), no pipelining.
"""
import asyncio
import functools
import ssl
from typing import (Any, AsyncIterator, Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple, TypeVar)

from ._cached import KeySpec, TagSpec, call_key, call_tags
from ._codec import JsonSerializer, Serializer
from ._config import resolve
from ._drive import run_async
from ._errors import StrataUnavailable
from ._http import (CHUNKED, Malformed, body_length, chunk_size, is_blank, parse_head,
                    request_bytes)
from ._protocol import Op, Ops, Request, Response
from ._results import InvalidateResult, PurgeResult, RateLimitDecision, WriteResult

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
_Conn = Tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Closed(Exception):
    """The peer closed the connection before an answer began."""


async def _read_answer(reader: asyncio.StreamReader, method: str) -> Tuple[Response, bool]:
    """(the answer, whether the connection stays open)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _Closed() from None
        raise
    except asyncio.LimitOverrunError:
        raise Malformed("an answer's head over 64 KiB") from None
    lines = head.split(b"\r\n")
    status_line, lines = lines[0], lines[1:-2]
    status, headers, keep = parse_head(status_line, lines)
    n = body_length(method, status, headers)
    if n >= 0:
        body = await reader.readexactly(n) if n else b""
    elif n == CHUNKED:
        chunks = []
        while True:
            size = chunk_size(await reader.readline())
            if size == 0:
                while not is_blank(await reader.readline()):
                    pass
                break
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(chunks)
    else:
        body, keep = await reader.read(), False
    return Response(status, headers, body), keep


class _AsyncPool:
    def __init__(self, scheme: str, host: str, port: int, prefix: str, timeout: float,
                 maxsize: int) -> None:
        self.scheme, self.host, self.port, self.prefix = scheme, host, port, prefix
        self.timeout, self.maxsize = timeout, maxsize
        self.idle: List[_Conn] = []
        self.hostport = host if port in (80, 443) else f"{host}:{port}"

    async def _open(self) -> _Conn:
        ctx = ssl.create_default_context() if self.scheme == "https" else None
        return await asyncio.open_connection(self.host, self.port, ssl=ctx)

    async def request(self, req: Request) -> Response:
        timeout = self.timeout + (req.timeout or 0.0)
        data = request_bytes(req.method, self.prefix + req.path, self.hostport, req.headers,
                             req.body)
        for attempt in (0, 1):
            reused = bool(self.idle)
            conn: Optional[_Conn] = None
            try:
                conn = self.idle.pop() if reused else await asyncio.wait_for(self._open(),
                                                                             timeout)
                reader, writer = conn
                writer.write(data)
                await writer.drain()
                resp, keep = await asyncio.wait_for(_read_answer(reader, req.method), timeout)
            except (_Closed, ConnectionResetError, BrokenPipeError) as exc:
                if conn is not None:
                    conn[1].close()
                if reused and attempt == 0:
                    continue
                raise StrataUnavailable(f"{req.method} {req.path}: the server closed the "
                                        "connection", "unavailable") from exc
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    ValueError) as exc:
                if conn is not None:
                    conn[1].close()
                raise StrataUnavailable(f"{req.method} {req.path}: {exc or type(exc).__name__}",
                                        "unavailable") from exc
            except BaseException:  # cancelled mid-answer: the connection cannot be reused
                if conn is not None:
                    conn[1].close()
                raise
            if keep and len(self.idle) < self.maxsize:
                self.idle.append(conn)
            else:
                conn[1].close()
            return resp
        raise AssertionError("unreachable")

    def close_nowait(self) -> None:
        idle, self.idle = self.idle, []
        for _, writer in idle:
            try:
                writer.close()
            except (OSError, RuntimeError):  # its loop is closed already
                pass

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for _, writer in idle:
            writer.close()
        for _, writer in idle:
            try:
                await writer.wait_closed()
            except (OSError, ConnectionError):
                pass


class AsyncSessions:
    """client.sessions, as coroutines."""

    def __init__(self, client: "AsyncStrata") -> None:
        self._c = client

    async def create(self, data: Mapping[str, Any], ttl: Optional[int] = None) -> str:
        return await self._c._run(self._c._ops.session_create(data, ttl))

    async def get(self, sid: str) -> Optional[Dict[str, Any]]:
        return await self._c._run(self._c._ops.session_get(sid))

    async def update(self, sid: str, data: Mapping[str, Any]) -> WriteResult:
        return await self._c._run(self._c._ops.session_update(sid, data))

    async def patch(self, sid: str, patch: Mapping[str, Any]) -> Dict[str, Any]:
        return await self._c._run(self._c._ops.session_patch(sid, patch))

    async def delete(self, sid: str) -> bool:
        return await self._c._run(self._c._ops.session_delete(sid))


class AsyncStrata:
    """The asyncio client: the calls of Strata as coroutines, the same arguments and answers.
    Use it from one event loop; aclose() (or `async with`) closes its connections."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None,
                 tenant: Optional[str] = None, namespace: str = "default",
                 timeout: float = 10.0, *, serializer: Optional[Serializer] = None,
                 fail_open: bool = False, max_connections: int = 64, lease: float = 30.0,
                 wait: float = 10.0) -> None:
        scheme, host, port, prefix, token, tenant = resolve(url, token, tenant)
        self.url = f"{scheme}://{host}:{port}{prefix}"
        self.namespace = namespace
        self._ops = Ops(token, tenant, namespace, serializer or JsonSerializer(), fail_open,
                        lease, wait)
        self._pool = _AsyncPool(scheme, host, port, prefix, timeout, max_connections)
        self.sessions = AsyncSessions(self)

    async def _run(self, op: Op[T], compute: Optional[Callable[[], Any]] = None) -> T:
        return await run_async(op, self._pool.request, compute)

    async def aclose(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> "AsyncStrata":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def get(self, key: str, default: Any = None, *, ns: Optional[str] = None) -> Any:
        return await self._run(self._ops.get(key, default, ns))

    async def set(self, key: str, value: Any, ttl: Optional[int] = None, *,
                  tags: Optional[Iterable[str]] = None, ns: Optional[str] = None,
                  create: bool = False, grace: Optional[float] = None,
                  stale_if_error: Optional[float] = None) -> WriteResult:
        return await self._run(self._ops.set(key, value, ttl, tags, ns, create, grace,
                                             stale_if_error))

    async def delete(self, key: str, *, ns: Optional[str] = None) -> bool:
        return await self._run(self._ops.delete(key, ns))

    async def get_many(self, keys: Sequence[str], *, ns: Optional[str] = None) -> Dict[str, Any]:
        return await self._run(self._ops.get_many(keys, ns))

    async def set_many(self, items: Mapping[str, Any], ttl: Optional[int] = None, *,
                       tags: Optional[Iterable[str]] = None,
                       ns: Optional[str] = None) -> WriteResult:
        return await self._run(self._ops.set_many(items, ttl, tags, ns))

    async def invalidate(self, tags: Optional[Iterable[str]] = None,
                         patterns: Optional[Iterable[str]] = None) -> InvalidateResult:
        return await self._run(self._ops.invalidate(tags, patterns))

    async def keys(self, *, ns: Optional[str] = None, pattern: Optional[str] = None,
                   page_size: int = 100) -> AsyncIterator[List[str]]:
        """`async for page in client.keys(ns=...)`."""
        cursor = "0"
        while True:
            page, cursor = await self._run(self._ops.keys_page(ns, pattern, page_size, cursor))
            if page:
                yield page
            if cursor == "0":
                return

    async def stats(self, *, ns: Optional[str] = None) -> Dict[str, Any]:
        return await self._run(self._ops.admin_get("/cache/stats", {"namespace": ns}))

    async def health(self) -> Dict[str, Any]:
        return await self._run(self._ops.admin_get("/cache/health"))

    async def ratelimit(self, key: str, limit: int, period: float, burst: Optional[int] = None,
                        *, cost: int = 1) -> RateLimitDecision:
        return await self._run(self._ops.ratelimit(key, limit, period, burst, cost))

    async def purge(self, urls: Optional[Iterable[str]] = None,
                    tags: Optional[Iterable[str]] = None,
                    patterns: Optional[Iterable[str]] = None, soft: bool = False) -> PurgeResult:
        return await self._run(self._ops.purge(urls, tags, patterns, soft))

    async def remember(self, key: str, fn: Callable[[], Any], ttl: Optional[int] = None, *,
                       ns: Optional[str] = None, tags: Optional[Iterable[str]] = None,
                       grace: Optional[float] = None, stale_if_error: Optional[float] = None,
                       lease: Optional[float] = None, wait: Optional[float] = None) -> Any:
        """As Strata.remember; fn may be a plain function or return an awaitable."""
        return await self._run(self._ops.remember(key, ttl, ns, tags, grace, stale_if_error,
                                                  lease, wait), fn)

    def cached(self, ns: Optional[str] = None, ttl: Optional[int] = None, *, key: KeySpec = None,
               tags: TagSpec = None, grace: Optional[float] = None,
               stale_if_error: Optional[float] = None, lease: Optional[float] = None,
               wait: Optional[float] = None) -> Callable[[F], F]:
        """As Strata.cached; the decorated function becomes a coroutine function (a plain one
        runs inline on the loop once it is the caller's turn to compute)."""

        def decorate(fn: F) -> F:
            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                op = self._ops.remember(call_key(fn, key, args, kwargs), ttl, ns,
                                        call_tags(fn, tags, args, kwargs), grace, stale_if_error,
                                        lease, wait)
                return await self._run(op, lambda: fn(*args, **kwargs))

            wrapper.key = lambda *a, **kw: call_key(fn, key, a, kw)  # type: ignore
            return wrapper  # type: ignore

        return decorate



