"""The two drivers of the calls in _protocol.py: one blocking, one for asyncio.

`send` carries out a Request (raising StrataUnavailable when the server cannot be reached),
`compute` runs the user's function. What either raises is thrown into the call's generator,
which decides (fail_open, stale-if-error) and may raise it on.
"""
import asyncio
import inspect
import time
from typing import Any, Awaitable, Callable, Optional, TypeVar

from ._protocol import Compute, Op, Request, Response, Sleep

T = TypeVar("T")


def run_sync(op: Op[T], send: Callable[[Request], Response],
             compute: Optional[Callable[[], Any]] = None) -> T:
    reply: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            step = op.throw(error) if error is not None else op.send(reply)
        except StopIteration as stop:
            value: T = stop.value
            return value
        reply, error = None, None
        try:
            if isinstance(step, Request):
                reply = send(step)
            elif isinstance(step, Compute):
                if compute is None:
                    raise TypeError("this call computes nothing")
                reply = compute()
            elif isinstance(step, Sleep):
                time.sleep(step.seconds)
        except Exception as exc:  # noqa: BLE001 - handed to the call, which raises it on
            error = exc


async def run_async(op: Op[T], send: Callable[[Request], Awaitable[Response]],
                    compute: Optional[Callable[[], Any]] = None) -> T:
    reply: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            step = op.throw(error) if error is not None else op.send(reply)
        except StopIteration as stop:
            value: T = stop.value
            return value
        reply, error = None, None
        try:
            if isinstance(step, Request):
                reply = await send(step)
            elif isinstance(step, Compute):
                if compute is None:
                    raise TypeError("this call computes nothing")
                reply = compute()
                if inspect.isawaitable(reply):
                    reply = await reply
            elif isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
        except Exception as exc:  # noqa: BLE001 - handed to the call, which raises it on
            error = exc
