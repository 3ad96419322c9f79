"""`audit verify` entry point: summary/JSON output and exit codes."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from gateway.audit.chain import ChainWriter
from gateway.audit.commands import verify_command
from gateway.audit.keys import load_seal_key
from gateway.audit.seal import SealedChain
from gateway.settings import Settings

KEY_HEX = "12" * 32


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CRM_GATEWAY_AUDIT_KEY", KEY_HEX)
    return Settings().with_overrides(base_dir=str(tmp_path))


def _archive(settings: Settings, path: Path, n: int = 5) -> list[bytes]:
    chain = SealedChain(ChainWriter(bytes.fromhex(KEY_HEX), "h:1:c"), load_seal_key(settings))
    lines = [chain.append({"time": i, "message": f"m{i}"}) for i in range(n)]
    lines.append(chain.seal(closing=True))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def test_clean_file_exits_zero(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _archive(settings, path)
    out = io.StringIO()
    assert verify_command(settings, path, require_closed=True, out=out) == 0
    assert out.getvalue().startswith("OK (exit 0)")


def test_tampered_file_exits_ten_with_json(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    lines = _archive(settings, path)
    event = orjson.loads(lines[2])
    event["message"] = "changed"
    lines[2] = orjson.dumps(event)
    path.write_bytes(b"\n".join(lines) + b"\n")
    out = io.StringIO()
    assert verify_command(settings, path, as_json=True, out=out) == 10
    report = orjson.loads(out.getvalue())
    assert report["chains"][0]["mac_bad"] == [3]


def test_missing_file_is_an_io_error(settings: Settings, tmp_path: Path) -> None:
    assert verify_command(settings, tmp_path / "nope.jsonl", out=io.StringIO()) == 2


def test_stream_without_redis_is_a_usage_error(settings: Settings) -> None:
    assert verify_command(settings, None, out=io.StringIO()) == 2
