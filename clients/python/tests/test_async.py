"""AsyncStrata: the same calls as coroutines, against a real server; cached() on async def
functions with both clients."""
import asyncio
from typing import List

import pytest

from conftest import TOKENS
from strata import (AsyncStrata, BadRequest, ComputeFailed, Forbidden, Strata, StrataUnavailable,
                    Unauthorized)
from test_leases import take_lease


@pytest.fixture
async def a(server, ns):
    async with AsyncStrata(server.url, namespace=ns) as client:
        yield client


async def test_kv_calls(a):
    for key, value in {"b": b"\x00\xff", "t": "text", "o": {"x": [1]}, "_mset": "odd"}.items():
        res = await a.set(key, value, ttl=60, tags=["all"])
        assert res.stored and not res.l1_only
        assert await a.get(key) == value
    assert await a.get("missing") is None
    assert await a.get("missing", default=0) == 0
    assert (await a.set("o", 1, create=True)).stored is False
    assert await a.delete("b") is True and await a.delete("b") is False
    res = await a.set_many({"m1": 1, "m2": b"\x01"}, ttl=60)
    assert res.items == {"m1": "ok", "m2": "ok"}
    assert await a.get_many(["m1", "m2", "zz"]) == {"m1": 1, "m2": b"\x01"}
    assert (await a.invalidate(tags=["all"])).tags_invalidated == 1
    assert await a.get("t") is None
    assert (await a.invalidate(patterns=["m*"])).keys_removed == 2


async def test_keys_stats_health_ratelimit_sessions_purge(a, ns):
    await a.set_many({f"k{i}": i for i in range(12)})
    pages = [page async for page in a.keys(page_size=5)]
    assert len(pages) >= 2 and sorted(k for p in pages for k in p) == sorted(
        f"k{i}" for i in range(12))
    assert "l1" in await a.stats()
    assert (await a.health())["status"] == "healthy"
    d = [await a.ratelimit(f"{ns}:rl", 2, 60) for _ in range(3)]
    assert [x.allowed for x in d] == [True, True, False] and d[2].retry_after > 0
    sid = await a.sessions.create({"u": 1}, ttl=60)
    assert await a.sessions.get(sid) == {"u": 1}
    assert await a.sessions.patch(sid, {"v": 2}) == {"u": 1, "v": 2}
    assert (await a.sessions.update(sid, {"w": 3})).stored
    assert await a.sessions.get(sid) == {"w": 3}
    assert await a.sessions.delete(sid) is True
    assert await a.sessions.get(sid) is None
    assert (await a.purge(urls=["/x"], soft=True)).soft is True


async def test_errors_and_tokens(auth_server, ns):
    async with AsyncStrata(auth_server.url, namespace=ns) as anon, \
            AsyncStrata(auth_server.url, token=TOKENS["reader"], namespace=ns) as reader, \
            AsyncStrata(auth_server.url, token=TOKENS["acme"], namespace=ns) as acme, \
            AsyncStrata(auth_server.url, token=TOKENS["writer"], namespace=ns) as writer:
        with pytest.raises(Unauthorized):
            await anon.get("k")
        with pytest.raises(Forbidden):
            await reader.set("k", 1)
        with pytest.raises(BadRequest) as e:
            await writer.set("k", 1, ttl=0)
        assert e.value.code == "bad_ttl"
        await acme.set("k", "acme's")
        assert await writer.get("k") is None
        await writer.set("k", "default's")
        assert await acme.get("k") == "acme's"


async def test_one_connection_is_kept_alive(a):
    for i in range(20):
        await a.set("k", i)
        assert await a.get("k") == i
    assert len(a._pool.idle) == 1


async def test_remember_and_cached_on_async_functions(a, ns):
    calls: List[int] = []

    @a.cached(ns=ns, ttl=60)
    async def slow(x: int) -> dict:
        calls.append(x)
        await asyncio.sleep(0.3)
        return {"x": x}

    results = await asyncio.gather(*[slow(1) for _ in range(50)])
    assert results == [{"x": 1}] * 50 and calls == [1]
    assert await a.get(slow.key(1)) == {"x": 1}
    assert await a.remember("plain", lambda: "sync fn", ttl=60) == "sync fn"

    async def failing() -> str:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await a.remember("fails", failing)
    with pytest.raises(ComputeFailed):
        await a.remember("fails", failing)  # the stored error result, for the error TTL


async def test_the_blocking_client_caches_async_functions_too(server, ns):
    calls: List[int] = []
    with Strata(server.url, namespace=ns) as c:
        @c.cached(ns=ns, ttl=60)
        async def fetch(x: int) -> int:
            calls.append(x)
            await asyncio.sleep(0.2)
            return x * 2

        assert await asyncio.gather(*[fetch(4) for _ in range(20)]) == [8] * 20
        assert calls == [4]


async def test_stale_within_grace(a):
    assert await a.remember("g", lambda: "v1", ttl=1, grace=60) == "v1"
    await asyncio.sleep(1.3)
    started = asyncio.Event()

    async def refresh() -> str:
        started.set()
        await asyncio.sleep(0.5)
        return "v2"

    refresher = asyncio.ensure_future(a.remember("g", refresh, ttl=60, grace=60))
    await started.wait()
    # answered the old value while the refresh runs (a wait would have answered v2)
    assert await a.remember("g", lambda: pytest.fail("computed")) == "v1"
    assert await refresher == "v2"
    assert await a.get("g") == "v2"


async def test_a_server_that_goes_away_while_callers_wait(make_server, ns):
    s = make_server()
    take_lease(s.url, f"/v1/cache/{ns}/held")
    async with AsyncStrata(s.url, namespace=ns) as strict, \
            AsyncStrata(s.url, namespace=ns, fail_open=True) as lenient:
        calls = [asyncio.ensure_future(strict.remember("held", lambda: "x", wait=5)),
                 asyncio.ensure_future(lenient.remember("held", lambda: "computed", wait=5))]
        await asyncio.sleep(0.4)
        s.kill()
        done = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(done[0], StrataUnavailable)
    assert done[1] == "computed"


async def test_a_connection_the_server_closed_is_renewed(make_server, ns):
    s = make_server()
    async with AsyncStrata(s.url, namespace=ns) as a:
        await a.set("k", "before")
        assert len(a._pool.idle) == 1
        port = s.port
        s.kill()
        make_server(port=port)  # the idle connection is dead: the next call takes a new one
        assert await a.get("k") is None
        await a.set("k", "after")
        assert await a.get("k") == "after"
