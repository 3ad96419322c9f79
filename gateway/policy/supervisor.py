"""Managed mode: the gateway runs its own `opa run --server --watch <rego_dir>`,
or, fed by a bundle server, `opa run --server --config-file <policy.opa_config_file>`.

OPA listens on a free loopback port chosen at start and kept across restarts,
so the client's URL never changes. `--watch` makes OPA reload policy and data
when files under the rego directory change, without a gateway restart.

If OPA dies, it is restarted with exponential backoff (0.2 s doubling to 5 s,
reset after a minute of healthy running); meanwhile the client fails closed and
its circuit breaker keeps that cheap. On shutdown OPA gets SIGTERM, then
SIGKILL after a grace period; only the process we started, by its PID.

The directory is loaded as a bundle (`--bundle`, as rego/README.md says): only
`*.rego`, `data.json`/`data.yaml` and `.manifest` are read, so the JSON Schemas
in `rego/schema/` are not mistaken for data.

With a configuration file, OPA loads signed bundles from the bundle server the
file names (and the last good one from its persistence directory); health is then
`GET /health?bundles`, so the gateway does not start, and a restarted OPA is not
used, before a verified bundle is active.

Health is a plain aiohttp `GET /health` (not opa-python-client: it needs
`async with`, retries, and swallows the status code).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from pathlib import Path

import aiohttp
import orjson

from gateway.errors import ConfigError
from gateway.settings.validate import find_opa_binary

__all__ = ["OpaSupervisor", "find_opa_binary", "free_port"]

log = logging.getLogger(__name__)

_BACKOFF_MIN = 0.2
_BACKOFF_MAX = 5.0
_STABLE_AFTER = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OpaSupervisor:
    def __init__(
        self,
        binary: str,
        rego_dir: Path,
        *,
        port: int | None = None,
        start_timeout: float = 15.0,
        config_file: Path | None = None,
    ) -> None:
        if config_file is not None and not config_file.is_file():
            raise ConfigError(f"policy.opa_config_file: {config_file} is not a file")
        if config_file is None and not rego_dir.is_dir():
            raise ConfigError(f"policy.rego_dir: {rego_dir} is not a directory")
        self.binary = binary
        self.rego_dir = rego_dir
        self.config_file = config_file
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_timeout = start_timeout
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._output: deque[str] = deque(maxlen=20)
        self._stopping = False
        self._monitor: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Start OPA and wait until /health answers; ConfigError if it cannot start."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=2), timeout=aiohttp.ClientTimeout(total=1.0)
        )
        try:
            await self._spawn()
        except BaseException:
            await self.stop()
            raise
        self._monitor = asyncio.create_task(self._keep_alive(), name="opa-supervisor")

    async def _spawn(self) -> None:
        self._output.clear()
        self._proc = await asyncio.create_subprocess_exec(
            self.binary, "run", "--server",
            "--addr", f"127.0.0.1:{self.port}",
            "--log-level", "error",
            "--skip-version-check",
            "--optimize-store-for-read-speed",
            *self._policy_source(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,  # load errors are printed on stdout
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._drain = asyncio.create_task(self._drain_output(self._proc), name="opa-output")
        source = self.config_file or self.rego_dir
        log.info("started OPA pid=%s on %s with %s", self._proc.pid, self.url, source)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                break
            if await self.healthy():
                return
            await asyncio.sleep(0.05)
        if self._proc.returncode is not None:
            # Let the reader collect what OPA said before it died (load errors).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._drain), timeout=1.0)
        detail = " | ".join(self._output) or "no output"
        if self.config_file is not None and self._proc.returncode is None:
            detail = f"no verified bundle active within {self.start_timeout:g} s; {detail}"
        raise ConfigError(f"OPA did not become healthy on {self.url}: {detail}")

    def _policy_source(self) -> list[str]:
        if self.config_file is not None:
            return ["--config-file", str(self.config_file)]
        return ["--watch", "--bundle", str(self.rego_dir)]

    async def _drain_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None  # created with stdout=PIPE
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()[:500]
            if line:
                self._output.append(line)
                log.log(_opa_log_level(line), "opa: %s", line)

    async def healthy(self) -> bool:
        """GET /health answered 200."""
        if self._session is None:
            return False
        try:
            query = "?bundles" if self.config_file is not None else ""
            async with self._session.get(f"{self.url}/health{query}") as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def _is_stopping(self) -> bool:
        # A method, not the attribute: the flag changes while we await.
        return self._stopping

    async def _keep_alive(self) -> None:
        backoff = _BACKOFF_MIN
        while not self._stopping:
            proc = self._proc
            assert proc is not None  # set by start() before this task exists
            started = time.monotonic()
            code = await proc.wait()
            if self._is_stopping():
                return
            if time.monotonic() - started > _STABLE_AFTER:
                backoff = _BACKOFF_MIN
            log.error("OPA pid=%s exited with %s; restarting in %.1fs", proc.pid, code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)
            if self._is_stopping():
                return
            self.restarts += 1
            try:
                await self._spawn()
            except ConfigError as exc:
                log.warning("OPA restart failed: %s", exc.message)
                await self._terminate()

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        await self._terminate()
        if self._drain is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain, timeout=1.0)
            self._drain = None
        if self._session is not None:
            await self._session.close()
            self._session = None


def _opa_log_level(line: str) -> int:
    """OPA logs JSON lines with a level; anything else (load errors) is a warning."""
    try:
        level = orjson.loads(line).get("level")
    except (orjson.JSONDecodeError, AttributeError):
        return logging.WARNING
    return {"error": logging.ERROR, "warning": logging.INFO, "info": logging.DEBUG}.get(
        str(level), logging.DEBUG
    )
