"""The container settings (deploy/config/gateway.yaml) really serve, in production mode.

What the compose file does, without Docker: `crm-gateway serve` with the shipped
file and the compose environment overrides (Redis URL, external OPA, the CRM URL,
the three keys), against a real redis-server, a real OPA and the demo CRM, all on
loopback. Only the listen address, the seal key and the spool directory are moved
from container paths to temporary ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import ROOT, OpaProcess, free_port, stop_process, wait_for_port

pytestmark = pytest.mark.integration


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 (loopback)
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _seal_key(directory: Path) -> Path:
    """The seal key and its public half side by side, as the secret mounts provide them."""
    key = Ed25519PrivateKey.generate()
    path = directory / "seal.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / "seal.pem.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_container_config_serves_in_production(
    tmp_path: Path, redis_url: str, opa_server: OpaProcess
) -> None:
    crm_port, gw_port = free_port(), free_port()
    run_crm = f"run_demo_crm(host='127.0.0.1', port={crm_port})"
    crm = subprocess.Popen(
        [sys.executable, "-c", f"from gateway.demo.crm import run_demo_crm; {run_crm}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY")}
    env.update(
        CRM_GATEWAY__BASE_DIR=str(ROOT),  # the image's /app holds config/ and rego/
        CRM_GATEWAY__LISTEN__HOST="127.0.0.1",
        CRM_GATEWAY__LISTEN__PORT=str(gw_port),
        CRM_GATEWAY__REDIS__URL=redis_url,
        CRM_GATEWAY__POLICY__ENGINE="external",
        CRM_GATEWAY__POLICY__URL=opa_server.url,
        CRM_GATEWAY__UPSTREAM__URL=f"http://127.0.0.1:{crm_port}",
        CRM_GATEWAY__AUDIT__SEAL_KEY_FILE=str(_seal_key(tmp_path)),
        CRM_GATEWAY__AUDIT__SPOOL_DIR=str(tmp_path / "spool"),
        CRM_GATEWAY_AUDIT_KEY="ab" * 32,
        CRM_GATEWAY_PSEUDONYM_KEY="cd" * 32,
        CRM_GATEWAY_API_KEY_PEPPER="ef" * 32,
    )
    log = (tmp_path / "gateway.log").open("wb")
    gateway = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import main; raise SystemExit(main())",
         "serve", "--config", "deploy/config/gateway.yaml"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(crm_port, proc=crm)
        try:
            wait_for_port(gw_port, timeout=30, proc=gateway)
        except RuntimeError:
            log.flush()
            raise AssertionError((tmp_path / "gateway.log").read_text()) from None
        base = f"http://127.0.0.1:{gw_port}"
        deadline = time.monotonic() + 15
        status, body = _get(f"{base}/_gateway/ready")
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            status, body = _get(f"{base}/_gateway/ready")
        assert status == 200, body
        assert json.loads(body)["checks"]["redis"] is True
        assert _get(f"{base}/_gateway/health")[0] == 200
        # Production: no credential, no data; a demo caller gets a masked page.
        assert _get(f"{base}/api/customers")[0] == 401
        status, body = _get(f"{base}/api/customers", {"X-Api-Key": "demo-sales-key"})
        assert status == 200, body
        first = json.loads(body)["results"][0]
        assert "*" in first["bank_card"]
        assert "query_password" not in first
    finally:
        stop_process(gateway)
        stop_process(crm)
        log.close()
