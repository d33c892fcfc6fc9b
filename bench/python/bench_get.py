"""One row of bench/python: cached gets from Python, one at a time, timed call by call.

    bench_get.py --row ROW --strata URL --redis-port PORT [--seconds 5] [--warmup 1]
                 [--profile FILE]

Every row reads a value that is there (a hit), over one keep-alive connection, one call after
the other (each call's latency is one round trip plus the Python on both ends of it), for
--warmup seconds unmeasured, then --seconds measured. It prints "ROW.metric value" lines:
rps (gets per second), p50_us, p99_us (each call's wall time), cpu_us (this process's CPU time per call:
what the client costs in Python), calls. --profile FILE: instead, runs the row under cProfile
and writes the top of it (by own time) to FILE.

Rows (see bench/python/run.sh):
  redis_get            redis-py Redis.get of a 100 B value (bytes), straight to redis-server
  strata_get           strata.Strata.get of a 100 B value (bytes)
  async_redis_get      redis.asyncio Redis.get, awaited one at a time
  async_strata_get     strata.AsyncStrata.get, awaited one at a time
  cacheaside_get_json  seed_cache.CacheManager.get: GET + json.loads of RECORD below
  strata_get_json      Strata.get of the same object stored as application/json
  cacheaside_cached    a @seed_cache.cache_result function, hit (key from md5 of the arguments)
  strata_cached        a @Strata.cached function, hit (the lease GET, decoded)
  async_strata_cached  a @AsyncStrata.cached async function, hit
"""
import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import time
from typing import Any, Awaitable, Callable, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, HERE)

import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

import seed_cache  # noqa: E402
from strata import AsyncStrata, Strata  # noqa: E402

BYTES = b"x" * 100
# A typical cached record of a seed service: a user with settings (196 bytes of compact JSON,
# 215 as json.dumps writes it by default).
RECORD = {"id": 42, "name": "Ada Lovelace", "email": "ada@example.com",
          "roles": ["admin", "writer"], "settings": {"theme": "dark", "tz": "Europe/London"},
          "created_at": "2026-12-05T18:00:00Z", "active": True, "score": 97.5}
NS = "bench"


def load_user(user_id: int) -> Any:
    """The "expensive" function the cached rows wrap; called once, to fill."""
    return dict(RECORD, id=user_id)


def measure(call: Callable[[], Any], warmup: float, seconds: float) -> Tuple[List[int], float]:
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        call()
    lat: List[int] = []
    clock = time.perf_counter_ns
    cpu = time.process_time()
    stop = clock() + int(seconds * 1e9)
    now = clock()
    while now < stop:
        call()
        t = clock()
        lat.append(t - now)
        now = t
    return lat, time.process_time() - cpu


async def ameasure(call: Callable[[], Awaitable[Any]], warmup: float,
                   seconds: float) -> Tuple[List[int], float]:
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        await call()
    lat: List[int] = []
    clock = time.perf_counter_ns
    cpu = time.process_time()
    stop = clock() + int(seconds * 1e9)
    now = clock()
    while now < stop:
        await call()
        t = clock()
        lat.append(t - now)
        now = t
    return lat, time.process_time() - cpu


def check(got: Any, want: Any, row: str) -> None:
    if got != want:
        raise SystemExit(f"bench_get: {row}: a get answered {got!r:.80}, not the value stored")


def sync_row(row: str, a: argparse.Namespace) -> Callable[[], Any]:
    """The row's call, after storing its value and checking one call answers it."""
    rurl = f"redis://127.0.0.1:{a.redis_port}/0"
    if row == "redis_get":
        r = redis.Redis(host="127.0.0.1", port=a.redis_port)
        r.set("bench:bytes", BYTES)
        check(r.get("bench:bytes"), BYTES, row)
        return lambda: r.get("bench:bytes")
    if row in ("strata_get", "strata_get_json", "strata_cached"):
        c = Strata(a.strata, namespace=NS)
        if row == "strata_get":
            c.set("bytes", BYTES)
            check(c.get("bytes"), BYTES, row)
            return lambda: c.get("bytes")
        if row == "strata_get_json":
            c.set("json", RECORD)
            check(c.get("json"), RECORD, row)
            return lambda: c.get("json")
        user = c.cached(ns=NS, ttl=3600)(load_user)
        c.delete(user.key(42))  # type: ignore[attr-defined]
        check(user(42), load_user(42), row)
        return lambda: user(42)
    if row in ("cacheaside_get_json", "cacheaside_cached"):
        os.environ["REDIS_URL"] = rurl
        cache = seed_cache.get_cache()
        if row == "cacheaside_get_json":
            cache.set("cache:user:42", RECORD, 3600)
            check(cache.get("cache:user:42"), RECORD, row)
            return lambda: cache.get("cache:user:42")
        user = seed_cache.cache_result(ttl=3600, key_prefix="user")(load_user)
        cache.delete(seed_cache.cache_key("user", (42,), {}))
        check(user(42), load_user(42), row)
        return lambda: user(42)
    raise SystemExit(f"bench_get: no row {row!r}")


async def async_row(row: str, a: argparse.Namespace) -> Callable[[], Awaitable[Any]]:
    if row == "async_redis_get":
        r = aioredis.Redis(host="127.0.0.1", port=a.redis_port)
        await r.set("bench:bytes", BYTES)
        check(await r.get("bench:bytes"), BYTES, row)
        return lambda: r.get("bench:bytes")
    c = AsyncStrata(a.strata, namespace=NS)
    if row == "async_strata_get":
        await c.set("bytes", BYTES)
        check(await c.get("bytes"), BYTES, row)
        return lambda: c.get("bytes")
    if row == "async_strata_cached":
        async def load(user_id: int) -> Any:
            return load_user(user_id)

        user = c.cached(ns=NS, ttl=3600)(load)
        await c.delete(user.key(43))  # type: ignore[attr-defined]
        check(await user(43), load_user(43), row)
        return lambda: user(43)
    raise SystemExit(f"bench_get: no row {row!r}")


def report(row: str, lat: List[int], cpu: float) -> None:
    n = len(lat)
    total = sum(lat) / 1e9
    lat.sort()
    print(f"{row}.rps {n / total:.0f}")
    print(f"{row}.p50_us {lat[n // 2] / 1e3:.1f}")
    print(f"{row}.p99_us {lat[min(n - 1, (n * 99) // 100)] / 1e3:.1f}")
    print(f"{row}.cpu_us {cpu * 1e6 / n:.1f}")
    print(f"{row}.calls {n}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--row", required=True)
    p.add_argument("--strata", required=True, help="strata serve's URL")
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--profile", help="write a cProfile summary of the row here instead")
    a = p.parse_args()
    is_async = a.row.startswith("async_")
    if is_async:
        loop = asyncio.new_event_loop()
        call = loop.run_until_complete(async_row(a.row, a))
        run: Callable[[], Tuple[List[int], float]] = lambda: loop.run_until_complete(  # noqa: E731
            ameasure(call, a.warmup, a.seconds))
    else:
        scall = sync_row(a.row, a)
        run = lambda: measure(scall, a.warmup, a.seconds)  # noqa: E731
    if a.profile:
        prof = cProfile.Profile()
        prof.enable()
        lat, _ = run()
        prof.disable()
        out = io.StringIO()
        print(f"cProfile of {a.row}: {len(lat)} calls in {a.seconds}s (+{a.warmup}s warm-up),"
              " under the profiler (slower than unprofiled)", file=out)
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(30)
        with open(a.profile, "w") as f:
            f.write(out.getvalue())
        return
    lat, cpu = run()
    report(a.row, lat, cpu)


if __name__ == "__main__":
    main()
