"""Errors carry the server's code and status; tokens and tenants; a server that is not there."""
import asyncio
import os
import signal
import time

import pytest

from conftest import TOKENS, free_port
from strata import (AsyncStrata, BadRequest, Forbidden, NotFound, RateLimited, StrataError,
                    StrataUnavailable, Strata, TooLarge, Unauthorized)


@pytest.fixture
def c(server, ns):
    with Strata(server.url, namespace=ns) as client:
        yield client


@pytest.mark.parametrize("call, code", [
    (lambda c: c.set("k", 1, ttl=0), "bad_ttl"),
    (lambda c: c.set("k", 1, tags=["a", "", "b"]), "bad_tags"),
    (lambda c: c.set("k", 1, grace=-1), "bad_grace"),
    (lambda c: c.get("k", ns="bad:ns"), "bad_namespace"),
    (lambda c: c.get("k", ns="_private"), "reserved_namespace"),
    (lambda c: c.get("a\nb"), "bad_key"),
    (lambda c: c.get_many(["k"] * 1001), "bad_request"),
    (lambda c: c.invalidate(), "bad_request"),
    (lambda c: c.ratelimit("k", 0, 1), "bad_request"),
    (lambda c: c.sessions.get("not-an-id"), "bad_session_id"),
    (lambda c: c.sessions.create({"x": 1}, ttl=-5), "bad_ttl"),
])
def test_400s_carry_the_servers_code(c, call, code):
    with pytest.raises(BadRequest) as e:
        call(c)
    assert e.value.code == code and e.value.status == 400
    assert isinstance(e.value, StrataError) and e.value.message


def test_too_large(c):
    with pytest.raises(TooLarge) as e:
        c.get("k" * 513)
    assert (e.value.status, e.value.code) == (414, "key_too_long")
    with pytest.raises(TooLarge) as e:
        c.set("big", b"x" * (1024 * 1024 + 1))
    assert (e.value.status, e.value.code) == (413, "value_too_large")


def test_tokens_and_roles(auth_server, ns):
    with Strata(auth_server.url, namespace=ns) as anon, \
            Strata(auth_server.url, token="wrong-token-xyz", namespace=ns) as wrong, \
            Strata(auth_server.url, token=TOKENS["reader"], namespace=ns) as reader, \
            Strata(auth_server.url, token=TOKENS["writer"], namespace=ns) as writer, \
            Strata(auth_server.url, token=TOKENS["admin"], namespace=ns) as admin:
        for client in (anon, wrong):
            with pytest.raises(Unauthorized) as e:
                client.get("k")
            assert (e.value.status, e.value.code) == (401, "unauthorized")
        with pytest.raises(Forbidden) as e:
            reader.set("k", "v")
        assert (e.value.status, e.value.code) == (403, "forbidden")
        assert writer.set("k", "v").stored
        assert reader.get("k") == "v"
        assert reader.stats()["l1"]  # counters: the read role
        with pytest.raises(Forbidden):  # listing keys: admin
            list(writer.keys())
        with pytest.raises(Forbidden):  # a lease needs the write role
            reader.remember("r", lambda: 1)
        assert admin.stats()["l1"]
        assert [k for page in admin.keys() for k in page] == ["k"]
        assert anon.health()["status"] == "healthy"  # no token needed


def test_tenants(auth_server, ns):
    with Strata(auth_server.url, token=TOKENS["writer"], namespace=ns) as default, \
            Strata(auth_server.url, token=TOKENS["writer"], tenant="acme", namespace=ns) as acme, \
            Strata(auth_server.url, token=TOKENS["acme"], namespace=ns) as bound, \
            Strata(auth_server.url, token=TOKENS["acme"], tenant="globex", namespace=ns) as wrong:
        default.set("k", "default's")
        bound.set("k", "acme's")
        assert default.get("k") == "default's"
        assert acme.get("k") == "acme's"  # an unbound token acts in X-Tenant
        assert bound.get("k") == "acme's"
        with pytest.raises(Forbidden):
            wrong.get("k")
        sid = bound.sessions.create({"t": "acme"})
        assert acme.sessions.get(sid) == {"t": "acme"}
        assert default.sessions.get(sid) is None
    with Strata(auth_server.url, token=TOKENS["writer"], tenant="bad tenant") as bad:
        with pytest.raises(BadRequest) as e:
            bad.get("k")
        assert e.value.code == "bad_tenant"


def test_unreachable_raises_or_fails_open(ns):
    url = f"http://127.0.0.1:{free_port()}"
    with Strata(url, namespace=ns, timeout=2) as c:
        with pytest.raises(StrataUnavailable) as e:
            c.get("k")
        assert e.value.status is None and e.value.code == "unavailable"
        with pytest.raises(StrataUnavailable):
            c.remember("k", lambda: 1)
    with Strata(url, namespace=ns, timeout=2, fail_open=True) as c:
        assert c.get("k", "default") == "default"
        res = c.set("k", 1)
        assert not res.stored
        assert c.delete("k") is False
        assert c.get_many(["a"]) == {}
        assert c.remember("k", lambda: 41 + 1) == 42
        assert c.ratelimit("k", 1, 1).allowed
        with pytest.raises(StrataUnavailable):  # what cannot fail open raises
            c.sessions.create({})

    async def run() -> None:
        async with AsyncStrata(url, namespace=ns, timeout=2) as a:
            with pytest.raises(StrataUnavailable):
                await a.get("k")
        async with AsyncStrata(url, namespace=ns, timeout=2, fail_open=True) as a:
            assert await a.get("k") is None
            assert await a.remember("k", lambda: "computed") == "computed"

    asyncio.run(run())


def wait_stopped(pid: int) -> None:
    """Until every thread of pid is stopped: SIGSTOP takes effect asynchronously, and a thread
    still running could answer one more request."""
    deadline = time.monotonic() + 10
    while True:
        tasks = os.listdir(f"/proc/{pid}/task")
        states = []
        for t in tasks:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        if all(st in ("T", "t") for st in states):
            return
        assert time.monotonic() < deadline, f"pid {pid} not stopped: {states}"
        time.sleep(0.01)


def test_a_server_that_stops_answering_times_out_then_is_used_again(make_server, ns):
    """A stopped server (SIGSTOP: the kernel still accepts and queues, nobody answers): a call
    on a kept-alive connection and one on a new connection end with StrataUnavailable after the
    client's timeout, never hang; once the server runs again the same clients work."""
    s = make_server()
    with Strata(s.url, namespace=ns, timeout=0.3) as c:
        c.set("k", "v")
        os.kill(s.p.pid, signal.SIGSTOP)
        try:
            wait_stopped(s.p.pid)
            for _ in range(2):  # the kept-alive connection, then a new one
                with pytest.raises(StrataUnavailable) as e:
                    c.get("k")
                assert "timed out" in e.value.message
                assert e.value.status is None and e.value.code == "unavailable"

            async def stalled() -> None:
                async with AsyncStrata(s.url, namespace=ns, timeout=0.3) as a:
                    with pytest.raises(StrataUnavailable):
                        await a.get("k")

            asyncio.run(stalled())
        finally:
            os.kill(s.p.pid, signal.SIGCONT)
        assert c.get("k") == "v"


def test_the_servers_own_rate_limits_raise_rate_limited(make_server, ns):
    s = make_server(STRATA_RATE_LIMITS="per-ip:route=kv,limit=2,period=10,by=ip")
    with Strata(s.url, namespace=ns) as c:
        c.get("k")
        c.get("k")
        with pytest.raises(RateLimited) as e:
            c.get("k")
        assert (e.value.status, e.value.code) == (429, "rate_limited")
        assert e.value.retry_after >= 1


def test_missing_sessions(c):
    with pytest.raises(NotFound) as e:
        c.sessions.update("A" * 22, {"x": 1})
    assert (e.value.status, e.value.code) == (404, "not_found")
    assert c.sessions.get("A" * 22) is None
    assert c.sessions.delete("A" * 22) is False
