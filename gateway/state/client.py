"""Creating the shared async Redis client (hiredis parser when installed)."""

from __future__ import annotations

import redis.asyncio as aioredis


def connect(url: str, *, timeout: float = 1.0) -> aioredis.Redis:
    """A pooled client with short timeouts: the hot path never waits long on Redis."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        decode_responses=False,
    )


async def ping(url: str, *, timeout: float = 1.0) -> bool:
    """Readiness: can we reach Redis right now?"""
    client = connect(url, timeout=timeout)
    try:
        return bool(await client.ping())
    except (aioredis.RedisError, OSError):
        return False
    finally:
        await client.aclose()
