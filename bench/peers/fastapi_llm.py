"""The stack the seed services run, as bench/llm measures it: FastAPI + redis-py cache-aside in
front of an OpenAI-compatible upstream.

    POST /v1/chat/completions  the key is the SHA-256 of the JSON body (json.dumps, sort_keys);
                               Redis GET; on a miss the body goes to the upstream (httpx, one
                               connection pool) and a 200 answer is stored whole with SETEX.
    POST /v1/embeddings        the same: the whole answer cached by the body's hash (a batch is
                               one entry: a batch that differs by one input is a miss).

The answer is sent as the bytes Redis holds (no json.loads of it: the cheapest a cache-aside
service can do). X-Cache: HIT or MISS says which. X-Origin-* request headers (the fake upstream's
knobs, e.g. X-Origin-Completion-Size) go upstream on a miss. Streams are not handled (the
benchmark's FastAPI rows are plain requests).

Run by bench/llm/run.sh under uvicorn, one worker, uvloop and httptools, no access log:

    REDIS_PORT=6379 UPSTREAM=http://127.0.0.1:8090/v1 python3 -m uvicorn fastapi_llm:app ...
"""
import hashlib
import json
import os

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import Response

TTL = 3600

app = FastAPI()
pool = aioredis.Redis(host="127.0.0.1", port=int(os.environ.get("REDIS_PORT", "6379")))
upstream = httpx.AsyncClient(base_url=os.environ["UPSTREAM"], timeout=60.0)


async def cache_aside(request: Request, path: str, prefix: str) -> Response:
    body = await request.json()
    key = prefix + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    value = await pool.get(key)
    if value is not None:
        return Response(content=value, media_type="application/json", headers={"X-Cache": "HIT"})
    headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-origin-")}
    if "authorization" in request.headers:
        headers["Authorization"] = request.headers["authorization"]
    r = await upstream.post(path, json=body, headers=headers)
    if r.status_code == 200:
        await pool.setex(key, TTL, r.content)
    return Response(content=r.content, status_code=r.status_code,
                    media_type=r.headers.get("content-type", "application/json"),
                    headers={"X-Cache": "MISS"})


@app.post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    return await cache_aside(request, "/chat/completions", "llm:chat:")


@app.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    return await cache_aside(request, "/embeddings", "llm:emb:")
