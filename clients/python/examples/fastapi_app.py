"""A FastAPI service on strata: the client as a dependency, a rate limit per user, and an
expensive endpoint cached with one computation per key across every worker process.

    pip install ./clients/python fastapi uvicorn
    STRATA_URL=http://127.0.0.1:8080 STRATA_TOKEN=writer-token-1234 \\
        uvicorn fastapi_app:app --workers 4

Not run by the tests (FastAPI is not a dependency of strata); see README.md, "FastAPI".
"""
import asyncio
from typing import AsyncIterator, Dict

from fastapi import Depends, FastAPI, HTTPException, Request, Response

from strata import AsyncStrata

app = FastAPI()
# One client per process: STRATA_URL, STRATA_TOKEN, STRATA_TENANT from the environment. With
# fail_open a strata outage degrades to computing every request instead of failing them.
cache = AsyncStrata(namespace="api", fail_open=True)


@app.on_event("shutdown")
async def close_cache() -> None:
    await cache.aclose()


async def get_cache() -> AsyncIterator[AsyncStrata]:
    """The dependency: handlers take `cache: AsyncStrata = Depends(get_cache)`."""
    yield cache


def current_user(request: Request) -> str:
    return request.headers.get("X-User", "anonymous")  # your authentication here


async def rate_limit_per_user(response: Response, user: str = Depends(current_user),
                              cache: AsyncStrata = Depends(get_cache)) -> None:
    """10 requests per minute per user, shared by every process and instance (GCRA in Redis)."""
    decision = await cache.ratelimit(f"reports:{user}", limit=10, period=60)
    response.headers["RateLimit-Remaining"] = str(decision.remaining)
    if not decision.allowed:
        raise HTTPException(429, "too many requests",
                            headers={"Retry-After": str(int(decision.retry_after))})


@cache.cached(ns="reports", ttl=300, grace=60, stale_if_error=3600, tags=["reports"])
async def build_report(day: str) -> Dict[str, object]:
    await asyncio.sleep(2)  # the expensive part: a warehouse query, an LLM call...
    return {"day": day, "total": 42}


@app.get("/reports/{day}", dependencies=[Depends(rate_limit_per_user)])
async def report(day: str) -> Dict[str, object]:
    return await build_report(day)


@app.post("/reports/invalidate")
async def invalidate_reports(cache: AsyncStrata = Depends(get_cache)) -> Dict[str, int]:
    done = await cache.invalidate(tags=["reports"])
    return {"tags_invalidated": done.tags_invalidated}
