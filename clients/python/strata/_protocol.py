"""Every call of the client, written once, as a generator that does no I/O ("sans-I/O").

A call yields what it needs done: a Request (answered with a Response), Compute (run the user's
function; answered with its result, or its exception thrown in), or Sleep. The synchronous client
(`Strata`, sockets) and the asyncio one (`AsyncStrata`, asyncio streams) differ only in the
driver that carries these out, so both follow the same HTTP rules, the lease protocol included.
A transport failure is thrown into the generator as StrataUnavailable, which is where fail_open
decides what a call does when the server is away.
"""
import base64
import functools
import hashlib
import json
import time
from typing import (Any, Dict, Generator, Iterable, List, Mapping, Optional, Sequence, Tuple,
                    TypeVar)
from urllib.parse import quote, urlencode

from ._codec import TEXT, Serializer, batch_item, batch_value, decode, encode
from ._errors import ComputeFailed, LeaseNotHeld, RateLimited, StrataUnavailable, error_class
from ._results import InvalidateResult, PurgeResult, RateLimitDecision, WriteResult


class Request:
    __slots__ = ("method", "path", "headers", "body", "timeout")

    def __init__(self, method: str, path: str, headers: Dict[str, str],
                 body: Optional[bytes] = None, timeout: Optional[float] = None) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.timeout = timeout  # seconds the server may hold it on top of the client's timeout


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers  # names lower-cased
        self.body = body

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def json_object(self) -> Dict[str, Any]:
        doc = self.json()
        if not isinstance(doc, dict):
            raise ValueError(f"expected a JSON object from the server, got {self.body[:80]!r}")
        return doc


class Compute:
    __slots__ = ()


class Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


COMPUTE = Compute()
T = TypeVar("T")
# A call: yields Request, Compute or Sleep; is sent their answers; returns the call's result.
Op = Generator[Any, Any, T]


def raise_for(resp: Response) -> None:
    """The server's JSON error as the exception of its status."""
    code, message = "error", resp.body.decode("utf-8", errors="replace").strip()
    try:
        err = json.loads(resp.body.decode("utf-8"))["error"]
        code, message = str(err.get("code", code)), str(err.get("message", message))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    exc = error_class(resp.status)(message or f"HTTP {resp.status}", code, resp.status)
    if isinstance(exc, RateLimited):
        exc.retry_after = _seconds(resp.header("Retry-After"), 1.0)
    raise exc


def _seconds(text: Optional[str], default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def _fmt_seconds(s: float) -> str:
    """Seconds as the server takes them: up to three decimals."""
    text = f"{float(s):.3f}".rstrip("0").rstrip(".")
    return text or "0"


@functools.lru_cache(maxsize=4096)
def key_path(ns: str, key: str) -> str:
    """/v1/cache/{ns}/{key}: the key as one path segment. `_mget` and `_mset` are the batch
    routes' names, so a key spelled so has its `_` encoded (docs/api.md, Keys). The paths of the
    last 4096 keys are kept: hot keys repeat, and quoting costs about what parsing the answer
    does (bench/python)."""
    seg = quote(key, safe="")
    if key in ("_mget", "_mset"):
        seg = "%5F" + seg[1:]
    return f"/v1/cache/{quote(ns, safe='')}/{seg}"


def _write_result(resp: Response) -> WriteResult:
    return WriteResult(True, resp.header("X-Cache-Write") == "l1-only",
                       resp.header("X-Cache-Reason"))


class Ops:
    """The calls, as generators; holds what every request carries (token, tenant, namespace)."""

    def __init__(self, token: Optional[str], tenant: Optional[str], namespace: str,
                 serializer: Serializer, fail_open: bool, lease: float, wait: float) -> None:
        self.namespace = namespace
        self.serializer = serializer
        self.fail_open = fail_open
        self.lease, self.wait = lease, wait
        self.ask = {"X-Cache-Lease": _fmt_seconds(lease), "X-Cache-Wait": _fmt_seconds(wait)}
        self.base_headers: Dict[str, str] = {}
        if token:
            self.base_headers["Authorization"] = f"Bearer {token}"
        if tenant:
            self.base_headers["X-Tenant"] = tenant

    def _req(self, method: str, path: str, headers: Optional[Dict[str, str]] = None,
             body: Optional[bytes] = None, query: Optional[Dict[str, Any]] = None,
             timeout: Optional[float] = None) -> Request:
        if query:
            q = {k: v for k, v in query.items() if v is not None}
            if q:
                path += "?" + urlencode(q, safe=",")
        h = dict(self.base_headers)
        if headers:
            h.update(headers)
        return Request(method, path, h, body, timeout)

    def _json_req(self, method: str, path: str, obj: Any,
                  query: Optional[Dict[str, Any]] = None) -> Request:
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        return self._req(method, path, {"Content-Type": "application/json"}, body, query)

    # ---- KV ---------------------------------------------------------------------------------

    def get(self, key: str, default: Any, ns: Optional[str]) -> Op[Any]:
        """GET /v1/cache/{ns}/{key}: the value, or default on a miss."""
        try:
            resp = yield self._req("GET", key_path(ns or self.namespace, key))
        except StrataUnavailable:
            if self.fail_open:
                return default
            raise
        if resp.status == 404 and resp.header("X-Cache") == "MISS":
            return default
        if resp.status != 200:
            raise_for(resp)
        return decode(resp.body, resp.header("Content-Type"), self.serializer)

    def set(self, key: str, value: Any, ttl: Optional[int], tags: Optional[Iterable[str]],
            ns: Optional[str], create: bool, grace: Optional[float],
            stale_if_error: Optional[float]) -> Op[WriteResult]:
        """PUT /v1/cache/{ns}/{key}?ttl=&tags=&grace=&stale_if_error= [If-None-Match: *]"""
        body, ctype = encode(value, self.serializer)
        headers = {"Content-Type": ctype}
        if create:
            headers["If-None-Match"] = "*"
        query = {"ttl": ttl, "tags": ",".join(tags) if tags else None,
                 "grace": None if grace is None else _fmt_seconds(grace),
                 "stale_if_error": None if stale_if_error is None else _fmt_seconds(stale_if_error)}
        try:
            resp = yield self._req("PUT", key_path(ns or self.namespace, key), headers, body, query)
        except StrataUnavailable:
            if self.fail_open:
                return WriteResult(stored=False)
            raise
        if resp.status == 412 and create:
            return WriteResult(stored=False)
        if resp.status != 204:
            raise_for(resp)
        return _write_result(resp)

    def delete(self, key: str, ns: Optional[str]) -> Op[bool]:
        """DELETE /v1/cache/{ns}/{key}: True when a key was removed (or, l1-only, may have been)."""
        try:
            resp = yield self._req("DELETE", key_path(ns or self.namespace, key))
        except StrataUnavailable:
            if self.fail_open:
                return False
            raise
        if resp.status == 404 and resp.header("X-Cache") != "MISS":
            try:
                if resp.json()["error"]["code"] == "not_found":
                    return False
            except (ValueError, KeyError, TypeError):
                pass
        if resp.status != 204:
            raise_for(resp)
        return True

    def get_many(self, keys: Sequence[str], ns: Optional[str]) -> Op[Dict[str, Any]]:
        """POST /v1/cache/{ns}/_mget {"keys": [...]}: {key: value} of the hits."""
        keys = list(keys)
        if not keys:
            return {}
        try:
            resp = yield self._json_req("POST", f"/v1/cache/{quote(ns or self.namespace, safe='')}"
                                        "/_mget", {"keys": keys})
        except StrataUnavailable:
            if self.fail_open:
                return {}
            raise
        if resp.status != 200:
            raise_for(resp)
        out: Dict[str, Any] = {}
        for item in resp.json()["items"]:
            if item.get("hit"):
                out[item["key"]] = batch_value(item, self.serializer)
        return out

    def set_many(self, items: Mapping[str, Any], ttl: Optional[int],
                 tags: Optional[Iterable[str]], ns: Optional[str]) -> Op[WriteResult]:
        """POST /v1/cache/{ns}/_mset {"items": [...]}: not atomic; `.items` has each key's status."""
        batch: List[Dict[str, Any]] = []
        tag_list = list(tags) if tags else None
        for key, value in items.items():
            item = batch_item(key, value, self.serializer)
            if ttl is not None:
                item["ttl"] = ttl
            if tag_list:
                item["tags"] = tag_list
            batch.append(item)
        if not batch:
            return WriteResult()
        try:
            resp = yield self._json_req("POST", f"/v1/cache/{quote(ns or self.namespace, safe='')}"
                                        "/_mset", {"items": batch})
        except StrataUnavailable:
            if self.fail_open:
                return WriteResult(stored=False)
            raise
        if resp.status != 200:
            raise_for(resp)
        statuses = {it["key"]: it["status"] for it in resp.json()["items"]}
        bad = {k: s for k, s in statuses.items() if s not in ("ok", "l1-only")}
        return WriteResult(not bad, resp.header("X-Cache-Write") == "l1-only",
                           resp.header("X-Cache-Reason"), statuses)

    def invalidate(self, tags: Optional[Iterable[str]], patterns: Optional[Iterable[str]]) -> Op[InvalidateResult]:
        """POST /v1/invalidate {"tags": [...], "patterns": [...]}"""
        body: Dict[str, Any] = {}
        if tags:
            body["tags"] = list(tags)
        if patterns:
            body["patterns"] = list(patterns)
        resp = yield self._json_req("POST", "/v1/invalidate", body)
        if resp.status != 200:
            raise_for(resp)
        doc = resp.json()
        return InvalidateResult(doc["tags_invalidated"], doc["keys_removed"],
                                resp.header("X-Cache-Write") == "l1-only")

    def keys_page(self, ns: Optional[str], pattern: Optional[str], page_size: int,
                  cursor: str) -> Op[Tuple[List[str], str]]:
        """GET /cache/keys?namespace=&pattern=&limit=&cursor=: (keys, next cursor; "0" = done)."""
        resp = yield self._req("GET", "/cache/keys", query={
            "namespace": ns or self.namespace, "pattern": pattern, "limit": page_size,
            "cursor": cursor})
        if resp.status != 200:
            raise_for(resp)
        doc = resp.json()
        keys = []
        for k in doc["keys"]:
            if "key" in k:
                keys.append(k["key"])
            else:  # a key written through the C library with bytes that are not text
                keys.append(base64.b64decode(k["key_b64"]).decode("utf-8", "surrogateescape"))
        return keys, str(doc.get("cursor", "0"))

    def admin_get(self, path: str, query: Optional[Dict[str, Any]] = None) -> Op[Dict[str, Any]]:
        """GET /cache/stats, /cache/health: the JSON document (health also when 503)."""
        resp: Response = yield self._req("GET", path, query=query)
        if resp.status != 200 and not (path == "/cache/health" and resp.status == 503):
            raise_for(resp)
        return resp.json_object()

    # ---- rate limits, sessions, purges -------------------------------------------------------

    def ratelimit(self, key: str, limit: int, period: float, burst: Optional[int],
                  cost: int) -> Op[RateLimitDecision]:
        """POST /v1/ratelimit/{key} {"limit", "period", "burst", "cost"}: 200 allowed, 429 not."""
        body: Dict[str, Any] = {"limit": limit, "period": period}
        if burst is not None:
            body["burst"] = burst
        if cost != 1:
            body["cost"] = cost
        try:
            resp = yield self._json_req("POST", "/v1/ratelimit/" + quote(key, safe=""), body)
        except StrataUnavailable:
            if self.fail_open:
                return RateLimitDecision(True, burst or limit, burst or limit, 0, 0)
            raise
        if resp.status not in (200, 429):
            raise_for(resp)
        doc = resp.json()
        if resp.status == 429 and "allowed" not in doc:  # the server's own limits (an error)
            raise_for(resp)
        return RateLimitDecision(bool(doc["allowed"]), int(doc["limit"]), int(doc["remaining"]),
                                 doc["reset"], doc["retry_after"])

    def session_create(self, data: Mapping[str, Any], ttl: Optional[int]) -> Op[str]:
        """POST /v1/sessions?ttl= {...}: the new session's id."""
        resp = yield self._json_req("POST", "/v1/sessions", dict(data), {"ttl": ttl})
        if resp.status != 201:
            raise_for(resp)
        return str(resp.json()["id"])

    def session_get(self, sid: str) -> Op[Optional[Dict[str, Any]]]:
        resp: Response = yield self._req("GET", "/v1/sessions/" + quote(sid, safe=""))
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise_for(resp)
        return resp.json_object()

    def session_update(self, sid: str, data: Mapping[str, Any]) -> Op[WriteResult]:
        resp = yield self._json_req("PUT", "/v1/sessions/" + quote(sid, safe=""), dict(data))
        if resp.status != 204:
            raise_for(resp)
        return _write_result(resp)

    def session_patch(self, sid: str, patch: Mapping[str, Any]) -> Op[Dict[str, Any]]:
        resp: Response = yield self._json_req("PATCH", "/v1/sessions/" + quote(sid, safe=""), dict(patch))
        if resp.status != 200:
            raise_for(resp)
        return resp.json_object()

    def session_delete(self, sid: str) -> Op[bool]:
        resp = yield self._req("DELETE", "/v1/sessions/" + quote(sid, safe=""))
        if resp.status == 404:
            return False
        if resp.status != 204:
            raise_for(resp)
        return True

    def purge(self, urls: Optional[Iterable[str]], tags: Optional[Iterable[str]],
              patterns: Optional[Iterable[str]], soft: bool) -> Op[PurgeResult]:
        """POST /cache/purge {"urls", "tags", "patterns", "soft"}: the caching proxy's purge."""
        body: Dict[str, Any] = {"soft": bool(soft)}
        for name, value in (("urls", urls), ("tags", tags), ("patterns", patterns)):
            if value:
                body[name] = list(value)
        resp = yield self._json_req("POST", "/cache/purge", body)
        if resp.status != 200:
            raise_for(resp)
        doc = resp.json()
        return PurgeResult(doc["tags"], doc["urls"], doc["keys"], doc["soft"])

    # ---- remember: cache-aside over the lease protocol ----------------------------------------

    def remember(self, key: str, ttl: Optional[int], ns: Optional[str],
                 tags: Optional[Iterable[str]], grace: Optional[float],
                 stale_if_error: Optional[float], lease: Optional[float],
                 wait: Optional[float]) -> Op[Any]:
        """The value of key; on a miss exactly one caller, among every process and instance,
        computes it (docs/api.md, "Leases" and "Freshness"):

          GET  X-Cache-Lease: L, X-Cache-Wait: W
            200             a hit; HIT-COALESCED: another caller's value; STALE: within grace.
                            With X-Cache-Lease-Token too (STALE, or an early refresh), this caller
                            refreshes: compute, fill, answer the new value.
            200 + X-Cache-Error: 1   the holder's computation failed: ComputeFailed
            404 + token     this caller computes, then PUT with the token (?ttl, ?tags, ...)
            404, no token   the wait ended while another still computes: ask again
            503 lease_busy  wait Retry-After, ask again
          compute fails     PUT with the token and X-Cache-Error: 1; the server keeps a stale
                            copy (grace, stale-if-error) if there was one (`X-Cache: STALE`), and
                            that copy is answered; otherwise the exception is raised
        """
        path = key_path(ns or self.namespace, key)
        lease_s = self.lease if lease is None else lease
        wait_s = self.wait if wait is None else wait
        ask = self.ask if lease is None and wait is None else {
            "X-Cache-Lease": _fmt_seconds(lease_s), "X-Cache-Wait": _fmt_seconds(wait_s)}
        while True:
            try:
                resp = yield self._req("GET", path, ask, timeout=wait_s)
            except StrataUnavailable:
                if not self.fail_open:
                    raise
                return (yield COMPUTE)  # fail open: compute, answer, do not cache
            token = resp.header("X-Cache-Lease-Token")
            if resp.status == 200:
                if resp.header("X-Cache-Error") == "1":
                    raise ComputeFailed(resp.body.decode("utf-8", "replace"), "compute_failed",
                                        200)
                value = decode(resp.body, resp.header("Content-Type"), self.serializer)
                if token is None:
                    return value
                try:  # stale within grace, or an early refresh: this caller refreshes
                    return (yield from self._fill(path, token, ttl, tags, grace, stale_if_error))
                except StrataUnavailable:
                    if not self.fail_open:
                        raise
                    return value
                except Exception:  # noqa: BLE001 - the stale copy is the answer
                    return value
            if resp.status == 404 and token is not None:
                return (yield from self._fill(path, token, ttl, tags, grace, stale_if_error))
            if resp.status == 404 and resp.header("X-Cache") == "MISS":
                continue
            if resp.status == 503 and resp.header("Retry-After") is not None:
                yield Sleep(_seconds(resp.header("Retry-After"), 1.0))
                continue
            raise_for(resp)

    def _fill(self, path: str, token: str, ttl: Optional[int], tags: Optional[Iterable[str]],
              grace: Optional[float], stale_if_error: Optional[float]) -> Op[Any]:
        """The lease holder's part: compute, then store the value (or the failure) with the
        token. A 409 means the lease ran out and another caller took over: the value computed
        here is still good, so it is answered."""
        lease = {"X-Cache-Lease-Token": token}
        started = time.monotonic()
        try:
            value = yield COMPUTE
        except Exception as exc:
            try:
                resp = yield self._req("PUT", path, {**lease, "X-Cache-Error": "1",
                                                     "Content-Type": TEXT},
                                       f"{type(exc).__name__}: {exc}".encode("utf-8"))
            except StrataUnavailable:
                raise exc from None
            if resp.status == 204 and resp.header("X-Cache") == "STALE":
                # The server kept the previous value: stale-if-error answers it.
                try:
                    stale = yield self._req("GET", path)
                except StrataUnavailable:
                    raise exc from None
                if stale.status == 200 and stale.header("X-Cache-Error") != "1":
                    return decode(stale.body, stale.header("Content-Type"), self.serializer)
            raise
        body, ctype = encode(value, self.serializer)
        query = {"ttl": ttl, "tags": ",".join(tags) if tags else None,
                 "grace": None if grace is None else _fmt_seconds(grace),
                 "stale_if_error": None if stale_if_error is None else _fmt_seconds(stale_if_error),
                 "compute_time": _fmt_seconds(min(time.monotonic() - started, 86400.0))}
        try:
            resp = yield self._req("PUT", path, {**lease, "Content-Type": ctype}, body, query)
        except StrataUnavailable:
            if self.fail_open:
                return value
            raise
        if resp.status not in (204, 409):
            try:
                raise_for(resp)
            except LeaseNotHeld:
                pass
        return value


def stable_key(qualname: str, arguments: Mapping[str, Any]) -> str:
    """The key cached() builds: `<module>.<qualname>:<JSON of the arguments>`, the JSON with
    sorted keys, no spaces, UTF-8 as is; past 512 bytes, `<module>.<qualname>:sha256:<hex>` of it.
    (README.md, "Keys".)"""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key = f"{qualname}:{text}"
    if len(key.encode("utf-8")) > 512:
        key = f"{qualname}:sha256:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"
    return key


