"""Start a real gateway (aiohttp server on a free loopback port) for integration tests.

The gateway runs in the test's event loop with the static policy engine unless
a test asks for OPA; the directory is written to a temp dir with hashed keys.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from gateway.app import create_app
from gateway.identity.apikeys import hash_key
from gateway.server import start_site
from gateway.settings import REPO_ROOT, Settings, load_settings
from tests.conftest import free_port

# id, clearance, roles, department, partner, key
USERS: list[dict[str, Any]] = [
    {
        "id": "u-sales-01",
        "clearance": "L2",
        "roles": ["sales"],
        "department": "retail",
        "key": "test-sales-key",
    },
    {
        "id": "u-admin",
        "clearance": "L4",
        "roles": ["security_admin"],
        "department": "security",
        "mfa": True,
        "key": "test-admin-key",
    },
    {
        "id": "u-partner-01",
        "clearance": "L1",
        "roles": ["partner"],
        "department": "partner",
        "partner": True,
        "partner_expires": "2099-01-01",
        "allowed_networks": ["127.0.0.0/8"],
        "key": "test-partner-key",
    },
    {
        "id": "u-departed",
        "clearance": "L3",
        "roles": ["sales"],
        "department": "retail",
        "disabled": True,
        "key": "test-departed-key",
    },
]


def write_directory(path: Path) -> Path:
    return write_key_directory(
        path,
        [({k: v for k, v in u.items() if k != "key"}, f"k-{u['id']}", u["key"]) for u in USERS],
    )


def write_key_directory(path: Path, subjects: list[tuple[dict[str, Any], str, str]]) -> Path:
    """A directory file of (subject entry, API key id, clear key): the key stored hashed."""
    entries = [
        {**entry, "api_keys": [{"id": key_id, "hash": hash_key(key, None)}]}
        for entry, key_id, key in subjects
    ]
    path.write_text(yaml.safe_dump({"subjects": entries}, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Gateway:
    runner: web.AppRunner
    settings: Settings
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def max_request_body(self) -> int:
        return self.settings.limits.max_request_body

    async def stop(self) -> None:
        await self.runner.cleanup()


def gateway_settings(tmp_path: Path, upstream_url: str, **overrides: Any) -> Settings:
    directory = write_directory(tmp_path / "directory.yaml")
    base = load_settings(None, environ={})
    values: dict[str, Any] = {
        "base_dir": str(REPO_ROOT),
        "upstream.url": upstream_url,
        "listen.port": free_port(),
        "identity.directory": str(directory),
        # The harness directories mark MFA users with `mfa: true` on API-key callers.
        "identity.directory_mfa": True,
        "policy.engine": "static",
        "limits.max_request_body": 1_000_000,
        "audit.sinks": ["file"],
        "audit.file": str(tmp_path / "audit.jsonl"),
        "audit.spool_dir": str(tmp_path / "spool"),
        "audit.registry_dir": str(tmp_path / "writers"),
        "routes": [
            {"path": "/plain/*", "sensitive": False},
            {"path": "/ws/*", "sensitive": False, "websocket": True},
            {"path": "/public/*", "sensitive": False, "public": True},
        ],
    }
    values.update(overrides)
    return base.with_overrides(**values)


async def start_gateway(tmp_path: Path, upstream_url: str, **overrides: Any) -> Gateway:
    settings = gateway_settings(tmp_path, upstream_url, **overrides)
    runner = await start_site(create_app(settings), settings)
    return Gateway(runner, settings, settings.listen.port)


async def raw_request(
    port: int, data: bytes, timeout: float = 10.0
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send bytes, read until the server closes; parse status, headers (lower-case) and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [
        (k.strip().lower(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:])
    ]
    if any(k == "transfer-encoding" and "chunked" in v for k, v in headers):
        body = _dechunk(body)
    return status, headers, body


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out
