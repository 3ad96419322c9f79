"""The shipped OPA bundle setup works end to end with real processes.

`deploy/opa/build-bundle.sh` builds and signs the bundle; a real HTTP server
publishes it; a real OPA 1.22.3 started with `deploy/opa/opa-config.yaml` (only
the server URL, the public key and the persistence directory swapped for local
ones) activates it, refuses one signed with another key, and restarts from the
persisted bundle while the bundle server is down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, find_opa, free_port, stop_process, wait_for_port
from tests.tls_certs import bundle_keypair

pytestmark = pytest.mark.integration

REVISION = json.loads((ROOT / "rego" / "data.json").read_text())["crm"]["config"]["revision"]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str, int]]:
    """Build with the deploy script, serve over HTTP. Yields (dir, good pub, other pub, port)."""
    tmp = tmp_path_factory.mktemp("bundle")
    private, public = bundle_keypair(tmp, "bundle")
    _, other_public = bundle_keypair(tmp, "other")
    (tmp / "srv" / "crm").mkdir(parents=True)
    out = tmp / "srv" / "crm" / "bundle.tar.gz"
    result = subprocess.run(
        [str(ROOT / "deploy" / "opa" / "build-bundle.sh"), str(private), str(out)],
        cwd=ROOT,
        env={**os.environ, "OPA": find_opa()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "signature verified" in result.stdout
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp / "srv",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=server)
        yield tmp, public, other_public, port
    finally:
        stop_process(server)


def _start_opa(
    tmp: Path, name: str, server_port: int, public_key: str
) -> tuple[subprocess.Popen[bytes], int, int]:
    config = yaml.safe_load((ROOT / "deploy" / "opa" / "opa-config.yaml").read_text())
    config["services"]["bundles"]["url"] = f"http://127.0.0.1:{server_port}"
    config["keys"]["crm"]["key"] = public_key
    config["persistence_directory"] = str(tmp / f"persist-{name.split('-')[0]}")
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    api, diag = free_port(), free_port()
    proc = subprocess.Popen(
        [find_opa(), "run", "--server", f"--addr=127.0.0.1:{api}",
         f"--diagnostic-addr=127.0.0.1:{diag}", f"--config-file={path}",
         "--optimize-store-for-read-speed", "--disable-telemetry"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(api, proc=proc)
    return proc, api, diag


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback test URL)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _bundles_ready(diag: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _status(f"http://127.0.0.1:{diag}/health?bundles") == 200:
            return True
        time.sleep(0.2)
    return False


def _revision(api: int) -> object:
    url = f"http://127.0.0.1:{api}/v1/data/crm/config/revision"
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read()).get("result")


def test_opa_activates_the_signed_bundle_and_restarts_from_persistence(
    published: tuple[Path, str, str, int],
) -> None:
    tmp, public, _, port = published
    proc, api, diag = _start_opa(tmp, "good", port, public)
    try:
        assert _bundles_ready(diag, 15.0)
        assert _revision(api) == REVISION
    finally:
        stop_process(proc)
    # Same persistence directory, bundle server unreachable: starts from the last good bundle.
    proc, api, diag = _start_opa(tmp, "good-restart", free_port(), public)
    try:
        assert _bundles_ready(diag, 15.0)
        assert _revision(api) == REVISION
    finally:
        stop_process(proc)


def test_opa_refuses_a_bundle_signed_with_another_key(
    published: tuple[Path, str, str, int],
) -> None:
    tmp, _, other_public, port = published
    proc, api, diag = _start_opa(tmp, "wrong", port, other_public)
    try:
        assert not _bundles_ready(diag, 4.0)
        assert _revision(api) is None
        assert not list((tmp / "persist-wrong").rglob("*.tar.gz"))
    finally:
        stop_process(proc)
