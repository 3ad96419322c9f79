"""Running the app: one process, or N worker processes sharing the port (SO_REUSEPORT).

With several workers and a managed OPA, the parent supervises the one OPA and
the workers talk to it as an external engine, so N workers do not start N OPAs.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.core.detectors import native
from gateway.errors import (
    ClientError,
    ConfigError,
    GatewayError,
    HeaderTooLarge,
    MethodNotAllowed,
    ServerError,
    StartupError,
    UriTooLong,
)
from gateway.settings import Settings
from gateway.tls import ReloadingServerTls, TlsWatcher

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as EventType


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency on Linux
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


log = logging.getLogger(__name__)


class _GatewayRequestHandler(RequestHandler):
    """aiohttp's connection handler with the gateway's answers to requests the HTTP
    parser refused (and to anything that escaped the app): typed JSON errors with a
    request id, audited, `Server: crm-gateway`; 414 for an oversized request target,
    431 for an oversized header field or too many fields, 400 for the rest."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already under way; the connection is dropped")
        manager = self._manager
        assert isinstance(manager, _GatewayServer)  # set up only by _GatewayRunner
        error = manager.translate(status, exc)
        rid = uuid.uuid4().hex
        if isinstance(error, ClientError):
            # One line, without the parser's echo of the request line (it can carry
            # a customer's name or number in the query string).
            log.warning("refused a malformed request (%s): %s", error.code, error.message)
        else:
            log.error("unexpected error outside the app (request %s)", rid, exc_info=exc)
        manager.audit(rid, request, error)
        resp = web.Response(
            status=error.status,
            body=orjson.dumps(error.to_body(rid)),
            content_type="application/json",
            headers={"X-Request-Id": rid, "Cache-Control": "no-store", "Server": manager.name},
        )
        if isinstance(error, MethodNotAllowed):
            from gateway.handler import ALLOWED_METHODS

            resp.headers["Allow"] = ALLOWED_METHODS
        resp.force_close()
        return resp


class _GatewayServer(web.Server):
    def __init__(self, *args: Any, app: web.Application, settings: Settings, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._app = app
        self.name = settings.listen.via_name
        self.uri_limit = settings.listen.max_line_size

    def __call__(self) -> RequestHandler:
        return _GatewayRequestHandler(self, loop=self._loop, **self._kwargs)

    def translate(self, status: int, exc: BaseException | None) -> GatewayError:
        if isinstance(exc, LineTooLong):
            if len(exc.args) > 1 and exc.args[1] == self.uri_limit:
                return UriTooLong(f"the request target is longer than {self.uri_limit} bytes")
            return HeaderTooLarge("a request header field is too large")
        if isinstance(exc, BadHttpMethod):  # TRACK, lower-case "trace", garbage
            return MethodNotAllowed("the request method is not allowed through the gateway")
        if isinstance(exc, BadHttpMessage) and "too many headers" in exc.message.lower():
            return HeaderTooLarge("the request has too many header fields")
        if isinstance(exc, BadHttpMessage) and "invalid char in url" in exc.message.lower():
            return ClientError(
                "the request target has characters that must be percent-encoded "
                "(RFC 3986), e.g. ?q=%E5%BE%90 for ?q=徐"
            )
        if status < 500:
            return ClientError("malformed HTTP request")
        return ServerError("the gateway hit an unexpected error; the request was not completed")

    def audit(self, rid: str, request: BaseRequest, error: GatewayError) -> None:
        from gateway.core.record import Access
        from gateway.stages import STAGES

        stages = self._app.get(STAGES)
        if stages is None:
            return
        access = Access(request_id=rid, started=time.perf_counter(), method=request.method)
        access.status, access.error = error.status, f"{error.code}: {error.message}"
        stages.record(access)


class _GatewayRunner(web.AppRunner):
    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._settings = settings
        self.tls_watcher: TlsWatcher | None = None

    async def cleanup(self) -> None:
        if self.tls_watcher is not None:
            await self.tls_watcher.stop()
        await super().cleanup()

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return _GatewayServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            app=self.app,
            settings=self._settings,
            **plain._kwargs,
        )


async def start_site(
    app: web.Application, settings: Settings, *, reuse_port: bool = False
) -> web.AppRunner:
    from gateway.audit.oplog import configure_logging

    configure_logging(settings.logging.level, settings.logging.format)
    listen = settings.listen
    # The parser reports both limits as LineTooLong; distinct values tell 414 from 431.
    field_limit = listen.max_field_size + (listen.max_field_size == listen.max_line_size)
    runner = _GatewayRunner(
        app,
        settings,
        handler_cancellation=True,  # a client that disconnects cancels the CRM call
        keepalive_timeout=listen.header_timeout,  # also the header-read deadline
        max_line_size=listen.max_line_size,
        max_field_size=field_limit,
        max_headers=listen.max_headers,
        auto_decompress=False,  # bodies pass through as sent; no decoded bytes labelled gzip
        access_log=None,
    )
    tls = ReloadingServerTls(listen.tls, settings.path) if listen.tls.enabled else None
    await runner.setup()
    site = web.TCPSite(
        runner,
        settings.listen.host,
        settings.listen.port,
        reuse_port=reuse_port or None,
        ssl_context=tls.context if tls else None,
    )
    try:
        await site.start()
    except OSError as exc:  # the port is taken, or the address is not this host's
        await runner.cleanup()
        where = f"{settings.listen.host}:{settings.listen.port}"
        raise StartupError(f"cannot listen on {where} (listen): {exc.strerror or exc}") from exc
    if tls is not None:
        runner.tls_watcher = TlsWatcher(tls)
        runner.tls_watcher.start()
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
    """Block serving until SIGINT/SIGTERM. Returns the process exit code.

    Refuses to start (ConfigError listing every problem) on what `check-config`
    reports: the same `startup_problems`, so the two never disagree."""
    from gateway.checks import startup_problems

    problems = startup_problems(settings)
    if problems:
        raise ConfigError(f"{len(problems)} configuration error(s)", problems)
    compiled, why = native.status()
    if not compiled:
        announce(f"warning: the compiled detectors are not in use ({why}); the Python ones run")
    workers = settings.listen.workers
    scheme = "https" if settings.listen.tls.enabled else "http"
    url = f"{scheme}://{settings.listen.host}:{settings.listen.port}"
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
