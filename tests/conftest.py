"""Shared fixtures: real redis-server and OPA processes on free loopback ports.

Nothing here is mocked. Each fixture starts its process, waits until it answers,
and stops it by PID afterwards. Missing binaries fail loudly: `make test`
installs them, so a missing one is a broken setup, not a reason to skip.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

# Development keys (audit HMAC, seal) left unset are generated in the user's state
# directory: for the tests, one of this run's own (inherited by the gateways they
# start), never the home directory's.
_STATE_HOME = tempfile.mkdtemp(prefix="crm-gateway-state-")
os.environ["XDG_STATE_HOME"] = _STATE_HOME
atexit.register(shutil.rmtree, _STATE_HOME, ignore_errors=True)

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# a long hunt for rare counter-examples before a release: HYPOTHESIS_PROFILE=stress
settings.register_profile(
    "stress", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def start_serve(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`crm-gateway serve --config CONFIG --listen 127.0.0.1:PORT` as its own process,
    its output in `log` (stop it with stop_process)."""
    cli = str(Path(sys.executable).parent / "crm-gateway")
    with log.open("wb") as out:
        return subprocess.Popen(
            [cli, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def find_opa() -> str:
    local = ROOT / ".tools" / "bin" / "opa"
    if local.exists():
        return str(local)
    found = shutil.which("opa")
    if found:
        return found
    raise RuntimeError("opa not found: run `make tools` (builds OPA v1.22.3 into .tools/bin)")


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("redis-server not found: run `make deps` (apt-get install redis-server)")
    return found


CHROMIUM = "/usr/bin/chromium"
# The system browser, never a tool's own download (none can be fetched here).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def find_chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError("chromium not found: run `make deps` (apt-get install chromium)")
    return CHROMIUM


class RedisProcess:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                find_redis_server(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._tmp),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A real redis-server for the whole session (flush between tests yourself)."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """A clean database on the session's redis-server."""
    import redis as redis_sync

    client = redis_sync.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


class OpaProcess:
    def __init__(self, bundle_dirs: list[Path]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bundle_dirs = bundle_dirs
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                find_opa(),
                "run",
                "--server",
                "--addr",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "error",
                "--optimize-store-for-read-speed",
                "--watch",
                *[arg for d in self.bundle_dirs for arg in ("--bundle", str(d))],
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@pytest.fixture(scope="session")
def opa_server() -> Iterator[OpaProcess]:
    """A real OPA server loaded with the repository's rego/ directory."""
    server = OpaProcess([ROOT / "rego"])
    server.start()
    yield server
    server.stop()
