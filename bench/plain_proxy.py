"""The pass-through proxy a user would write in aiohttp themselves: the baseline.

    .venv/bin/python bench/plain_proxy.py --upstream http://127.0.0.1:9001 --port 9002 [--workers 2]

No inspection, no policy: forward the request, stream the response back.
Several workers share the port with SO_REUSEPORT (like the gateway's).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing

import uvloop
from aiohttp import ClientSession, TCPConnector, web

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
SESSION = web.AppKey("session", ClientSession)


async def proxy(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    async with session.request(
        request.method,
        request.rel_url,
        headers=headers,
        data=request.content,
        auto_decompress=False,
    ) as upstream:
        response = web.StreamResponse(status=upstream.status)
        response.headers.update({k: v for k, v in upstream.headers.items() if k.lower() not in HOP})
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(65536):
            await response.write(chunk)
        await response.write_eof()
        return response


async def serve(upstream: str, port: int, reuse_port: bool) -> None:
    app = web.Application()
    session = ClientSession(upstream, connector=TCPConnector(limit=100))
    app[SESSION] = session
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse_port or None).start()
    try:
        await asyncio.Event().wait()
    finally:
        await session.close()


def worker(upstream: str, port: int, reuse_port: bool) -> None:
    uvloop.run(serve(upstream, port, reuse_port))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    if args.workers == 1:
        worker(args.upstream, args.port, False)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=worker, args=(args.upstream, args.port, True))
        for _ in range(args.workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()


if __name__ == "__main__":
    main()
