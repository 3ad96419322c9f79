"""Running the app: one process, or N worker processes sharing the port (SO_REUSEPORT).

With several workers and a managed OPA, the parent supervises the one OPA and
the workers talk to it as an external engine, so N workers do not start N OPAs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.errors import ConfigError, StartupError
from gateway.settings import Settings

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as EventType


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency on Linux
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def start_site(
    app: web.Application, settings: Settings, *, reuse_port: bool = False
) -> web.AppRunner:
    from gateway.audit.oplog import configure_logging

    configure_logging(settings.logging.level, settings.logging.format)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,  # a client that disconnects cancels the CRM call
        keepalive_timeout=settings.listen.header_timeout,  # also the header-read deadline
        max_line_size=settings.listen.max_line_size,
        max_field_size=settings.listen.max_field_size,
        auto_decompress=False,  # bodies pass through as sent; no decoded bytes labelled gzip
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(
        runner, settings.listen.host, settings.listen.port, reuse_port=reuse_port or None
    )
    await site.start()
    return runner


async def _serve_forever(
    settings: Settings, reuse_port: bool, on_ready: Callable[[], None]
) -> None:
    from gateway.app import create_app

    runner = await start_site(create_app(settings), settings, reuse_port=reuse_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    on_ready()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _worker(settings_json: str, reuse_port: bool, ready: EventType) -> None:
    settings = Settings.model_validate_json(settings_json)
    _install_uvloop()
    try:
        asyncio.run(_serve_forever(settings, reuse_port, ready.set))
    except (ConfigError, StartupError) as exc:
        print(f"error: {exc.message}", file=sys.stderr)  # the parent reports the failed start
        sys.exit(1)


def serve(settings: Settings, *, announce: Callable[[str], None] = print) -> int:
    """Block serving until SIGINT/SIGTERM. Returns the process exit code."""
    workers = settings.listen.workers
    url = f"http://{settings.listen.host}:{settings.listen.port}"
    if workers == 1:
        _install_uvloop()
        asyncio.run(
            _serve_forever(settings, False, lambda: announce(f"crm-gateway listening on {url}"))
        )
        return 0
    return _serve_workers(settings, workers, url, announce)


def _serve_workers(
    settings: Settings, workers: int, url: str, announce: Callable[[str], None]
) -> int:
    return asyncio.run(_supervise_workers(settings, workers, url, announce))


async def _supervise_workers(
    settings: Settings, workers: int, url: str, announce: Callable[[str], None]
) -> int:
    """Parent process: one managed OPA (if any), N workers, stop all on a signal."""
    from gateway.policy.supervisor import OpaSupervisor, find_opa_binary

    supervisor: OpaSupervisor | None = None
    worker_settings = settings
    if settings.policy.engine == "managed":
        supervisor = OpaSupervisor(
            find_opa_binary(settings), settings.path(settings.policy.rego_dir)
        )
        await supervisor.start()
        worker_settings = settings.with_overrides(
            **{
                "policy.engine": "external",
                "policy.url": supervisor.url,
                "policy.track_rego_dir": True,  # edits without a revision bump still purge caches
            }
        )
    ctx = multiprocessing.get_context("spawn")
    payload = worker_settings.model_dump_json()
    readiness = [ctx.Event() for _ in range(workers)]
    procs = [ctx.Process(target=_worker, args=(payload, True, ev)) for ev in readiness]
    for p in procs:
        p.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not all(ev.is_set() for ev in readiness):
            if stop.is_set() or not all(p.is_alive() for p in procs):
                raise ConfigError("a worker failed to start (see its error above)")
            await asyncio.sleep(0.05)
        announce(f"crm-gateway listening on {url} with {workers} workers")
        while not stop.is_set() and all(p.is_alive() for p in procs):
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                continue
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            await loop.run_in_executor(None, p.join, 15)
        if supervisor is not None:
            await supervisor.stop()
    crashed = [p.exitcode for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
    return 1 if crashed and not stop.is_set() else 0


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` with SIGINT/SIGTERM setting `stop` (used by `crm-gateway demo`)."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    _install_uvloop()
    try:
        asyncio.run(runner())
    except KeyboardInterrupt:  # pragma: no cover - signal handler normally wins
        sys.exit(130)
