"""TLS on every hop (issue 14, item 2), with certificates the tests make.

- `crm-gateway serve` (a real process) terminates TLS with `listen.tls`, asks for
  client certificates and authenticates callers by them (mTLS); a certificate
  replaced on disk is served to new connections without a restart.
- Behind a TLS-terminating ingress, the client certificate forwarded in a header
  (nginx `ssl-client-cert`, Envoy `X-Forwarded-Client-Cert`) is believed from the
  ingress only and verified against the CA again.
- The gateway calls the CRM, Redis (`rediss://`) and an external OPA over TLS with
  its own client certificate; each server is a real process or server that
  requires one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web
from cryptography import x509

from gateway.demo.crm import create_demo_crm
from gateway.state.client import ping
from tests.conftest import ROOT, find_opa, find_redis_server, free_port, stop_process, wait_for_port
from tests.integration.gateway_harness import start_gateway, write_directory
from tests.integration.policy_http_harness import ALWAYS_OPEN, policy_copy
from tests.tls_certs import Ca, Issued

pytestmark = pytest.mark.integration

SALES_KEY = {"Authorization": "Bearer test-sales-key"}  # gateway_harness's directory


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("pki")
    ca, rogue = Ca.create(d, "bank"), Ca.create(d, "rogue")
    return {
        "dir": d,
        "ca": ca,
        "server": ca.issue(d, "crm-gateway.test", server=True),
        "sales": ca.issue(d, "u-sales-01", email="sales@bank.example"),
        "stranger": ca.issue(d, "u-nobody"),
        "rogue_sales": rogue.issue(d, "u-sales-01", name="rogue-sales"),
        "gateway_client": ca.issue(d, "crm-gateway", name="gateway-client"),
    }


def sub(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir(exist_ok=True)
    return path


def client_ssl(ca: Ca, cert: Issued | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.path))
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


def served_serial(port: int, ctx: ssl.SSLContext) -> int:
    """The serial number of the certificate a new TLS connection is given."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


# --- the listener: crm-gateway serve with listen.tls ---------------------------------------


@pytest.fixture
def demo_crm() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c",
         f"from gateway.demo.crm import run_demo_crm; run_demo_crm('127.0.0.1', {port})"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def serve_tls(
    tmp_path: Path, crm_url: str, pki: dict[str, Any]
) -> tuple[subprocess.Popen[bytes], int, Path, Path]:
    """`crm-gateway serve` with TLS and required client certificates; the listener's
    certificate files are copies the test may replace."""
    port = free_port()
    cert, key = tmp_path / "listen.pem", tmp_path / "listen.key"
    cert.write_bytes(pki["server"].cert.read_bytes())
    key.write_bytes(pki["server"].key.read_bytes())
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "base_dir": str(ROOT),
                "listen": {
                    "host": "127.0.0.1",
                    "port": port,
                    "tls": {
                        "cert": str(cert),
                        "key": str(key),
                        "client_ca": str(pki["ca"].path),
                        "client_auth": "required",
                        "reload_interval": 0.2,
                    },
                },
                "upstream": {"url": crm_url},
                "identity": {
                    "directory": str(write_directory(tmp_path / "directory.yaml")),
                    "authenticators": ["mtls", "api_key"],
                },
                "policy": {"engine": "static"},
                "audit": {
                    "sinks": ["file"],
                    "file": str(tmp_path / "audit.jsonl"),
                    "spool_dir": str(tmp_path / "spool"),
                    "registry_dir": str(tmp_path / "writers"),
                },
            }
        ),
        encoding="utf-8",
    )
    check = subprocess.run(
        [str(Path(sys.executable).parent / "crm-gateway"), "check-config", str(cfg)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "crm-gateway"), "serve", "--config", str(cfg)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port, timeout=30, proc=proc)
    return proc, port, cert, key


async def get(
    url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url, ssl=ctx, headers=headers) as r:
        return r.status, await r.text()


async def test_serve_terminates_tls_authenticates_client_certificates_and_reloads(
    tmp_path: Path, demo_crm: str, pki: dict[str, Any]
) -> None:
    proc, port, cert, key = serve_tls(tmp_path, demo_crm, pki)
    base = f"https://127.0.0.1:{port}"
    try:
        # mTLS: the certificate names the directory entry; no API key needed.
        status, body = await get(
            f"{base}/api/customers?page_size=2", client_ssl(pki["ca"], pki["sales"])
        )
        assert status == 200, body
        # A certificate of the right CA whose name is not in the directory: 401.
        status, body = await get(f"{base}/api/customers", client_ssl(pki["ca"], pki["stranger"]))
        assert status == 401, body
        assert "not in the gateway directory" in body
        # No client certificate, or one from another CA: the handshake is refused.
        for ctx in (client_ssl(pki["ca"]), client_ssl(pki["ca"], pki["rogue_sales"])):
            with pytest.raises(aiohttp.ClientError):
                await get(f"{base}/api/customers", ctx, SALES_KEY)
        # Plain HTTP on the TLS port gets no answer from the gateway.
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/") as r:
                await r.read()

        # Reload: a new certificate (new key) written over the files is served to
        # new connections by the same process.
        ctx = client_ssl(pki["ca"], pki["sales"])
        before = served_serial(port, ctx)
        assert before == pki["server"].certificate.serial_number
        new = pki["ca"].issue(tmp_path, "crm-gateway.test", server=True, name="renewed")
        written = time.monotonic()
        os.replace(new.key, key)  # the key first: a mismatched pair is retried, never served
        os.replace(new.cert, cert)
        deadline = written + 30
        while served_serial(port, ctx) != new.certificate.serial_number:
            assert time.monotonic() < deadline, "the renewed certificate was never served"
            await asyncio.sleep(0.05)
        print(f"listen.tls reload seen after {time.monotonic() - written:.3f}s (interval 0.2s)")
        assert proc.poll() is None  # not restarted
        status, body = await get(f"{base}/api/customers?page_size=1", ctx)
        assert status == 200, body
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        stop_process(proc)


def test_check_config_names_missing_tls_files(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "upstream": {
                    "url": "https://crm.internal",
                    "tls": {"ca": str(tmp_path / "nope-ca.pem")},
                },
                "listen": {
                    "tls": {"cert": str(tmp_path / "c.pem"), "key": str(tmp_path / "k.pem")}
                },
                "policy": {"engine": "static"},
                "redis": {"url": f"rediss://127.0.0.1:6380/0?ssl_ca_certs={tmp_path}/r.pem"},
            }
        ),
        encoding="utf-8",
    )
    out = subprocess.run(
        [str(Path(sys.executable).parent / "crm-gateway"), "check-config", str(cfg)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    text = out.stdout + out.stderr
    for key in ("listen.tls.cert", "listen.tls.key", "upstream.tls.ca", "redis.url (ssl_ca_certs)"):
        assert key in text, text


# --- a client certificate forwarded by a trusted ingress -----------------------------------


def xfcc(cert: Issued) -> str:
    return f'Hash=00;Cert="{quote(cert.pem.decode(), safe="")}";Subject="CN=x"'


@pytest.mark.parametrize("fmt", ["pem", "xfcc"])
async def test_forwarded_client_certificate_from_the_ingress_only(
    tmp_path: Path, pki: dict[str, Any], fmt: str
) -> None:
    crm = web.AppRunner(create_demo_crm(seed=7, count=5))
    await crm.setup()
    crm_port = free_port()
    await web.TCPSite(crm, "127.0.0.1", crm_port).start()
    header = "ssl-client-cert" if fmt == "pem" else "X-Forwarded-Client-Cert"

    def encode(cert: Issued) -> str:
        return quote(cert.pem.decode(), safe="") if fmt == "pem" else xfcc(cert)

    mtls = {
        "forwarded_header": header,
        "forwarded_format": fmt,
        "forwarded_ca": str(pki["ca"].path),
    }
    gateways = []
    try:
        trusted = await start_gateway(
            sub(tmp_path, "t"), f"http://127.0.0.1:{crm_port}",
            **{"identity.authenticators": ["mtls"],
               "identity.mtls": {**mtls, "forwarded_from": ["127.0.0.0/8"]}},
        )  # fmt: skip
        gateways.append(trusted)
        untrusted = await start_gateway(
            sub(tmp_path, "u"), f"http://127.0.0.1:{crm_port}",
            **{"identity.authenticators": ["mtls"],
               "identity.mtls": {**mtls, "forwarded_from": ["10.20.0.0/16"]}},
        )  # fmt: skip
        gateways.append(untrusted)
        async with aiohttp.ClientSession() as s:

            async def call(url: str, cert: Issued) -> tuple[int, str]:
                async with s.get(
                    f"{url}/api/customers?page_size=1", headers={header: encode(cert)}
                ) as r:
                    return r.status, await r.text()

            status, body = await call(trusted.url, pki["sales"])
            assert status == 200, body
            status, body = await call(trusted.url, pki["rogue_sales"])  # same name, other CA
            assert status == 401 and "does not verify" in body, body
            status, body = await call(untrusted.url, pki["sales"])  # not from the ingress
            assert status == 401 and "no credential" in body, body
    finally:
        for g in gateways:
            await g.stop()
        await crm.cleanup()


# --- TLS and mTLS to the CRM ----------------------------------------------------------------


async def test_crm_over_mtls(tmp_path: Path, pki: dict[str, Any]) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki["server"].cert, pki["server"].key)
    server_ctx.load_verify_locations(cafile=str(pki["ca"].path))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    crm = web.AppRunner(create_demo_crm(seed=7, count=5))
    await crm.setup()
    port = free_port()
    await web.TCPSite(crm, "127.0.0.1", port, ssl_context=server_ctx).start()
    url = f"https://127.0.0.1:{port}"
    client = pki["gateway_client"]
    gateways = []
    try:
        with_cert = await start_gateway(
            sub(tmp_path, "a"), url,
            **{"upstream.tls": {"ca": str(pki["ca"].path), "cert": str(client.cert),
                                "key": str(client.key)}},
        )  # fmt: skip
        gateways.append(with_cert)
        ca_only = await start_gateway(
            sub(tmp_path, "b"), url, **{"upstream.tls": {"ca": str(pki["ca"].path)}}
        )
        gateways.append(ca_only)
        system_trust = await start_gateway(sub(tmp_path, "c"), url)
        gateways.append(system_trust)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{with_cert.url}/api/customers?page_size=2", headers=SALES_KEY) as r:
                assert r.status == 200, await r.text()
                assert len((await r.json())["results"]) == 2
            for g in (ca_only, system_trust):  # no client cert / the test CA not trusted
                async with s.get(f"{g.url}/api/customers?page_size=2", headers=SALES_KEY) as r:
                    assert r.status == 502, await r.text()
    finally:
        for g in gateways:
            await g.stop()
        await crm.cleanup()


# --- rediss:// -----------------------------------------------------------------------------


@pytest.fixture
def tls_redis(tmp_path: Path, pki: dict[str, Any]) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [find_redis_server(), "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port),
         "--tls-cert-file", str(pki["server"].cert), "--tls-key-file", str(pki["server"].key),
         "--tls-ca-cert-file", str(pki["ca"].path), "--tls-auth-clients", "yes",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        stop_process(proc)


async def test_redis_over_mutual_tls(tmp_path: Path, pki: dict[str, Any], tls_redis: int) -> None:
    client = pki["gateway_client"]
    base = f"rediss://127.0.0.1:{tls_redis}/0?ssl_ca_certs={pki['ca'].path}"
    url = f"{base}&ssl_certfile={client.cert}&ssl_keyfile={client.key}"
    assert await ping(url)
    assert not await ping(base)  # the server requires a client certificate
    assert not await ping(f"rediss://127.0.0.1:{tls_redis}/0")  # the test CA is not trusted
    # The gateway refuses to start without Redis; with rediss:// it starts and serves,
    # and its revocations live in that Redis.
    crm = web.AppRunner(create_demo_crm(seed=7, count=5))
    await crm.setup()
    crm_port = free_port()
    await web.TCPSite(crm, "127.0.0.1", crm_port).start()
    try:
        g = await start_gateway(tmp_path, f"http://127.0.0.1:{crm_port}", **{"redis.url": url})
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{g.url}/api/customers?page_size=1", headers=SALES_KEY) as r:
                    assert r.status == 200, await r.text()
                async with s.get(f"{g.url}/_gateway/ready") as r:
                    ready = await r.json()
            assert ready["checks"]["redis"] in ("ok", True) or "ok" in str(
                ready["checks"]["redis"]
            ), ready
        finally:
            await g.stop()
    finally:
        await crm.cleanup()


# --- an external OPA over mutual TLS --------------------------------------------------------

_BASE = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
OPEN_HOURS = {**_BASE["time_place"], "hours": ALWAYS_OPEN, "holidays": []}
AUTHZ = """package system.authz

default allow := false

allow if startswith(input.identity, "CN=crm-gateway")
"""


@pytest.fixture
def tls_opa(tmp_path: Path, pki: dict[str, Any]) -> Iterator[int]:
    authz = tmp_path / "authz"
    authz.mkdir()
    (authz / "authz.rego").write_text(AUTHZ, encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen(
        [find_opa(), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error",
         "--tls-cert-file", str(pki["server"].cert),
         "--tls-private-key-file", str(pki["server"].key),
         "--tls-ca-cert-file", str(pki["ca"].path),
         "--authentication=tls", "--authorization=basic",
         str(policy_copy(tmp_path / "rego", ROOT, time_place=OPEN_HOURS)), str(authz)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        stop_process(proc)


async def test_external_opa_over_mutual_tls(
    tmp_path: Path, pki: dict[str, Any], tls_opa: int
) -> None:
    crm = web.AppRunner(create_demo_crm(seed=7, count=5))
    await crm.setup()
    crm_port = free_port()
    await web.TCPSite(crm, "127.0.0.1", crm_port).start()
    client = pki["gateway_client"]
    opa = {
        "policy.engine": "external",
        "policy.url": f"https://127.0.0.1:{tls_opa}",
        "policy.timeout": 2.0,
    }
    try:
        g = await start_gateway(
            sub(tmp_path, "a"), f"http://127.0.0.1:{crm_port}",
            **{**opa, "policy.tls": {"ca": str(pki["ca"].path), "cert": str(client.cert),
                                     "key": str(client.key)}},
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{g.url}/api/customers?page_size=1", headers=SALES_KEY) as r:
                    assert r.status == 200, await r.text()
        finally:
            await g.stop()
        # Without the client certificate OPA refuses the gateway, so it denies (fails closed).
        g = await start_gateway(
            sub(tmp_path, "b"),
            f"http://127.0.0.1:{crm_port}",
            **{**opa, "policy.tls": {"ca": str(pki["ca"].path)}},
        )
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{g.url}/api/customers?page_size=1", headers=SALES_KEY) as r:
                    assert r.status == 503, await r.text()
        finally:
            await g.stop()
    finally:
        await crm.cleanup()
