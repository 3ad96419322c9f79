"""One-shot markers shared by every replica (an overdue review alerts once, not per replica)."""

from __future__ import annotations

from gateway.state.client import connect


async def mark_once(url: str | None, key_name: str, ttl: float, memory: set[str]) -> bool:
    """True the first time `key_name` is marked across every replica (SET NX)."""
    if not url:
        if key_name in memory:
            return False
        memory.add(key_name)
        return True
    client = connect(url)
    try:
        return bool(await client.set(key_name, b"1", nx=True, ex=max(1, int(ttl))))
    finally:
        await client.aclose()
