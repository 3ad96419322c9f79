"""A Splunk HTTP Event Collector with indexer acknowledgement, as Splunk documents it.

No HEC server is installable here (PyPI, npm and Maven hold HEC *clients* only; Splunk
itself and the OpenTelemetry Collector's splunkhec receiver are not packages this
machine can install), so the tests run this implementation of the documented protocol
("Set up and use HTTP Event Collector", "About HTTP Event Collector Indexer
Acknowledgment", "Format events for HTTP Event Collector"):

- `POST /services/collector/event` (and `/services/collector`) with
  `Authorization: Splunk <token>`: no token 401 code 2, a wrong one 403 code 4.
- The token has `useACK = 1` (as deploy/siem/splunk-inputs.conf sets it), so every
  request needs a channel, from `X-Splunk-Request-Channel` or `?channel=`: none is
  400 code 10 "Data channel is missing", a value that is not a GUID 400 code 11.
- The body is one or more JSON event objects, concatenated with or without whitespace;
  each needs a non-empty `event` (code 12 "Event field is required", 13 "Event field
  cannot be blank", 6 "Invalid data format", with `invalid-event-number`); `time` is
  epoch seconds, a number or a numeric string. A request is all or nothing.
- A valid request answers `{"text":"Success","code":0,"ackId":N}`; ackIds count from
  0 per channel. Indexing is asynchronous, and a 200 does not mean indexed: here a
  batch counts as indexed once it has been asked about `index_after` times (a
  stand-in for indexer latency, so the first answer is `false`).
- `POST /services/collector/ack` with the channel and `{"acks":[ids]}` answers
  `{"acks":{"<id>":bool}}`; an ackId reported `true` once is forgotten, so asking
  again answers `false` (Splunk keeps the status until it is queried).
- `busy` answers the next N event posts with 503 code 9 "Server is busy".
- `GET /services/collector/health` answers 200 code 17 "HEC is healthy".
"""

from __future__ import annotations

import configparser
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass
class _Batch:
    events: list[dict[str, Any]]
    polls: int = 0


@dataclass
class _Channel:
    next_ack: int = 0
    pending: dict[int, _Batch] = field(default_factory=dict)


def _error(status: int, text: str, code: int, **extra: Any) -> web.Response:
    return web.json_response({"text": text, "code": code, **extra}, status=status)


class HecReceiver:
    def __init__(self, token: str, *, busy: int = 0, index_after: int = 2) -> None:
        self.token = token
        self.busy = busy
        self.index_after = index_after
        self.indexed: list[dict[str, Any]] = []  # what a search would find
        self.channels: dict[str, _Channel] = {}
        self.ack_ids: list[tuple[str, int]] = []
        self.ack_queries = 0
        self.index = "main"
        self.sourcetype = ""

    @classmethod
    def from_inputs_conf(cls, path: Path, token: str, **kwargs: Any) -> HecReceiver:
        """The receiver as the shipped inputs.conf stanza sets it up (the token itself is
        a placeholder there): indexer acknowledgement on, its index and sourcetype."""
        conf = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
        conf.read(path)
        stanza = next(conf[name] for name in conf.sections() if name.startswith("http://"))
        if stanza.get("useACK") != "1" or stanza.get("disabled", "0") != "0":
            raise ValueError(f"{path}: the HEC input must be enabled with useACK = 1")
        receiver = cls(token, **kwargs)
        receiver.index = stanza.get("index", "main")
        receiver.sourcetype = stanza.get("sourcetype", "")
        return receiver

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/services/collector/event", self.event)
        app.router.add_post("/services/collector", self.event)
        app.router.add_post("/services/collector/ack", self.ack)
        app.router.add_get("/services/collector/health", self.health)
        return app

    def _authorise(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return _error(401, "Token is required", 2)
        scheme, _, token = header.partition(" ")
        if scheme != "Splunk" or token != self.token:
            return _error(403, "Invalid token", 4)
        return None

    def _channel(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        value = request.headers.get("X-Splunk-Request-Channel") or request.query.get("channel")
        if not value:
            return None, _error(400, "Data channel is missing", 10)
        try:
            uuid.UUID(value)
        except ValueError:
            return None, _error(400, "Invalid data channel", 11)
        return value, None

    @staticmethod
    def _parse(body: str) -> tuple[list[dict[str, Any]], web.Response | None]:
        decoder = json.JSONDecoder()
        events: list[dict[str, Any]] = []
        pos, number = 0, 0
        while True:
            while pos < len(body) and body[pos].isspace():
                pos += 1
            if pos == len(body):
                break
            try:
                obj, pos = decoder.raw_decode(body, pos)
            except ValueError:
                return [], _error(400, "Invalid data format", 6, **{"invalid-event-number": number})
            if not isinstance(obj, dict) or "event" not in obj:
                return [], _error(
                    400, "Event field is required", 12, **{"invalid-event-number": number}
                )
            if obj["event"] in ("", None, {}):
                return [], _error(
                    400, "Event field cannot be blank", 13, **{"invalid-event-number": number}
                )
            when = obj.get("time")
            if when is not None:
                try:
                    float(when)
                except (TypeError, ValueError):
                    return [], _error(
                        400, "Invalid data format", 6, **{"invalid-event-number": number}
                    )
            events.append(obj)
            number += 1
        if not events:
            return [], _error(400, "No data", 5)
        return events, None

    async def event(self, request: web.Request) -> web.Response:
        refused = self._authorise(request)
        if refused is not None:
            return refused
        name, refused = self._channel(request)
        if refused is not None or name is None:
            return refused or _error(400, "Data channel is missing", 10)
        if self.busy > 0:
            self.busy -= 1
            return _error(503, "Server is busy", 9)
        events, refused = self._parse((await request.read()).decode("utf-8"))
        if refused is not None:
            return refused
        channel = self.channels.setdefault(name, _Channel())
        ack_id = channel.next_ack
        channel.next_ack += 1
        channel.pending[ack_id] = _Batch(events)
        self.ack_ids.append((name, ack_id))
        return web.json_response({"text": "Success", "code": 0, "ackId": ack_id})

    async def ack(self, request: web.Request) -> web.Response:
        refused = self._authorise(request)
        if refused is not None:
            return refused
        name, refused = self._channel(request)
        if refused is not None or name is None:
            return refused or _error(400, "Data channel is missing", 10)
        try:
            wanted = (await request.json())["acks"]
            ids = [int(i) for i in wanted]
        except (ValueError, KeyError, TypeError):
            return _error(400, "Invalid data format", 6)
        self.ack_queries += 1
        channel = self.channels.get(name, _Channel())
        out: dict[str, bool] = {}
        for ack_id in ids:
            batch = channel.pending.get(ack_id)
            if batch is None:
                out[str(ack_id)] = False  # unknown, or already reported indexed
                continue
            batch.polls += 1
            if batch.polls >= self.index_after:
                self.indexed.extend(batch.events)
                del channel.pending[ack_id]
                out[str(ack_id)] = True
            else:
                out[str(ack_id)] = False
        return web.json_response({"acks": out})

    async def health(self, request: web.Request) -> web.Response:
        return _error(200, "HEC is healthy", 17)


@asynccontextmanager
async def serve_hec(receiver: HecReceiver) -> AsyncIterator[str]:
    """The receiver on a free loopback port; yields its base URL."""
    runner = web.AppRunner(receiver.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
