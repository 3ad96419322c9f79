"""Every CLI mistake is one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import REPO_ROOT

CRM = str(REPO_ROOT / "config" / "crm" / "demo.yaml")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        timeout=60,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.json"
    path.write_text('{"results": [{"mobile": "13800138000"}]}', encoding="utf-8")
    return path


def _assert_one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("explain:", "error:"))]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_explain_unknown_level(tmp_path: Path, sample: Path) -> None:
    proc = _run("explain", "--crm", CRM, "--sample", str(sample), "--level", "L9", cwd=tmp_path)
    _assert_one_line(proc, "unknown level 'L9'", "--level")
    assert proc.returncode == 2


def test_explain_missing_sample(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    proc = _run("explain", "--crm", CRM, "--sample", str(missing), cwd=tmp_path)
    _assert_one_line(proc, str(missing), "no such file")


def test_explain_invalid_sample(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("not json {", encoding="utf-8")
    proc = _run("explain", "--crm", CRM, "--sample", str(bad), cwd=tmp_path)
    _assert_one_line(proc, str(bad), "not a JSON document")


def test_explain_missing_catalog(tmp_path: Path, sample: Path) -> None:
    missing = tmp_path / "nope.yaml"
    proc = _run("explain", "--crm", str(missing), "--sample", str(sample), cwd=tmp_path)
    _assert_one_line(proc, str(missing), "no such file")


def test_explain_catalog_that_is_not_yaml(tmp_path: Path, sample: Path) -> None:
    wrong = tmp_path / "README.md"
    wrong.write_text("# title\n\n```\ncode\n```\n", encoding="utf-8")
    proc = _run("explain", "--crm", str(wrong), "--sample", str(sample), cwd=tmp_path)
    _assert_one_line(proc, str(wrong), "not a YAML field catalog")


def test_explain_catalog_of_the_wrong_shape(tmp_path: Path, sample: Path) -> None:
    wrong = tmp_path / "taxonomy.yaml"
    wrong.write_text("fields: 3\n", encoding="utf-8")
    proc = _run("explain", "--crm", str(wrong), "--sample", str(sample), cwd=tmp_path)
    _assert_one_line(proc, str(wrong), "invalid catalog", "fields: must be a list")


@pytest.mark.parametrize(
    "command", [("grants", "list"), ("users", "list-revoked")], ids=lambda c: " ".join(c)
)
def test_store_commands_with_redis_unreachable(tmp_path: Path, command: tuple[str, ...]) -> None:
    port = _closed_port()
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"redis:\n  url: redis://127.0.0.1:{port}/0\n", encoding="utf-8")
    proc = _run(*command, "--config", str(cfg), cwd=tmp_path)
    line = _assert_one_line(proc, "unreachable", f"127.0.0.1:{port}")
    assert line.startswith("error: the shared store (redis.url)")
    assert proc.returncode == 1


def test_version(tmp_path: Path) -> None:
    proc = _run("--version", cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert proc.stdout.startswith("crm-gateway ")


def test_every_option_has_help() -> None:
    import argparse

    from gateway.cli import build_parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(child, f"{name} {sub}")
            elif action.help is None:
                missing.append(f"{name} {action.option_strings or action.dest}")

    walk(build_parser(), "crm-gateway")
    assert missing == []
