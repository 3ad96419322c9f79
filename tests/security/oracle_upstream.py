"""The demo CRM with a recorder in front: every request it receives, as it received it.

The search-oracle battery asserts at the CRM side: a refused filter must never
reach the CRM (no request at all for that call, and the probed value in no
request line or body the CRM ever saw), and an allowed lookup must reach it
unchanged. The recorder is an aiohttp middleware on the demo CRM app, so what
it records is exactly what the CRM's own handlers are given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

import aiohttp
import orjson
from aiohttp import web

from gateway.demo.crm import create_demo_crm
from tests.conftest import free_port
from tests.integration.policy_http_harness import DemoCrm


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    raw_path: str  # path and query exactly as sent on the request line
    body: bytes

    def mentions(self, value: str) -> bool:
        """The value anywhere in the request line (raw or decoded) or the body."""
        line = self.raw_path + "\n" + unquote(unquote(self.raw_path))
        return value in line or value.encode() in self.body


@dataclass
class Recorder:
    seen: list[Received] = field(default_factory=list)

    def mentioning(self, value: str) -> list[Received]:
        return [r for r in self.seen if r.mentions(value)]


@dataclass
class RecordingCrm:
    crm: DemoCrm
    recorder: Recorder

    @property
    def url(self) -> str:
        return self.crm.url

    @property
    def records(self) -> list[dict[str, object]]:
        return self.crm.records

    async def stop(self) -> None:
        await self.crm.stop()


def _recording(recorder: Recorder) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.read() if request.body_exists else b""
        recorder.seen.append(Received(request.method, request.raw_path, body))
        return await handler(request)

    return record


async def start_recording_crm(count: int = 60) -> RecordingCrm:
    """The demo CRM (seed 7) with a recorder; `records` as the CRM serves them."""
    recorder = Recorder()
    app = create_demo_crm(seed=7, count=count)
    app.middlewares.append(_recording(recorder))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as s, s.get(f"{url}/api/customers?page_size={count}") as r:
        records = orjson.loads(await r.read())["results"]
    recorder.seen.clear()
    return RecordingCrm(DemoCrm(runner, url, records), recorder)
