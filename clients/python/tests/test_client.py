"""Strata (the blocking client): every call against a real server, with Redis."""
import http.client
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest

from strata import JsonSerializer, Serializer, Strata, WriteResult


def raw(url: str, method: str, path: str, headers: Any = None):
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


@pytest.fixture
def c(server, ns):
    with Strata(server.url, namespace=ns) as client:
        yield client


def test_values_come_back_as_they_were_set(c, server, ns):
    values = {"bytes": b"\x00\x01\xff", "text": "héllo wörld", "obj": {"a": [1, 2.5, None]},
              "list": [1, "x"], "int": 42, "empty": b"", "true": True}
    for key, value in values.items():
        assert c.set(key, value) == WriteResult(stored=True)
    for key, value in values.items():
        assert c.get(key) == value
        assert type(c.get(key)) is type(value)
    r, _ = raw(server.url, "GET", f"/v1/cache/{ns}/bytes")
    assert r.getheader("Content-Type") == "application/octet-stream"
    assert raw(server.url, "GET", f"/v1/cache/{ns}/text")[0].getheader("Content-Type").startswith(
        "text/plain")
    assert raw(server.url, "GET", f"/v1/cache/{ns}/obj")[0].getheader("Content-Type") == \
        "application/json"


def test_a_miss_is_none_or_the_default(c):
    assert c.get("absent") is None
    assert c.get("absent", "fallback") == "fallback"


def test_keys_are_one_path_segment_whatever_they_hold(c):
    for key in ("user:42", "a/b", "café", "with space", "_mget", "_mset", "100%", "?x=1#y"):
        c.set(key, key)
        assert c.get(key) == key
    assert c.get_many(["_mget", "a/b"]) == {"_mget": "_mget", "a/b": "a/b"}


def test_set_ttl_tags_and_create(c, server, ns):
    c.set("t", "v", ttl=60, tags=["group-1", "group-2"])
    r, _ = raw(server.url, "GET", f"/v1/cache/{ns}/t")
    max_age = int(r.getheader("Cache-Control").split("=")[1].split(",")[0])
    assert 50 <= max_age <= 66  # 60 s with the namespace's 10% jitter
    assert c.set("once", 1, create=True).stored
    again = c.set("once", 2, create=True)
    assert not again.stored and not again
    assert c.get("once") == 1
    assert c.invalidate(tags=["group-2"]).tags_invalidated == 1
    assert c.get("t") is None


def test_grace_and_stale_if_error_are_sent(c, server, ns):
    c.set("g", "v", ttl=30, grace=60, stale_if_error=120)
    r, _ = raw(server.url, "GET", f"/v1/cache/{ns}/g")
    assert "stale-while-revalidate=60" in r.getheader("Cache-Control")
    assert "stale-if-error=120" in r.getheader("Cache-Control")


def test_delete(c):
    c.set("d", "x")
    assert c.delete("d") is True
    assert c.delete("d") is False
    assert c.get("d") is None


def test_get_many_and_set_many(c):
    items = {"a": "text", "b": b"\x00\xff", "c": {"n": 1}, "nul": "a\x00b", "e": ""}
    res = c.set_many(items, ttl=60, tags=["batch"])
    assert res.stored and not res.l1_only
    assert res.items == {k: "ok" for k in items}
    assert c.get_many(list(items) + ["missing"]) == items
    assert c.get("c") == {"n": 1}
    assert c.get_many([]) == {}
    assert c.invalidate(tags=["batch"]).tags_invalidated == 1
    assert c.get_many(list(items)) == {}


def test_invalidate_patterns(c):
    for k in ("s:1", "s:2", "keep"):
        c.set(k, k)
    res = c.invalidate(patterns=["s:*"])
    assert res.keys_removed == 2 and not res.l1_only
    assert c.get("s:1") is None and c.get("keep") == "keep"


def test_keys_iterates_over_pages(c):
    names = {f"k{i}" for i in range(25)}
    c.set_many({k: 1 for k in names})
    pages = list(c.keys(page_size=10))
    assert len(pages) >= 2
    assert {k for page in pages for k in page} == names
    assert {k for page in c.keys(pattern="k1*") for k in page} == {"k1"} | {
        f"k1{i}" for i in range(10)}


def test_stats_and_health(c, ns):
    c.set("x", 1)
    stats = c.stats()
    assert {"l1", "l2", "leases"} <= set(stats)
    assert c.stats(ns=ns)
    health = c.health()
    assert health["status"] == "healthy" and health["redis_available"] is True


def test_ratelimit(c, ns):
    key = f"{ns}:login"
    decisions = [c.ratelimit(key, 3, 60) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[0].remaining == 2 and decisions[0].retry_after == 0
    assert decisions[3].retry_after > 0 and not decisions[3]
    burst = c.ratelimit(f"{ns}:api", 10, 1, burst=5, cost=2)
    assert burst.allowed and burst.limit == 5 and burst.remaining == 3


def test_sessions(c):
    sid = c.sessions.create({"user": 7, "cart": []}, ttl=600)
    assert len(sid) == 22
    assert c.sessions.get(sid) == {"user": 7, "cart": []}
    assert c.sessions.patch(sid, {"cart": ["book"], "user": None}) == {"cart": ["book"]}
    res = c.sessions.update(sid, {"user": 8})
    assert res.stored and not res.l1_only
    assert c.sessions.get(sid) == {"user": 8}
    assert c.sessions.delete(sid) is True
    assert c.sessions.get(sid) is None
    assert c.sessions.delete(sid) is False


def test_purge(c):
    res = c.purge(urls=["/home"], tags=["page"], patterns=["GET example.com/*"])
    assert (res.urls, res.tags, res.soft) == (1, 1, False)
    assert c.purge(tags=["page"], soft=True).soft is True


class Reversed(Serializer):
    content_type = "application/x-reversed-json"

    def dumps(self, value: Any) -> bytes:
        return JsonSerializer().dumps(value)[::-1]

    def loads(self, data: bytes) -> Any:
        return JsonSerializer().loads(data[::-1])


def test_the_serializer_is_pluggable(server, ns):
    with Strata(server.url, namespace=ns, serializer=Reversed()) as c, \
            Strata(server.url, namespace=ns) as plain:
        c.set("r", {"a": 1})
        assert c.get("r") == {"a": 1}
        assert plain.get("r") == b'}1:"a"{'  # an unknown type reads back as bytes
        c.set_many({"m": [1, 2]})
        assert c.get_many(["m"]) == {"m": [1, 2]}


def test_environment_defaults(server, monkeypatch, ns):
    monkeypatch.setenv("STRATA_URL", server.url)
    monkeypatch.setenv("STRATA_TENANT", "envtenant")
    with Strata(namespace=ns) as c, Strata(server.url, namespace=ns, tenant="other") as other:
        c.set("e", "from env")
        assert c.get("e") == "from env"
        assert other.get("e") is None  # the environment's tenant was used


def test_connections_are_kept_alive_and_renewed(make_server, ns):
    s = make_server()
    with Strata(s.url, namespace=ns) as c:
        for i in range(20):
            c.set("k", i)
            assert c.get("k") == i
        assert len(c._pool.idle) == 1  # one connection, reused by every call
        port = s.port
        s.kill()
        make_server(port=port)  # the idle connection is dead: the next call takes a new one
        assert c.get("k") is None
        c.set("k", "new")
        assert c.get("k") == "new"


def test_one_client_is_shared_by_threads(c):
    errors = []

    def work(t: int) -> None:
        try:
            for i in range(40):
                c.set(f"th{t}-{i}", [t, i])
                assert c.get(f"th{t}-{i}") == [t, i]
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(c._pool.idle) <= 16


def test_writes_say_l1_only_when_redis_is_away(make_server, ns):
    from conftest import free_port
    s = make_server(REDIS_URL=f"redis://127.0.0.1:{free_port()}")
    with Strata(s.url, namespace=ns) as c:
        res = c.set("k", "v")
        assert res.stored and res.l1_only and res.reason
        assert c.get("k") == "v"
        batch = c.set_many({"a": 1, "b": 2})
        assert batch.l1_only and batch.items == {"a": "l1-only", "b": "l1-only"}
        assert c.invalidate(tags=["x"]).l1_only
        sid = c.sessions.create({"u": 1})
        assert c.sessions.update(sid, {"u": 2}).l1_only
