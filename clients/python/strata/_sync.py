"""Strata: the blocking client, HTTP/1.1 over sockets with a pool of keep-alive connections.

One Strata is safe to share between threads: each request takes an idle connection from the pool
(or opens one), and gives it back once its answer is read, unless the server said it closes it.
A connection that had been idle may have been closed by the server meanwhile (its idle timeout):
a request that fails that way on a reused connection is sent once more on a new one.
"""
import asyncio
import functools
import inspect
import socket
import ssl
import struct
import threading
import weakref
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, TypeVar)

from ._aio import _AsyncPool
from ._cached import KeySpec, TagSpec, call_key, call_tags
from ._codec import JsonSerializer, Serializer
from ._config import resolve
from ._drive import run_async, run_sync
from ._errors import StrataUnavailable
from ._http import CHUNKED, Malformed, body_length, chunk_size, parse_head, request_bytes
from ._protocol import Op, Ops, Request, Response
from ._results import InvalidateResult, PurgeResult, RateLimitDecision, WriteResult

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class _Closed(Exception):
    """The peer closed the connection before an answer began."""


class _TimedOut(Exception):
    """The socket's send or receive timeout (SO_SNDTIMEO, SO_RCVTIMEO) ran out."""


_MAX_HEAD = 65536


class _Conn:
    """One keep-alive connection: a blocking socket whose timeouts are the kernel's
    (SO_RCVTIMEO, SO_SNDTIMEO), and the bytes received but not yet read.

    Not Python's socket timeout: with one, every send and receive is preceded by a poll() (two
    more system calls per request, 6-19% of a cached get; bench/python). Not a makefile()
    reader either: it reads a timed-out receive as the end of the stream."""

    __slots__ = ("sock", "buf", "timeout")

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.timeout = -1.0
        sock.settimeout(None)
        self.set_timeout(timeout)

    def set_timeout(self, timeout: float) -> None:
        if timeout != self.timeout:
            sec = int(timeout)
            usec = int((timeout - sec) * 1e6)
            tv = struct.pack("@ll", sec, usec if sec or usec else 1)  # 0 would be no timeout
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            self.timeout = timeout

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BlockingIOError, ssl.SSLWantWriteError):
            raise _TimedOut() from None

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            raise _TimedOut() from None

    def _line(self) -> bytes:
        """The next CRLF-ended line (without its CRLF), for chunked bodies."""
        buf = self.buf
        while True:
            end = buf.find(b"\r\n")
            if end >= 0:
                line = bytes(buf[:end])
                del buf[:end + 2]
                return line
            if len(buf) > _MAX_HEAD:
                raise Malformed("a line over 64 KiB")
            data = self._recv()
            if not data:
                raise Malformed("the answer ended within a line")
            buf += data

    def _exactly(self, n: int) -> bytes:
        buf = self.buf
        while len(buf) < n:
            data = self._recv()
            if not data:
                raise Malformed(f"the answer ended after {len(buf)} of {n} bytes")
            buf += data
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def answer(self, method: str) -> Tuple[Response, bool]:
        """Read one answer: (it, whether the connection stays open)."""
        buf = self.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > _MAX_HEAD:
                raise Malformed("an answer's head over 64 KiB")
            data = self._recv()
            if not data:
                if not buf:
                    raise _Closed()
                raise Malformed("the answer ended within its head")
            buf += data
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[:end + 4]
        status, headers, keep = parse_head(lines[0], lines[1:])
        n = body_length(method, status, headers)
        if n >= 0:
            body = self._exactly(n) if n else b""
        elif n == CHUNKED:
            chunks = []
            while True:
                size = chunk_size(self._line())
                if size == 0:
                    while self._line():
                        pass
                    break
                chunks.append(self._exactly(size))
                self._line()
            body = b"".join(chunks)
        else:
            while True:
                data = self._recv()
                if not data:
                    break
                buf += data
            body, keep = bytes(buf), False
            del buf[:]
        return Response(status, headers, body), keep


class _Pool:
    def __init__(self, scheme: str, host: str, port: int, prefix: str, timeout: float,
                 maxsize: int) -> None:
        self.scheme, self.host, self.port, self.prefix = scheme, host, port, prefix
        self.timeout, self.maxsize = timeout, maxsize
        self.hostport = host if port in (80, 443) else f"{host}:{port}"
        self.idle: List[_Conn] = []
        self.lock = threading.Lock()
        self.closed = False
        self.ssl = ssl.create_default_context() if scheme == "https" else None

    def _new(self, timeout: float) -> _Conn:
        sock = socket.create_connection((self.host, self.port), timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl is not None:
                sock = self.ssl.wrap_socket(sock, server_hostname=self.host)
            return _Conn(sock, timeout)
        except BaseException:
            sock.close()
            raise

    def _give(self, conn: _Conn) -> None:
        with self.lock:
            if not self.closed and len(self.idle) < self.maxsize:
                self.idle.append(conn)
                return
        conn.close()

    def request(self, req: Request) -> Response:
        timeout = self.timeout + (req.timeout or 0.0)
        data = request_bytes(req.method, self.prefix + req.path, self.hostport, req.headers,
                             req.body)
        for attempt in (0, 1):
            with self.lock:
                conn = self.idle.pop() if self.idle else None
            reused = conn is not None
            try:
                if conn is None:
                    conn = self._new(timeout)
                else:
                    conn.set_timeout(timeout)
                conn.send(data)
                resp, keep = conn.answer(req.method)
            except (_Closed, ConnectionResetError, BrokenPipeError) as exc:
                if conn is not None:
                    conn.close()
                if reused and attempt == 0:
                    continue
                raise StrataUnavailable(f"{req.method} {req.path}: the server closed the "
                                        "connection", "unavailable") from exc
            except (_TimedOut, socket.timeout) as exc:
                if conn is not None:
                    conn.close()
                raise StrataUnavailable(f"{req.method} {req.path}: timed out after {timeout:g} s",
                                        "unavailable") from exc
            except (OSError, Malformed) as exc:
                if conn is not None:
                    conn.close()
                raise StrataUnavailable(f"{req.method} {req.path}: {exc or type(exc).__name__}",
                                        "unavailable") from exc
            except BaseException:  # interrupted mid-answer: the connection cannot be reused
                if conn is not None:
                    conn.close()
                raise
            if keep:
                self._give(conn)
            else:
                conn.close()
            return resp
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self.lock:
            self.closed = True
            idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class Sessions:
    """client.sessions: JSON objects under a random id, with a sliding TTL."""

    def __init__(self, client: "Strata") -> None:
        self._c = client

    def create(self, data: Mapping[str, Any], ttl: Optional[int] = None) -> str:
        """A new session holding data; its id."""
        return self._c._run(self._c._ops.session_create(data, ttl))

    def get(self, sid: str) -> Optional[Dict[str, Any]]:
        """The session, or None when there is none (expired, deleted)."""
        return self._c._run(self._c._ops.session_get(sid))

    def update(self, sid: str, data: Mapping[str, Any]) -> WriteResult:
        """Replace the session (its TTL starts again). NotFound when there is none."""
        return self._c._run(self._c._ops.session_update(sid, data))

    def patch(self, sid: str, patch: Mapping[str, Any]) -> Dict[str, Any]:
        """JSON Merge Patch (RFC 7396: None removes a member); the merged session."""
        return self._c._run(self._c._ops.session_patch(sid, patch))

    def delete(self, sid: str) -> bool:
        """True when a session was deleted, False when there was none."""
        return self._c._run(self._c._ops.session_delete(sid))


class Strata:
    """The blocking client. Thread-safe; close() (or `with`) closes its connections.

    url, token, tenant: None reads STRATA_URL (default http://127.0.0.1:8080), STRATA_TOKEN,
    STRATA_TENANT. namespace: the default `ns=` of every call. timeout: seconds per request
    (a lease wait adds its own). serializer: for values that are not bytes or str (JSON).
    fail_open: when strata cannot be reached, reads miss, writes are not made, remember() and
    cached() compute without caching, ratelimit() allows; other calls raise StrataUnavailable.
    lease, wait: remember()'s X-Cache-Lease and X-Cache-Wait defaults (seconds).
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None,
                 tenant: Optional[str] = None, namespace: str = "default",
                 timeout: float = 10.0, *, serializer: Optional[Serializer] = None,
                 fail_open: bool = False, max_connections: int = 16, lease: float = 30.0,
                 wait: float = 10.0) -> None:
        scheme, host, port, prefix, token, tenant = resolve(url, token, tenant)
        self.url = f"{scheme}://{host}:{port}{prefix}"
        self.namespace = namespace
        self._ops = Ops(token, tenant, namespace, serializer or JsonSerializer(), fail_open,
                        lease, wait)
        self._pool = _Pool(scheme, host, port, prefix, timeout, max_connections)
        self._pool_args = (scheme, host, port, prefix, timeout, max_connections)
        # cached() on an async def function speaks asyncio on the caller's loop: a blocking
        # request in an executor thread would hold the thread while the lease waits, and the
        # holder's fill could queue behind the waiters it would answer.
        self._apools: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncPool]" = \
            weakref.WeakKeyDictionary()
        self._apools_lock = threading.Lock()
        self.sessions = Sessions(self)

    def _async_pool(self) -> _AsyncPool:
        loop = asyncio.get_running_loop()
        with self._apools_lock:
            pool = self._apools.get(loop)
            if pool is None:
                pool = self._apools[loop] = _AsyncPool(*self._pool_args)
            return pool

    def _run(self, op: Op[T], compute: Optional[Callable[[], Any]] = None) -> T:
        return run_sync(op, self._pool.request, compute)

    # ---- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        self._pool.close()
        with self._apools_lock:
            pools = list(self._apools.values())
            self._apools.clear()
        for pool in pools:
            pool.close_nowait()

    def __enter__(self) -> "Strata":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- KV ---------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None, *, ns: Optional[str] = None) -> Any:
        """The value stored under key (bytes, str, or the serializer's object, by the stored
        Content-Type), or default on a miss."""
        return self._run(self._ops.get(key, default, ns))

    def set(self, key: str, value: Any, ttl: Optional[int] = None, *,
            tags: Optional[Iterable[str]] = None, ns: Optional[str] = None,
            create: bool = False, grace: Optional[float] = None,
            stale_if_error: Optional[float] = None) -> WriteResult:
        """Store value (ttl in seconds; the namespace's default without). create=True writes
        only if the key has no fresh value (If-None-Match: *): `.stored` is False otherwise."""
        return self._run(self._ops.set(key, value, ttl, tags, ns, create, grace, stale_if_error))

    def delete(self, key: str, *, ns: Optional[str] = None) -> bool:
        """True when the key was removed, False when there was none."""
        return self._run(self._ops.delete(key, ns))

    def get_many(self, keys: Sequence[str], *, ns: Optional[str] = None) -> Dict[str, Any]:
        """{key: value} for the keys that hit (up to 1000 keys)."""
        return self._run(self._ops.get_many(keys, ns))

    def set_many(self, items: Mapping[str, Any], ttl: Optional[int] = None, *,
                 tags: Optional[Iterable[str]] = None,
                 ns: Optional[str] = None) -> WriteResult:
        """Store several values (up to 1000); not atomic: `.items` has each key's status."""
        return self._run(self._ops.set_many(items, ttl, tags, ns))

    def invalidate(self, tags: Optional[Iterable[str]] = None,
                   patterns: Optional[Iterable[str]] = None) -> InvalidateResult:
        """Invalidate tags (every entry written with them) and remove keys matching globs, in
        every namespace of the tenant."""
        return self._run(self._ops.invalidate(tags, patterns))

    def keys(self, *, ns: Optional[str] = None, pattern: Optional[str] = None,
             page_size: int = 100) -> Iterator[List[str]]:
        """The keys of a namespace, a page (a list) at a time. Admin role."""
        cursor = "0"
        while True:
            page, cursor = self._run(self._ops.keys_page(ns, pattern, page_size, cursor))
            if page:
                yield page
            if cursor == "0":
                return

    def stats(self, *, ns: Optional[str] = None) -> Dict[str, Any]:
        """GET /cache/stats (read role): the counters, of one namespace with ns=."""
        return self._run(self._ops.admin_get("/cache/stats", {"namespace": ns}))

    def health(self) -> Dict[str, Any]:
        """GET /cache/health: {"status": "healthy" | "degraded" | "unhealthy", ...}."""
        return self._run(self._ops.admin_get("/cache/health"))

    def ratelimit(self, key: str, limit: int, period: float, burst: Optional[int] = None, *,
                  cost: int = 1) -> RateLimitDecision:
        """Count one request against `limit` per `period` seconds (GCRA): `.allowed`,
        `.retry_after` (seconds), `.remaining`."""
        return self._run(self._ops.ratelimit(key, limit, period, burst, cost))

    def purge(self, urls: Optional[Iterable[str]] = None, tags: Optional[Iterable[str]] = None,
              patterns: Optional[Iterable[str]] = None, soft: bool = False) -> PurgeResult:
        """The caching proxy's purge (POST /cache/purge): by URL, tag or key pattern."""
        return self._run(self._ops.purge(urls, tags, patterns, soft))

    # ---- cache-aside over leases ---------------------------------------------------------------

    def remember(self, key: str, fn: Callable[[], Any], ttl: Optional[int] = None, *,
                 ns: Optional[str] = None, tags: Optional[Iterable[str]] = None,
                 grace: Optional[float] = None, stale_if_error: Optional[float] = None,
                 lease: Optional[float] = None, wait: Optional[float] = None) -> Any:
        """The value of key; on a miss fn() runs in exactly one caller across every process
        sharing the server (the others wait for its value). grace: seconds a value past its TTL
        is still answered while one caller refreshes it; stale_if_error: seconds it is kept to
        be answered when the refresh fails. fn's exception is raised (after the server stored
        it briefly, so the waiters get ComputeFailed), unless a stale copy answers."""
        return self._run(self._ops.remember(key, ttl, ns, tags, grace, stale_if_error, lease,
                                            wait), fn)

    def cached(self, ns: Optional[str] = None, ttl: Optional[int] = None, *, key: KeySpec = None,
               tags: TagSpec = None, grace: Optional[float] = None,
               stale_if_error: Optional[float] = None, lease: Optional[float] = None,
               wait: Optional[float] = None) -> Callable[[F], F]:
        """Decorator: remember() for each call, keyed by the function and its arguments (see
        README, "Keys"). Works on plain and `async def` functions (for an async one the client
        speaks asyncio on the caller's event loop). `wrapper.key(*args, **kwargs)` gives the key."""

        def decorate(fn: F) -> F:
            if inspect.iscoroutinefunction(fn):
                @functools.wraps(fn)
                async def awrapper(*args: Any, **kwargs: Any) -> Any:
                    op = self._ops.remember(call_key(fn, key, args, kwargs), ttl, ns,
                                            call_tags(fn, tags, args, kwargs), grace,
                                            stale_if_error, lease, wait)
                    return await run_async(op, self._async_pool().request,
                                           lambda: fn(*args, **kwargs))

                awrapper.key = lambda *a, **kw: call_key(fn, key, a, kw)  # type: ignore
                return awrapper  # type: ignore

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                op = self._ops.remember(call_key(fn, key, args, kwargs), ttl, ns,
                                        call_tags(fn, tags, args, kwargs), grace, stale_if_error,
                                        lease, wait)
                return self._run(op, lambda: fn(*args, **kwargs))

            wrapper.key = lambda *a, **kw: call_key(fn, key, a, kw)  # type: ignore
            return wrapper  # type: ignore

        return decorate
