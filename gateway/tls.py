"""TLS contexts from settings: the listener's (reloaded when its files change) and the
clients' (CRM, OPA), built in one place so every hop gets the same defaults.

The listener's certificate, key and client CA are re-read when their modification
times change, without a restart: a new context is built and swapped in for new
handshakes through the SNI hook (called for every ClientHello, with or without a
server name), so connections already open keep theirs. A file that does not load
(say the certificate written before its key) keeps the previous context and is
retried at the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable
from pathlib import Path

from gateway.errors import ConfigError
from gateway.settings import ClientTlsSettings, ListenTlsSettings

log = logging.getLogger(__name__)

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
Resolve = Callable[[Path], Path]


def server_context(tls: ListenTlsSettings, resolve: Resolve) -> ssl.SSLContext:
    """A server context for `listen.tls` (ConfigError naming the key on a bad file)."""
    if tls.cert is None or tls.key is None:
        raise ConfigError("listen.tls: cert and key are required to terminate TLS")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    _load_chain(ctx, "listen.tls", resolve(tls.cert), resolve(tls.key))
    ctx.verify_mode = _CLIENT_AUTH[tls.client_auth]
    if tls.client_ca is not None:
        _load_ca(ctx, "listen.tls.client_ca", resolve(tls.client_ca))
    return ctx


def client_context(tls: ClientTlsSettings, resolve: Resolve, key: str) -> ssl.SSLContext:
    """A verifying client context: the configured CA (else the system's), and the
    gateway's client certificate when one is set."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if tls.ca is not None:
        _load_ca(ctx, f"{key}.ca", resolve(tls.ca))
    if tls.cert is not None and tls.key is not None:
        _load_chain(ctx, key, resolve(tls.cert), resolve(tls.key))
    return ctx


def _load_chain(ctx: ssl.SSLContext, key: str, cert: Path, private: Path) -> None:
    try:
        ctx.load_cert_chain(cert, private)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{key}: cannot load certificate {cert} with key {private}: {exc}"
        ) from exc


def _load_ca(ctx: ssl.SSLContext, key: str, ca: Path) -> None:
    try:
        ctx.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{key}: cannot load CA bundle {ca}: {exc}") from exc


class ReloadingServerTls:
    """The listener's context; `check()` swaps in a new one when a file changed."""

    def __init__(self, tls: ListenTlsSettings, resolve: Resolve) -> None:
        self._tls = tls
        self._resolve = resolve
        self._files = [resolve(p) for p in (tls.cert, tls.key, tls.client_ca) if p is not None]
        self._stamp = self._stamps()
        self.current = server_context(tls, resolve)
        self.reloads = 0
        # The context the socket listens with; it hands each handshake the current one.
        self.context = self.current
        self.context.sni_callback = self._pick

    def _pick(self, sslobj: ssl.SSLObject, _name: str | None, ctx: ssl.SSLContext) -> None:
        if self.current is not ctx:
            sslobj.context = self.current

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        out = []
        for path in self._files:
            try:
                st = os.stat(path)
            except OSError:
                out.append((0, 0))
            else:
                out.append((st.st_mtime_ns, st.st_size))
        return tuple(out)

    def check(self) -> bool:
        """Reload if any file changed; True when a new context is in use."""
        stamp = self._stamps()
        if stamp == self._stamp:
            return False
        try:
            fresh = server_context(self._tls, self._resolve)
        except ConfigError as exc:
            log.warning("listen.tls not reloaded (kept the previous certificate): %s", exc.message)
            return False
        self._stamp = stamp
        fresh.sni_callback = self._pick
        self.current = fresh
        self.reloads += 1
        log.info("listen.tls reloaded: %s", ", ".join(map(str, self._files)))
        return True

    async def watch(self) -> None:
        interval = self._tls.reload_interval
        if not interval:
            return
        while True:
            await asyncio.sleep(interval)
            self.check()


class TlsWatcher:
    """Runs `ReloadingServerTls.watch` for the life of a site."""

    def __init__(self, tls: ReloadingServerTls) -> None:
        self.tls = tls
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.tls.watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
