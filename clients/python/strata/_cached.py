"""How cached() names a call: the key and tags built from the function and its arguments.

The key rule (README.md, "Keys"): `<module>.<qualname>:<JSON>`, where JSON is the call's
arguments bound to the function's signature with defaults applied (so f(1), f(a=1) and f(1, b=2)
when b defaults to 2 are one key), as an object of parameter names, keys sorted, no spaces, UTF-8
as is; `self` and `cls` are left out. Past 512 bytes the JSON is replaced by `sha256:<hex>` of it.
Arguments JSON cannot write are a TypeError: give key= then.
"""
import functools
import inspect
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from ._protocol import stable_key

KeySpec = Union[None, str, Callable[..., str]]
TagSpec = Union[None, Iterable[str], Callable[..., Iterable[str]]]


@functools.lru_cache(maxsize=1024)
def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """The function's signature, worked out once: inspect.signature costs more than a call to
    strata (bench/python)."""
    return inspect.signature(fn)


def bound_arguments(fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    bound = _signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    out: Dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name in ("self", "cls"):
            continue
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def call_key(fn: Callable[..., Any], spec: KeySpec, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> str:
    """key=None: the rule above; a str: a template formatted with the bound arguments
    ("user:{user_id}"); a callable: called with the call's arguments."""
    if callable(spec):
        return str(spec(*args, **kwargs))
    arguments = bound_arguments(fn, args, kwargs)
    if isinstance(spec, str):
        return spec.format(**arguments)
    return stable_key(f"{fn.__module__}.{fn.__qualname__}", arguments)


def call_tags(fn: Callable[..., Any], spec: TagSpec, args: Tuple[Any, ...],
              kwargs: Dict[str, Any]) -> Optional[List[str]]:
    """tags=: a list of templates formatted with the bound arguments, or a callable."""
    if spec is None:
        return None
    if callable(spec):
        return [str(t) for t in spec(*args, **kwargs)]
    arguments = bound_arguments(fn, args, kwargs)
    return [t.format(**arguments) for t in spec]
