"""The Python stack strata replaces, as bench/http measures it: FastAPI + redis-py, cache-aside.

    GET /v1/cache/{ns}/{key}   Redis GET of "{ns}:{key}" (redis.asyncio, one connection pool);
                               on a miss, the "origin" (a fixed body) is stored with SET EX and
                               returned. In the benchmark every key is in Redis: every request is
                               one Redis round trip, a hit.
    GET /dict/{ns}/{key}       the same, served from an in-process dict (no Redis): what FastAPI
                               and uvicorn cost by themselves.

Run by bench/http/run.sh under uvicorn, one worker, uvloop and httptools when installed (what
`uvicorn[standard]` deploys), no access log:

    REDIS_PORT=6379 BODY_BYTES=100 python3 -m uvicorn fastapi_app:app --workers 1 ...
"""
import os

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import Response

BODY = b"x" * int(os.environ.get("BODY_BYTES", "100"))
TTL = 3600

app = FastAPI()
pool = aioredis.Redis(host="127.0.0.1", port=int(os.environ.get("REDIS_PORT", "6379")))
memory = {}


def origin(ns: str, key: str) -> bytes:
    return BODY


@app.get("/v1/cache/{ns}/{key}")
async def cached(ns: str, key: str) -> Response:
    name = f"{ns}:{key}"
    value = await pool.get(name)
    if value is None:
        value = origin(ns, key)
        await pool.set(name, value, ex=TTL)
    return Response(content=value, media_type="application/octet-stream")


@app.get("/dict/{ns}/{key}")
async def in_memory(ns: str, key: str) -> Response:
    name = f"{ns}:{key}"
    value = memory.get(name)
    if value is None:
        value = memory[name] = origin(ns, key)
    return Response(content=value, media_type="application/octet-stream")
