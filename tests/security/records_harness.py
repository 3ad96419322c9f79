"""What the record-model batteries share: a real OPA on the repository's rego/ (open
hours, so no case depends on the clock), a gateway in front of any upstream with the
policy tests' staff directory, and the checks on what reached the caller.

Used by test_outbound_records.py, test_outbound_formats.py, test_outbound_keys.py
and test_demo_crm_routes.py (each builds its own fixtures from these helpers).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiohttp import web

from gateway.core.negotiation import DEFAULT_RESPONSE_TYPES
from tests.conftest import ROOT, OpaProcess, free_port
from tests.integration.gateway_harness import Gateway, start_gateway
from tests.integration.policy_http_harness import (
    ALWAYS_OPEN,
    headers,
    policy_copy,
    write_staff_directory,
)

BASE = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
OPEN_HOURS = {**BASE["time_place"], "hours": ALWAYS_OPEN, "holidays": []}
_DECLARED = re.compile(r"""<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)""")


def opa_process(dest: Path) -> Iterator[OpaProcess]:
    opa = OpaProcess([policy_copy(dest, ROOT, time_place=OPEN_HOURS)])
    opa.start()
    try:
        yield opa
    finally:  # also when a test iterating over it fails (the generator is closed)
        opa.stop()


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def records_gateway(
    tmp_path: Path, upstream_url: str, opa: OpaProcess, **overrides: Any
) -> Gateway:
    directory = write_staff_directory(tmp_path / "staff.yaml")
    return await start_gateway(
        tmp_path,
        upstream_url,
        **{
            "identity.directory": str(directory),
            "policy.engine": "external",
            "policy.url": opa.url,
            "policy.timeout": 2.0,
            **overrides,
        },
    )


# A legacy CRM's catalog: every type the codecs read, plus JSON labelled text/plain or
# text/html, so that each format's record rules run (the demo catalog declares JSON only,
# and refuses the rest before any record rule: see test_outbound_formats.py).
HOSTILE_TYPES = [*DEFAULT_RESPONSE_TYPES, "text/plain", "text/html"]


def hostile_catalog(dest: Path) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "crm" / "demo.yaml").read_text("utf-8"))
    raw["response_types"] = HOSTILE_TYPES
    dest.write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    return dest


async def hostile_gateway(tmp_path: Path, upstream_url: str, opa: OpaProcess) -> Gateway:
    """A gateway in front of `upstream_url` with `hostile_catalog`."""
    catalog = hostile_catalog(tmp_path / "hostile-catalog.yaml")
    return await records_gateway(
        tmp_path, upstream_url, opa, **{"classification.catalog": str(catalog)}
    )


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def text(self) -> str:
        return decode(self.raw, self.headers.get("Content-Type", ""))

    def error(self) -> str | None:
        try:
            body = orjson.loads(self.raw)
        except orjson.JSONDecodeError:
            return None
        return body.get("error") if isinstance(body, dict) else None


async def fetch(gw: Gateway, path: str, who: str = "cs", **extra: str) -> Reply:
    async with (
        aiohttp.ClientSession(auto_decompress=True) as s,
        s.get(gw.url + path, headers=headers(who, **extra)) as r,
    ):
        return Reply(r.status, dict(r.headers), await r.read())


def decode(raw: bytes, content_type: str) -> str:
    """The body as text, by its BOM, its declared charset or its XML declaration."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    charset = None
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"')
    if charset is None:
        head = _DECLARED.search(raw[:200].decode("ascii", "replace"))
        charset = head.group(1) if head else "utf-8"
    if charset.lower() in ("gbk", "gb2312"):
        charset = "gb18030"
    return raw.decode(charset, errors="replace").removeprefix("\ufeff")


def found(text: str, marks: list[str]) -> list[str]:
    """Which of `marks` (ids, names, ID numbers, card numbers) appear in clear."""
    return [m for m in marks if m and m in text]


def audit_errors(gw: Gateway) -> list[dict[str, Any]]:
    path = gw.settings.path(gw.settings.audit.file)
    if not path.exists():
        return []
    events = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [e["unmapped"]["crm"] for e in events if "crm" in e.get("unmapped", {})]


def check_reply(
    reply: Reply, expect: str, hidden: list[str], protected: list[str], visible_ids: list[str]
) -> None:
    """No hidden customer and no protected value in clear; the outcome the case expects."""
    text = reply.text
    assert found(text, hidden) == [], f"hidden customers reached the caller ({reply.status})"
    assert found(text, protected) == [], "L4 values of visible customers in clear"
    if expect == "shown":
        assert reply.status == 200, text[:400]
        assert found(text, visible_ids), "vacuous: no visible customer came back"
    elif expect == "undeclared":
        assert reply.status == 502, text[:400]
        assert reply.error() == "undeclared_response_type", text[:400]
    elif expect == "blocked":
        assert reply.status == 403, text[:400]
        assert reply.error() == "uncatalogued_route", text[:400]
    else:
        assert reply.status in (200, 403, 406, 502), text[:400]
