"""remember() and cached() over the lease protocol: one computation per key, stale serving
within grace, stale-if-error, failures, keys, and a server that goes away while a caller waits."""
import http.client
import os
import subprocess
import sys
import threading
import time
from typing import List
from urllib.parse import urlsplit

import pytest

from strata import ComputeFailed, Strata, StrataUnavailable

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def c(server, ns):
    with Strata(server.url, namespace=ns) as client:
        yield client


def take_lease(url: str, path: str) -> str:
    """Hold a key's lease from outside the client: the caller that never fills."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", path, headers={"X-Cache-Lease": "30"})
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 404
    return r.getheader("X-Cache-Lease-Token")


def test_remember_computes_once_then_answers_the_value(c):
    calls: List[int] = []

    def compute() -> dict:
        calls.append(1)
        return {"n": len(calls)}

    assert c.remember("r", compute, ttl=60) == {"n": 1}
    assert c.remember("r", compute, ttl=60) == {"n": 1}
    assert c.get("r") == {"n": 1}
    assert len(calls) == 1


def test_cached_keys_follow_the_documented_rule(c, ns):
    calls: List[tuple] = []

    @c.cached(ns=ns, ttl=60)
    def add(a: int, b: int = 2) -> int:
        calls.append((a, b))
        return a + b

    assert add(1) == 3 and add(a=1) == 3 and add(1, 2) == 3 and add(1, b=2) == 3
    assert calls == [(1, 2)]
    assert add(2) == 4 and len(calls) == 2
    key = add.key(1)
    assert key == f"{__name__}.test_cached_keys_follow_the_documented_rule.<locals>.add:" \
                  '{"a":1,"b":2}'
    assert c.get(key) == 3

    @c.cached(ns=ns)
    def text(s: str, *rest: int, **opts: str) -> str:
        return s

    assert text.key("é", 1, 2, z="1", a="2") == (
        f"{__name__}.test_cached_keys_follow_the_documented_rule.<locals>.text:"
        '{"opts":{"a":"2","z":"1"},"rest":[1,2],"s":"é"}')
    long_key = text.key("x" * 600)
    assert long_key.endswith(":sha256:" + __import__("hashlib").sha256(
        ('{"opts":{},"rest":[],"s":"' + "x" * 600 + '"}').encode()).hexdigest())
    assert text("x" * 600) == "x" * 600


def test_cached_key_and_tag_templates_and_methods(c, ns):
    calls: List[int] = []

    class Users:
        @c.cached(ns=ns, ttl=60, key="user:{uid}", tags=["user-{uid}"])
        def profile(self, uid: int) -> dict:
            calls.append(uid)
            return {"uid": uid, "n": len(calls)}

    users = Users()
    assert users.profile(7) == {"uid": 7, "n": 1}
    assert Users().profile(7) == {"uid": 7, "n": 1}  # self is not part of the key
    assert c.get("user:7") == {"uid": 7, "n": 1}
    c.invalidate(tags=["user-7"])
    assert users.profile(7) == {"uid": 7, "n": 2}

    @c.cached(ns=ns, key=lambda a, b: f"sum:{a}+{b}")
    def plus(a: int, b: int) -> int:
        return a + b

    assert plus(2, 3) == 5 and c.get("sum:2+3") == 5


def test_a_failed_computation_is_raised_and_its_waiters_told(c):
    started = threading.Event()
    outcome: List[BaseException] = []

    def failing() -> str:
        started.set()
        time.sleep(0.4)
        raise RuntimeError("the warehouse timed out")

    def holder() -> None:
        try:
            c.remember("f", failing, ttl=60)
        except BaseException as e:  # noqa: BLE001
            outcome.append(e)

    t = threading.Thread(target=holder)
    t.start()
    started.wait(5)
    with pytest.raises(ComputeFailed) as e:  # waited for the holder, got its error result
        c.remember("f", lambda: "never runs", ttl=60)
    assert "the warehouse timed out" in e.value.message
    t.join()
    assert isinstance(outcome[0], RuntimeError)


def test_stale_within_grace_and_stale_if_error(c):
    assert c.remember("g", lambda: "v1", ttl=1, grace=60) == "v1"
    assert c.remember("e", lambda: "good", ttl=1, stale_if_error=600) == "good"
    time.sleep(1.3)  # both past their TTL

    # grace: the first caller gets the stale value and the token, and refreshes; every other
    # caller is answered the stale value at once, computing nothing.
    refreshing = threading.Event()
    refreshed: List[str] = []

    def slow_refresh() -> str:
        refreshing.set()
        time.sleep(0.6)
        return "v2"

    t = threading.Thread(target=lambda: refreshed.append(c.remember("g", slow_refresh, ttl=60,
                                                                     grace=60)))
    t.start()
    assert refreshing.wait(5)
    # answered the old value while the refresh runs (a wait would have answered v2)
    assert c.remember("g", lambda: pytest.fail("computed while a refresh ran"), ttl=60) == "v1"
    t.join()
    assert refreshed == ["v2"]
    assert c.remember("g", lambda: pytest.fail("computed a fresh value"), ttl=60) == "v2"

    # stale-if-error: the refresh fails, the copy is kept and answered, to plain GETs too.
    def broken() -> str:
        raise ConnectionError("upstream answered 502")

    assert c.remember("e", broken, ttl=60, stale_if_error=600) == "good"
    assert c.get("e") == "good"
    assert c.remember("e", broken, ttl=60) == "good"


def test_stampede_across_two_processes_computes_once(server, server2, ns, tmp_path):
    """200 concurrent callers, 100 threads in each of two processes, each process on its own
    strata instance (the two share Redis): one computation."""
    counter = tmp_path / "computations"
    counter.write_text("")
    start = time.time() + 1.5
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "stampede_worker.py"), url,
                               ns, str(counter), "100", str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for url in (server.url, server2.url)]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.split()[:2] == ["100", "0"], out + err
    assert len(counter.read_text().splitlines()) == 1


def test_a_server_that_goes_away_while_callers_wait(make_server, ns):
    s = make_server()
    take_lease(s.url, f"/v1/cache/{ns}/held")  # the holder never fills: callers wait
    results: dict = {}

    def call(name: str, fail_open: bool) -> None:
        with Strata(s.url, namespace=ns, fail_open=fail_open) as client:
            try:
                results[name] = client.remember("held", lambda: "computed here", wait=5)
            except BaseException as e:  # noqa: BLE001
                results[name] = e

    threads = [threading.Thread(target=call, args=("strict", False)),
               threading.Thread(target=call, args=("open", True))]
    for t in threads:
        t.start()
    time.sleep(0.4)
    s.kill()
    for t in threads:
        t.join(10)
    assert isinstance(results["strict"], StrataUnavailable)
    assert results["open"] == "computed here"


def test_early_refresh_is_done_by_the_caller_handed_the_token(c, server, ns):
    """A fresh value that says it took a day to compute, with the largest beta: the server all
    but always hands the next lease GET a token with the hit, and that caller refreshes it."""
    u = urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("PUT", f"/v1/cache/{ns}/hot?ttl=60&compute_time=86400&beta=100", body=b"old",
                 headers={"Content-Type": "text/plain"})
    assert conn.getresponse().status == 204
    conn.close()
    for _ in range(5):  # the draw is random: "all but always" is not always
        answer = c.remember("hot", lambda: "new", ttl=60)
        if answer == "new":
            break
        assert answer == "old"  # not drawn: a plain hit, nothing computed
    assert answer == "new"
    assert c.get("hot") == "new"
