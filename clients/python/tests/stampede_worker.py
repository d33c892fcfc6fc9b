"""One process of the stampede test: THREADS threads call a cached function at START (a wall
clock time shared with the other process), each appending a line to COUNTER when it computes.

usage: stampede_worker.py URL NS COUNTER THREADS START"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from strata import Strata  # noqa: E402

url, ns, counter, threads, start = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), \
    float(sys.argv[5])
cache = Strata(url, namespace=ns, max_connections=threads)


@cache.cached(ns=ns, ttl=60, lease=10, wait=10)
def report(day: str) -> dict:
    with open(counter, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(0.5)  # the expensive part: every other caller arrives while it runs
    return {"day": day, "total": 42}


results, errors = [], []


def call() -> None:
    time.sleep(max(0.0, start - time.time()))
    try:
        results.append(report("2026-12-05"))
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))


pool = [threading.Thread(target=call) for _ in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
cache.close()
ok = sum(1 for r in results if r == {"day": "2026-12-05", "total": 42})
print(f"{ok} {len(errors)} {errors[:3]}")
