"""`crm-gateway explain --request / --error / --request-id` (static policy, no servers)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from gateway.cli import main
from gateway.errors import UnsupportedMediaType
from gateway.policy import request_explain
from gateway.policy.request_explain import REQUEST_CHECKS, RequestContext, parse_request, register
from gateway.settings import REPO_ROOT


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    settings = {
        "policy": {"engine": "static"},
        "identity": {"directory": str(REPO_ROOT / "config" / "directory.yaml")},
        "classification": {
            "taxonomy": str(REPO_ROOT / "config" / "taxonomy.yaml"),
            "catalog": str(REPO_ROOT / "config" / "crm" / "demo.yaml"),
        },
        "audit": {"sinks": ["file"], "file": str(tmp_path / "audit.jsonl")},
        "routes": [{"path": "/api/health", "public": True, "sensitive": False}],
    }
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def explain(config: Path, *args: str) -> list[str]:
    return ["explain", "--config", str(config), "--user", "u-cs", *args]


def test_a_refused_filter_names_check_code_and_reason(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(explain(config, "--request", "GET /api/customers?ordering=bank_card")) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert [ln.split()[1] for ln in lines if ln.startswith("  ok")] == [
        "path", "route", "catalog", "decision", "obligations",
    ]  # fmt: skip
    assert any(ln.startswith("  REFUSED filters") for ln in lines)
    assert "verdict    REFUSED 403 protected_field_filter" in out
    assert "sort by bank_card (parameter 'ordering')" in out
    assert "What to do:" in out  # the code's doc line


def test_an_allowed_request_and_a_public_one(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(explain(config, "--request", "/api/customers?page=2",
                        "--header", "X-Purpose: service")) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "verdict    ALLOWED" in out and "no filter, sort or search" in out
    assert main(explain(config, "--request", "GET /api/health")) == 0
    assert "public route: no decision" in capsys.readouterr().out


def test_path_refusals_come_first(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(explain(config, "--request", "GET /api/customers/%252e?mobile=1")) == 1
    out = capsys.readouterr().out
    assert "REFUSED path" in out and "400 bad_path" in out and "filters" not in out
    assert main(explain(config, "--request", "GET /_gateway/grants")) == 1
    assert "404 not_found" in capsys.readouterr().out


def test_bad_arguments(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(explain(config, "--request", "GET nowhere")) == 2
    assert main(explain(config, "--request", "/x", "--header", "no colon")) == 2
    assert main(["explain", "--config", str(config), "--request", "/x"]) == 2
    capsys.readouterr()


def test_error_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--error", "protected_field_filter"]) == 0
    assert capsys.readouterr().out.startswith("403 protected_field_filter: ")
    assert main(["explain", "--error", "no_such_code"]) == 1
    capsys.readouterr()


def test_request_id_finds_the_audit_event(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = {
        "http_request": {"uid": "abc123", "http_method": "GET", "url": {"path": "/api/x"}},
        "actor": {"user": {"uid": "u-cs"}},
        "time_dt": "2026-12-03T08:00:00Z",
        "unmapped": {"crm": {"status": 403, "decision": {
            "outcome": "deny", "reason": "allowed; protected_field_filter"}}},
    }  # fmt: skip
    (tmp_path / "audit.jsonl").write_bytes(orjson.dumps({"other": 1}) + b"\n" + orjson.dumps(event))
    assert main(["explain", "--config", str(config), "--request-id", "abc123"]) == 0
    out = capsys.readouterr().out
    assert "status     403" in out and "403 protected_field_filter: " in out
    assert main(["explain", "--config", str(config), "--request-id", "nope"]) == 1
    (tmp_path / "audit.jsonl").unlink()
    assert main(["explain", "--config", str(config), "--request-id", "abc123"]) == 2
    capsys.readouterr()


async def test_a_check_plugs_in_with_one_register_call(config: Path) -> None:
    """How another helper adds its check: one function, one `register`."""
    before = list(REQUEST_CHECKS)

    async def media_type(ctx: RequestContext) -> str | None:
        if ctx.method == "POST" and ctx.header("content-type") == "text/plain":
            raise UnsupportedMediaType("text/plain bodies cannot be inspected")
        return ctx.header("content-type") or "-"

    try:
        register("media type", after="catalog route")(media_type)
        names = [c.name for c in REQUEST_CHECKS]
        assert names.index("media type") == names.index("catalog route") + 1
        from gateway.cli import _load
        from gateway.core.model import Subject

        text = await request_explain.explain_request(
            _load(str(config)), Subject(id="u", roles=("customer_service",), clearance="L2"),
            "POST /api/customers", ["Content-Type: text/plain"],
        )  # fmt: skip
        assert "REFUSED media type" in text and "415 unsupported_media_type" in text
    finally:
        REQUEST_CHECKS[:] = before


def test_parse_request() -> None:
    assert parse_request("/a?b=1") == ("GET", "/a?b=1", {})
    assert parse_request("patch /a", ["X-A: 1 : 2"]) == ("PATCH", "/a", {"x-a": "1 : 2"})
