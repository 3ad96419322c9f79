"""WebSocket relay for the routes the configuration allows (`websocket: true`).

Frames cannot be classified reliably, so WebSocket is refused unless a route
opts in; an opted-in route is relayed both ways after authentication, guard
and policy, and audited as one access.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from gateway.upstream import Upstream

# The client's handshake headers: the CRM gets a handshake of the gateway's own
# (aiohttp's client builds key, version and protocols; no extensions are offered).
_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
     "sec-websocket-protocol"}
)  # fmt: skip


async def relay_websocket(
    request: web.Request, upstream: Upstream, path_qs: str, headers: list[tuple[str, str]]
) -> web.WebSocketResponse:
    """Relay an upgraded request: `headers` are the ones the gateway would forward; the
    client's own handshake headers among them are replaced by the gateway's."""
    headers = [(k, v) for k, v in headers if k.lower() not in _HANDSHAKE]
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    remote = await upstream.ws_connect(path_qs, headers, protocols)
    local = web.WebSocketResponse(protocols=[remote.protocol] if remote.protocol else ())
    await local.prepare(request)

    async def pump(
        src: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
        dst: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
    ) -> None:
        async for msg in src:
            if msg.type is aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            else:
                break
        await dst.close()

    try:
        await asyncio.gather(pump(local, remote), pump(remote, local))
    finally:
        await remote.close()
        await local.close()
    return local
