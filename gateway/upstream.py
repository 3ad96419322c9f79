"""The only module that talks to the CRM: one pooled client session, timeouts,
streaming bodies both ways, and error translation at the boundary.

Bodies are never decoded here (`auto_decompress=False`): what the CRM sent is
what `handler.py` sees, so a compressed body is either passed through with its
Content-Encoding or decoded by the masker's codec, never both.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable
from gateway.settings import UpstreamSettings
from gateway.tls import Resolve, client_context

# Headers aiohttp would otherwise invent (`Accept: */*`, `Accept-Encoding: gzip,
# deflate`, its User-Agent, `Content-Type: application/octet-stream`): the CRM sees
# the client's own (filtered) headers and what the gateway sets on purpose, nothing
# else. Host and the body framing (Content-Length / Transfer-Encoding) stay automatic.
_SKIP_AUTO = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})
READ_CHUNK = 64 * 1024


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    _resp: aiohttp.ClientResponse

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; a cut-off body raises UpstreamUnavailable."""
        try:
            async for chunk in self._resp.content.iter_chunked(READ_CHUNK):
                yield chunk
        except TimeoutError as exc:
            raise UpstreamTimeout("the CRM stopped sending the response body") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable("the CRM response body was cut off") from exc

    def release(self) -> None:
        self._resp.release()

    def abort(self) -> None:
        """Drop the connection (the body was not read to the end)."""
        self._resp.close()


def crm_tls(settings: UpstreamSettings, resolve: Resolve = Path) -> ssl.SSLContext | bool:
    """The TLS setting of the CRM session: `upstream.tls` (CA, client certificate for
    mTLS) as a verifying context; without it, system trust (`verify_tls: false`: none)."""
    t = settings.tls
    if t.ca is None and t.cert is None:
        return settings.verify_tls
    return client_context(t, resolve, "upstream.tls")


class Upstream:
    """Client half of the proxy. Create once per process (`open`), close on shutdown."""

    def __init__(self, settings: UpstreamSettings, session: aiohttp.ClientSession) -> None:
        self._base = settings.url
        self._settings = settings
        self._session = session

    @classmethod
    def open(cls, settings: UpstreamSettings, resolve: Resolve = Path) -> Upstream:
        connector = aiohttp.TCPConnector(
            limit=settings.pool_size,
            limit_per_host=settings.pool_per_host,
            keepalive_timeout=settings.keepalive_timeout or None,
            ssl=crm_tls(settings, resolve),
            enable_cleanup_closed=True,
        )
        timeout = aiohttp.ClientTimeout(
            total=settings.total_timeout,
            connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO,
            cookie_jar=aiohttp.DummyCookieJar(),  # cookies belong to the caller, not to us
            raise_for_status=False,
        )
        return cls(settings, session)

    async def close(self) -> None:
        await self._session.close()

    async def reachable(self, timeout: float = 2.0) -> bool:
        """Readiness: any HTTP answer from the CRM's base URL counts as reachable."""
        try:
            async with self._session.request(
                "HEAD", self.url_for("/"), timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                return resp.status > 0
        except (TimeoutError, aiohttp.ClientError):
            return False

    def url_for(self, path_qs: str) -> URL:
        """Configured base + the request's (normalised) path and query; nothing else.

        The Host header and absolute-form request targets never choose the
        destination, so the gateway cannot be used as an open proxy.
        """
        if not path_qs.startswith("/"):
            path_qs = "/" + path_qs
        return URL(self._base + path_qs, encoded=True)

    async def ws_connect(
        self, path_qs: str, headers: Sequence[tuple[str, str]], protocols: Sequence[str]
    ) -> aiohttp.ClientWebSocketResponse:
        """Open the CRM side of a WebSocket relay (ws:// or wss:// as the base URL says)."""
        url = self.url_for(path_qs)
        url = url.with_scheme("wss" if url.scheme == "https" else "ws")
        try:
            return await self._session.ws_connect(
                url, headers=list(headers), protocols=tuple(protocols)
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable("the CRM refused the WebSocket connection") from exc

    async def fetch(
        self, url: str, headers: Mapping[str, str], *, timeout: float
    ) -> tuple[int, bytes]:
        """A gateway-made GET of a small answer at an absolute CRM URL (identity's
        "who am I" introspection): status and whole body, through the one pool."""
        try:
            async with self._session.get(
                URL(url),
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as resp:
                return resp.status, await resp.read()
        except TimeoutError as exc:
            raise UpstreamTimeout("the CRM did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"the CRM could not be reached ({type(exc).__name__})"
            ) from exc

    async def send(
        self,
        method: str,
        path_qs: str,
        headers: Sequence[tuple[str, str]],
        body: AsyncIterator[bytes] | bytes | None,
    ) -> UpstreamResponse:
        """Send the request; return once the CRM's status line and headers arrived."""
        url = self.url_for(path_qs)
        try:
            resp = await self._session.request(
                method,
                url,
                headers=list(headers),
                data=body,
                allow_redirects=False,
                compress=None,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            # A failure of the client's own body (too large, too slow) surfaces here
            # wrapped by aiohttp; report the client's error, not the CRM's.
            cause = _gateway_cause(exc)
            if cause is not None:
                raise cause from exc
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout("the CRM did not answer in time") from exc
            raise UpstreamUnavailable(
                f"the CRM could not be reached ({type(exc).__name__})"
            ) from exc
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
        return UpstreamResponse(resp.status, resp.reason or "", raw, resp)


def _gateway_cause(exc: BaseException) -> GatewayError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, GatewayError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
