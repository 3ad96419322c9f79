"""The release gate for rego/: what a security team's CI runs before it publishes a bundle.

Every check runs the real `opa` (and `regal`) binaries against the repository's
rego/ directory. rego/ is loaded as a bundle directory (`-b`): only `*.rego` and
`data.json` count, so the JSON Schemas in rego/schema/ are not mistaken for data.
A missing binary fails the test; it is a broken setup, not a reason to skip.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import free_port, stop_process, wait_for_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REGO = ROOT / "rego"
SCHEMA = REGO / "schema"
COVERAGE_THRESHOLD = 90.0
# Decisions must be pure functions of their input (cacheable, replayable), so the
# policy may not call a built-in that reads the clock, the network or randomness.
FORBIDDEN_BUILTINS = {"http.send", "time.now_ns", "net.lookup_ip_addr", "rand.intn", "uuid.rfc4122"}


def _tool(name: str) -> str:
    local = ROOT / ".tools" / "bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found in .tools/bin or on PATH: run `make tools`", pytrace=False)
    return found


@pytest.fixture(scope="module")
def opa() -> str:
    return _tool("opa")


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_fmt_is_clean(opa: str) -> None:
    result = _run(opa, "fmt", "--fail", "--list", "rego")
    assert result.returncode == 0, f"opa fmt would reformat:\n{result.stdout}{result.stderr}"
    assert result.stdout.strip() == ""


def test_check_strict_with_schemas(opa: str) -> None:
    result = _run(opa, "check", "--strict", "--bundle", "rego", "--schema", "rego/schema")
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_annotations_catch_a_typo(opa: str, tmp_path: Path) -> None:
    """The schemas are wired in: a misspelt input or data field is a type error."""
    copy = tmp_path / "rego"
    shutil.copytree(REGO, copy)
    levels = copy / "limits.rego"
    source = levels.read_text(encoding="utf-8")
    assert "input.subject.mfa == false" in source
    levels.write_text(source.replace("input.subject.mfa == false", "input.subject.mfaa == false"))
    result = _run(opa, "check", "--strict", "--bundle", str(copy), "--schema", str(copy / "schema"))
    assert result.returncode != 0
    assert "undefined ref: input.subject.mfaa" in result.stdout + result.stderr


def test_policy_uses_only_deterministic_builtins(opa: str, tmp_path: Path) -> None:
    current = json.loads(_run(opa, "capabilities", "--current").stdout)
    current["builtins"] = [b for b in current["builtins"] if b["name"] not in FORBIDDEN_BUILTINS]
    caps = tmp_path / "capabilities.json"
    caps.write_text(json.dumps(current), encoding="utf-8")
    result = _run(opa, "check", "--strict", "--bundle", "rego", "--capabilities", str(caps))
    assert result.returncode == 0, result.stdout + result.stderr


def test_opa_test_all_pass(opa: str) -> None:
    result = _run(opa, "test", "--bundle", "rego", "--fail-on-empty", "--format", "json")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    outcomes = json.loads(result.stdout)
    failed = [o["name"] for o in outcomes if o.get("fail") or o.get("error")]
    assert failed == []
    assert len(outcomes) >= 80


def test_opa_test_coverage(opa: str) -> None:
    result = _run(opa, "test", "--bundle", "rego", "--coverage", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    policy_files = {
        name: info for name, info in report["files"].items() if not name.endswith("_test.rego")
    }
    assert policy_files, "coverage report names no policy file"
    assert report["coverage"] >= COVERAGE_THRESHOLD, report["coverage"]


def test_regal_lint_is_clean() -> None:
    regal = _tool("regal")
    result = _run(regal, "lint", "--format", "pretty", "rego")
    assert result.returncode == 0, result.stdout + result.stderr


def test_data_matches_config_schema() -> None:
    config = json.loads((REGO / "data.json").read_text(encoding="utf-8"))["crm"]["config"]
    schemas: dict[str, Any] = {}
    for name in ("input", "output", "config"):
        schema = json.loads((SCHEMA / f"{name}.json").read_text(encoding="utf-8"))
        jsonschema.Draft7Validator.check_schema(schema)
        schemas[name] = schema
    jsonschema.validate(config, schemas["config"])
    broken = {**config, "cache": {"ttl": "30"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schemas["config"])


@pytest.fixture(scope="module")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    keydir = tmp_path_factory.mktemp("keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = keydir / "bundle.key", keydir / "bundle.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture(scope="module")
def signed_bundle(
    opa: str, signing_keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "bundle.tar.gz"
    private, _ = signing_keys
    result = _run(
        opa, "build", "--bundle", "rego", "--ignore", "*_test.rego",
        "--revision", "test-rev", "--signing-key", str(private), "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_bundle_holds_policy_and_data_only(signed_bundle: Path) -> None:
    with tarfile.open(signed_bundle) as tar:
        names = {Path(n).name for n in tar.getnames()}
    assert {"decision.rego", "levels.rego", "limits.rego", "records.rego"} <= names
    assert {"data.json", ".manifest", ".signatures.json"} <= names
    assert not any(n.endswith("_test.rego") for n in names)


@contextmanager
def _serve(opa: str, *args: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [opa, "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        stop_process(proc)


def _post(port: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        result: dict[str, Any] = json.load(response)
    finally:
        conn.close()
    return result


def test_signed_bundle_serves_decisions(
    opa: str, signed_bundle: Path, signing_keys: tuple[Path, Path]
) -> None:
    _, public = signing_keys
    case = json.loads((ROOT / "tests/contract/cases/baseline_internal_rm.json").read_text("utf-8"))
    with _serve(opa, "--bundle", str(signed_bundle), "--verification-key", str(public)) as port:
        answer = _post(port, "/v1/data/crm/gateway/decision", {"input": case["input"]})
        assert answer["result"]["allow"] is True
        assert (
            answer["result"]["revision"]
            == json.loads((REGO / "data.json").read_text("utf-8"))["crm"]["config"]["revision"]
        )


def test_bundle_signed_with_another_key_is_refused(
    opa: str, signed_bundle: Path, tmp_path: Path
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = tmp_path / "wrong.pub"
    wrong.write_bytes(
        other.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    result = _run(opa, "run", "--bundle", str(signed_bundle), "--verification-key", str(wrong))
    assert result.returncode != 0
    assert "verification" in (result.stdout + result.stderr).lower()
