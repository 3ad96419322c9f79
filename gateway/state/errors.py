"""The one error `state/` lets out: Redis could not be reached or refused a command.

Callers outside `state/` (app wiring, the anomaly detector) catch `StoreUnavailable`
and never import redis: the Redis client's exceptions are translated here, at the
boundary of the module that owns Redis (`raise ... from exc`, so the cause stays in
the traceback). Inside `state/`, the owner's own loops keep catching RedisError.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import RedisError

P = ParamSpec("P")
T = TypeVar("T")


class StoreUnavailable(Exception):
    """The shared store (Redis) failed; the message is the client's own."""


def translates_store_errors(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """An async entry point of a store whose Redis failures leave as StoreUnavailable."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    return wrapper
