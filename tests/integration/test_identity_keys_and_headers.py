"""API keys, trusted SSO headers, mTLS and revocation through a real aiohttp server.

Revocation here uses a real redis-server: the identity's list and the revoking
client are separate connections, as a gateway replica and the CLI would be.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.errors import GatewayError
from gateway.identity.service import Identity
from gateway.settings import Settings
from gateway.state.revocation import RevocationList
from tests.conftest import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = web.AppKey("identity", Identity)
Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


async def whoami(request: web.Request) -> web.Response:
    try:
        subject = await request.app[IDENTITY].authenticate(request)
    except GatewayError as exc:
        return web.json_response(exc.to_body(), status=exc.status)
    return web.json_response({**subject.to_policy(), "attributes": dict(subject.attributes)})


async def raw_request(
    port: int, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """HTTP/1.1 over a plain socket, so the path reaches the server exactly as written
    (client libraries would resolve `..` and `//` before sending)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


def _app(identity: Identity) -> web.Application:
    app = web.Application()
    app[IDENTITY] = identity
    app.router.add_route("*", "/{tail:.*}", whoami)
    app.on_cleanup.append(lambda _: identity.close())
    return app


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Call]]]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def build(
        identity_settings: dict[str, Any] | None = None,
        revocations: RevocationList | None = None,
        directory: str | None = None,
    ) -> Call:
        ident: dict[str, Any] = {"directory": str(ROOT / "config" / "directory.yaml")}
        if directory is not None:
            (tmp_path / "d.yaml").write_text(directory)
            ident["directory"] = str(tmp_path / "d.yaml")
        ident.update(identity_settings or {})
        settings = Settings.model_validate({"identity": ident})
        identity = await Identity.open(settings, revocations or await RevocationList.open(None))
        client = TestClient(TestServer(_app(identity), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)

        async def call(
            path: str = "/api/customers", method: str = "GET", **headers: str
        ) -> tuple[int, dict[str, Any]]:
            assert client.port is not None
            return await raw_request(client.port, method, path, headers)

        return call

    yield build
    for client in clients:
        await client.close()


# -- API keys ------------------------------------------------------------------


async def test_good_key_as_bearer_and_header(gateway: Any) -> None:
    call = await gateway()
    status, body = await call(Authorization="Bearer demo-sales-key")
    assert (status, body["id"], body["auth_method"]) == (200, "u-sales-01", "api_key")
    status, body = await call(**{"X-Api-Key": "demo-manager-key"})
    # Its key is marked `mfa: true` in the directory, which proves no second factor.
    assert (status, body["id"], body["mfa"]) == (200, "u-manager", False)
    assert body["attributes"]["credential_id"] == "k-manager-demo"


async def test_wrong_keys(gateway: Any) -> None:
    call = await gateway()
    status, body = await call(**{"X-Api-Key": "demo-sales-kez"})
    assert (status, body["message"]) == (401, "unknown API key in X-Api-Key")
    status, body = await call(Authorization="Bearer not-a-key")
    assert (status, body["message"]) == (401, "no credential the gateway accepts")
    status, body = await call()
    assert status == 401


async def test_expired_key(gateway: Any) -> None:
    call = await gateway(
        directory="""
subjects:
  - id: u-old
    api_keys:
      - {id: k-old, expires: 2020-01-31,
         hash: "sha256:2e31555da0419daf4f3c32fc0f82de1ae01b8e6160702ca85ae3a21c69f4366d"}
"""
    )
    status, body = await call(Authorization="Bearer demo-sales-key")
    assert status == 401
    assert "k-old expired at 2020-02-01T00:00:00+08:00" in body["message"]


@pytest.mark.parametrize(
    ("key", "method", "path", "status", "code"),
    [
        ("demo-partner-key", "GET", "/api/customers/7", 200, None),
        ("demo-partner-key", "POST", "/api/customers", 403, "credential_out_of_scope"),
        ("demo-partner-key", "GET", "/api/notes/1", 403, "credential_out_of_scope"),
        ("demo-partner-key", "GET", "/api/customers/../notes/1", 403, "credential_out_of_scope"),
        (
            "demo-partner-key",
            "GET",
            "/api/customers/%2e%2e/notes/1",
            403,
            "credential_out_of_scope",
        ),
        ("demo-partner-key", "GET", "/api/customers/%2f../notes", 400, "bad_path"),
        ("demo-sales-key", "GET", "/_gateway/admin", 403, "credential_out_of_scope"),
        ("demo-sales-key", "GET", "//api/../_gateway/admin", 403, "credential_out_of_scope"),
        ("demo-auditor-key", "DELETE", "/api/customers/1", 403, "credential_out_of_scope"),
        ("demo-departed-key", "GET", "/api/customers", 403, "subject_revoked"),
    ],
)
async def test_key_scopes_on_normalised_paths(
    gateway: Any, key: str, method: str, path: str, status: int, code: str | None
) -> None:
    call = await gateway()
    got, body = await call(path, method, Authorization=f"Bearer {key}")
    assert got == status, body
    if code:
        assert body["error"] == code


# -- revocation with Redis -------------------------------------------------------


async def test_revocation_through_redis_refuses_valid_keys(gateway: Any, redis_url: str) -> None:
    replica = await RevocationList.open(redis_url)
    admin = await RevocationList.open(redis_url, subscribe=False)
    try:
        call = await gateway(revocations=replica)
        assert (await call(Authorization="Bearer demo-sales-key"))[0] == 200
        await admin.revoke("u-sales-01", reason="离职", by="security")
        deadline = asyncio.get_running_loop().time() + 1.0
        while (await call(Authorization="Bearer demo-sales-key"))[0] == 200:
            assert asyncio.get_running_loop().time() < deadline, "revocation took over 1 s"
            await asyncio.sleep(0.01)
        status, body = await call(Authorization="Bearer demo-sales-key")
        assert (status, body["error"]) == (403, "subject_revoked")
        # Revoking one credential leaves the subject's other ways in.
        await admin.revoke("k-cs-demo", reason="key leaked", by="security")
        await asyncio.sleep(0.05)
        assert (await call(Authorization="Bearer demo-cs-key"))[0] == 403
        assert (await call(Authorization="Bearer demo-manager-key"))[0] == 200
    finally:
        await admin.close()
        await replica.close()


# -- trusted headers ------------------------------------------------------------------


async def test_trusted_headers_only_from_the_proxy_network(gateway: Any) -> None:
    untrusted = await gateway(
        {
            "authenticators": ["trusted_header", "api_key"],
            "trusted_headers": {"source_networks": ["10.0.0.0/8"]},
        }
    )
    status, body = await untrusted(**{"X-Remote-User": "u-admin"})
    assert (status, body["message"]) == (401, "no credential the gateway accepts")
    # With a real credential the header changes nothing.
    status, body = await untrusted(**{"X-Remote-User": "u-admin", "X-Api-Key": "demo-cs-key"})
    assert (status, body["id"]) == (200, "u-cs")

    trusted = await gateway(
        {
            "authenticators": ["trusted_header"],
            "trusted_headers": {"source_networks": ["127.0.0.0/8"], "mfa_header": "X-Remote-MFA"},
        }
    )
    status, body = await trusted(**{"X-Remote-User": "u-admin", "X-Remote-MFA": "true"})
    assert (status, body["id"], body["auth_method"], body["mfa"]) == (
        200,
        "u-admin",
        "trusted_header",
        True,
    )
    status, body = await trusted(**{"X-Remote-User": "u-nobody"})
    assert status == 401
    status, body = await trusted(**{"X-Remote-User": "u-departed"})
    assert (status, body["error"]) == (403, "subject_revoked")


# -- mTLS ------------------------------------------------------------------------------


def _cert(
    subject: str,
    issuer_key: Any,
    issuer: x509.Name,
    *,
    ca: bool = False,
    key: Any = None,
    san: list[x509.GeneralName] | None = None,
) -> tuple[Any, x509.Certificate]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return key, builder.sign(issuer_key, hashes.SHA256())


def _write(tmp: Path, name: str, key: Any, cert: x509.Certificate) -> tuple[str, str]:
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


async def test_mtls_client_certificate(tmp_path: Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    _, ca_cert = _cert("test CA", ca_key, ca_name, ca=True, key=ca_key)
    server_key, server_cert = _cert(
        "127.0.0.1", ca_key, ca_name, san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    client_key, client_cert = _cert("u-auditor", ca_key, ca_name)
    ca_path = tmp_path / "ca.crt"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_files = _write(tmp_path, "server", server_key, server_cert)
    client_files = _write(tmp_path, "client", client_key, client_cert)

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_path))
    server_ctx.load_cert_chain(*server_files)
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    settings = Settings.model_validate(
        {
            "identity": {
                "directory": str(ROOT / "config" / "directory.yaml"),
                "authenticators": ["mtls", "api_key"],
            }
        }
    )
    identity = await Identity.open(settings, await RevocationList.open(None))
    runner = web.AppRunner(_app(identity))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ctx).start()
    try:
        with_cert = ssl.create_default_context(cafile=str(ca_path))
        with_cert.load_cert_chain(*client_files)
        without_cert = ssl.create_default_context(cafile=str(ca_path))
        url = f"https://127.0.0.1:{port}/api/customers"
        async with aiohttp.ClientSession() as session:
            async with session.get(url, ssl=with_cert) as resp:
                body = await resp.json()
                assert (resp.status, body["id"], body["auth_method"]) == (200, "u-auditor", "mtls")
            async with session.get(url, ssl=without_cert) as resp:
                assert resp.status == 401
    finally:
        await runner.cleanup()


async def test_replica_cut_off_from_redis_fails_closed(gateway: Any, tmp_path: Path) -> None:
    from tests.conftest import RedisProcess

    private = RedisProcess(tmp_path)
    private.start()
    replica = await RevocationList.open(private.url, poll_interval=0.1)
    try:
        call = await gateway({"revocation_max_staleness": 0.5}, revocations=replica)
        assert (await call(Authorization="Bearer demo-sales-key"))[0] == 200
        private.stop()
        await asyncio.sleep(1.0)
        status, body = await call(Authorization="Bearer demo-sales-key")
        assert (status, body["error"]) == (503, "revocation_list_stale")
    finally:
        private.stop()
        await replica.close()
