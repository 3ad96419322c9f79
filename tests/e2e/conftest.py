"""End-to-end fixtures: a real BottleCRM (PyPI django-crm 1.35.0) behind gunicorn.

The `bottlecrm` session fixture builds (or reuses) BottleCRM's Python 3.12
virtualenv with scripts/bottlecrm-venv.sh, migrates and seeds a fresh SQLite
database in a temporary directory (tests/e2e/bottlecrm/seed.py), starts gunicorn
on a free loopback port and waits for /healthz/. It skips only when no Python
3.12 interpreter exists (the script exits 2); any other failure is an error.

A cold start (new venv + migrations) takes a few minutes; run
scripts/bottlecrm-venv.sh before pytest in CI so the tests' own time stays short.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
BOTTLECRM_DIR = ROOT / "tests" / "e2e" / "bottlecrm"
VENV_SCRIPT = ROOT / "scripts" / "bottlecrm-venv.sh"
NO_PYTHON_312 = 2  # exit status of bottlecrm-venv.sh when no interpreter is found


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class BottleCRM:
    """A running BottleCRM: where it listens, who can call it, and what it holds."""

    base_url: str
    tokens: dict[str, str]
    seeded: dict[str, Any]
    data_dir: Path
    log_path: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def org_id(self) -> str:
        return str(self.seeded["org"]["id"])

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> HttpReply:
        """Call BottleCRM directly (not via the gateway); HTTP errors are returned, not raised."""
        send = dict(headers or {})
        data = None
        if token is not None:
            send["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = json.dumps(body).encode()
            send["Content-Type"] = "application/json"
        req = urllib.request.Request(  # noqa: S310 - base_url is our own http://127.0.0.1 server
            self.base_url + path, data=data, method=method, headers=send
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback http
                return HttpReply(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return HttpReply(exc.code, dict(exc.headers.items()), exc.read())


def _prepare_venv() -> Path:
    """Run the venv script; return the venv's python. Skip only without Python 3.12."""
    done = subprocess.run(
        ["bash", str(VENV_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode == NO_PYTHON_312:
        pytest.skip(f"BottleCRM needs Python 3.12: {done.stderr.strip()}")
    if done.returncode != 0:
        raise RuntimeError(f"{VENV_SCRIPT} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _bottlecrm_env(data_dir: Path, venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHON"))}
    env.update(
        DJANGO_SETTINGS_MODULE="settings_sqlite",
        PYTHONPATH=str(BOTTLECRM_DIR),
        BOTTLECRM_DATA_DIR=str(data_dir),
        BOTTLECRM_TEMPLATE_DB=str(venv / "migrated.sqlite3"),
        ENV_TYPE="dev",
        PATH=f"{venv / 'bin'}:{env.get('PATH', '')}",
    )
    return env


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback http
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not healthy after {timeout}s")


@pytest.fixture(scope="session")
def bottlecrm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BottleCRM]:
    """A seeded BottleCRM on 127.0.0.1 for the whole session, stopped by PID afterwards."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    python = _prepare_venv()
    venv = python.parent.parent
    timings["venv"] = time.monotonic() - started

    data_dir = tmp_path_factory.mktemp("bottlecrm")
    env = _bottlecrm_env(data_dir, venv)
    started = time.monotonic()
    seeding = subprocess.run(
        [str(python), str(BOTTLECRM_DIR / "seed.py")],
        cwd=data_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    (data_dir / "seed.log").write_text(seeding.stderr, encoding="utf-8")
    if seeding.returncode != 0:
        raise RuntimeError(f"seeding BottleCRM failed:\n{seeding.stderr[-4000:]}")
    seeded = json.loads(seeding.stdout)
    timings["seed"] = time.monotonic() - started

    port = free_port()
    log_path = data_dir / "gunicorn.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(venv / "bin" / "gunicorn"),
                "crm.wsgi:application",
                "--bind", f"127.0.0.1:{port}",
                "--workers", "1",
                "--threads", "8",
                "--graceful-timeout", "5",
                "--no-control-socket",
                "--access-logfile", "-",
                "--error-logfile", "-",
            ],
            cwd=data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_healthy(f"{base_url}/healthz/", proc, timeout=60)
        timings["start"] = time.monotonic() - started
        yield BottleCRM(
            base_url=base_url,
            tokens=dict(seeded["tokens"]),
            seeded=seeded,
            data_dir=data_dir,
            log_path=log_path,
            timings=timings,
        )
    finally:
        stop_process(proc)
