"""Structural checks of the deployment files (no Docker engine or kubectl here).

Every manifest parses and names itself; every container is non-root, read-only,
unprivileged and limited; the gateway's probes hit its own health and readiness
endpoints; secrets are referenced, never inlined; compose publishes on loopback
only; and the gateway settings shipped for containers pass `check-config`.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.checks import check_config
from gateway.settings import REPO_ROOT, load_settings

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
OPA_IMAGE = "openpolicyagent/opa:1.22.3"
SECRET_ENV = re.compile(r"(KEY|PEPPER|PASSWORD|TOKEN|SECRET)$|^CRM_GATEWAY__REDIS__URL$")
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _docs(path):
            if doc.get("kind") != "Kustomization":
                yield path, doc


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, doc in _manifests():
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def _containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, spec in _pod_specs():
        for c in spec.get("initContainers", []) + spec["containers"]:
            yield f"{name}/{c['name']}", c, spec


def _gateway_containers() -> list[dict[str, Any]]:
    return [c for _, c, _ in _containers() if c.get("args", [None])[0] == "serve"]


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return doc


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CRM_GATEWAY"):
            monkeypatch.delenv(key)


def _production_secrets(monkeypatch: pytest.MonkeyPatch, seal_key: Path) -> None:
    """What the deployment supplies besides the files: hex keys in the environment and
    the mounted Ed25519 seal key (written here where the settings look for it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    monkeypatch.setenv("CRM_GATEWAY_AUDIT_KEY", "a1" * 32)
    monkeypatch.setenv("CRM_GATEWAY_PSEUDONYM_KEY", "p" * 32)
    seal_key.parent.mkdir(parents=True, exist_ok=True)
    seal_key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_every_yaml_file_under_deploy_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 12
    for path in files:
        assert _docs(path), f"{path} is empty"


def test_every_manifest_names_itself_and_the_kustomization_lists_them() -> None:
    kinds = set()
    for path, doc in _manifests():
        assert doc.get("apiVersion"), path
        assert doc.get("kind"), path
        assert doc.get("metadata", {}).get("name"), path
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "crm-gateway", (path, doc["kind"])
        kinds.add(doc["kind"])
    expected = {"Namespace", "ConfigMap", "Secret", "Deployment", "Service"}
    expected |= {"PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "StatefulSet"}
    assert expected <= kinds
    listed = set(_docs(K8S / "kustomization.yaml")[0]["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml", "redis-dev.yaml"}


def test_containers_are_limited_non_root_read_only_and_unprivileged() -> None:
    containers = list(_containers())
    assert len(containers) >= 4
    for where, c, pod in containers:
        limits = c.get("resources", {}).get("limits", {})
        assert {"cpu", "memory"} <= set(limits), where
        sc = c.get("securityContext", {})
        pod_sc = pod.get("securityContext", {})
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
        assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0, where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("privileged", False) is False, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert ":" in c["image"] and not c["image"].endswith(":latest"), where
    for _, pod in _pod_specs():
        assert not pod.get("hostNetwork") and not pod.get("hostPID"), pod
        assert all("hostPath" not in v for v in pod.get("volumes", []))


def test_gateway_probes_use_ready_and_health() -> None:
    gateways = _gateway_containers()
    assert len(gateways) == 1
    for c in gateways:
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        ready, live = c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]
        assert ready["path"] == "/_gateway/ready"
        assert live["path"] == "/_gateway/health"
        assert ports[ready["port"]] == ports[live["port"]] == 8080


def test_gateway_pod_has_an_opa_sidecar_fed_by_bundles() -> None:
    (spec,) = [s for n, s in _pod_specs() if n == "crm-gateway"]
    (opa,) = [c for c in spec["containers"] if c["name"] == "opa"]
    assert opa["image"] == OPA_IMAGE
    assert "--addr=127.0.0.1:8181" in opa["args"]
    assert "--config-file=/config/opa-config.yaml" in opa["args"]
    assert opa["readinessProbe"]["httpGet"]["path"] == "/health?bundles"
    assert not any(a.startswith(("--bundle", "-b")) for a in opa["args"])


def test_secrets_are_referenced_not_inlined() -> None:
    secrets = {d["metadata"]["name"]: d for d in _docs(K8S / "secret.example.yaml")}
    for doc in secrets.values():
        assert doc["kind"] == "Secret"
        assert "data" not in doc
        assert all(str(v).startswith("REPLACE") for v in doc["stringData"].values())
    seen = set()
    for where, c, _ in _containers():
        for env in c.get("env", []):
            if SECRET_ENV.search(env["name"]):
                assert "value" not in env, (where, env["name"])
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["key"] in secrets[ref["name"]]["stringData"], (where, ref)
                seen.add(env["name"])
    assert {"CRM_GATEWAY_AUDIT_KEY", "CRM_GATEWAY_PSEUDONYM_KEY"} <= seen
    assert {"CRM_GATEWAY_API_KEY_PEPPER", "CRM_GATEWAY__REDIS__URL"} <= seen
    for _, spec in _pod_specs():
        for vol in spec.get("volumes", []):
            if "secret" in vol:
                assert vol["secret"]["secretName"] in secrets
    # Read-only mounts: the seal key's public half must be shipped next to it.
    seal = secrets["crm-gateway-audit-seal"]["stringData"]
    assert {"seal-ed25519.pem", "seal-ed25519.pem.pub"} <= set(seal)


def test_network_policy_limits_the_gateway() -> None:
    policies = {d["metadata"]["name"]: d for d in _docs(K8S / "networkpolicy.yaml")}
    assert policies["default-deny"]["spec"]["podSelector"] == {}
    gw = policies["crm-gateway"]["spec"]
    assert set(gw["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = gw["ingress"]
    (peer,) = ingress["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert [p["port"] for p in ingress["ports"]] == [8080]
    egress_ports = sorted({p["port"] for rule in gw["egress"] for p in rule["ports"]})
    assert egress_ports == [53, 443, 6379, 8000, 26379]


def test_compose_publishes_on_loopback_only() -> None:
    services = _compose()["services"]
    assert {"redis", "opa", "crm-demo", "audit-shipper"} <= set(services)
    published = 0
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
            published += 1
    assert published == 2
    assert "ports" not in services["redis"] and "ports" not in services["opa"]


def test_compose_wires_redis_opa_and_secrets() -> None:
    services = _compose()["services"]
    gateways = {n: s for n, s in services.items() if s.get("command", [""])[0] == "serve"}
    assert len(gateways) == 2
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--appendfsync everysec" in redis_cmd
    assert "--requirepass" in redis_cmd
    opa = services["opa"]
    assert opa["image"] == OPA_IMAGE
    assert "--addr=0.0.0.0:8181" in opa["command"]
    assert all(v.endswith(":ro") for v in opa["volumes"])
    for name, svc in {**gateways, "audit-shipper": services["audit-shipper"]}.items():
        env = svc["environment"]
        assert env["CRM_GATEWAY__POLICY__ENGINE"] == "external", name
        assert env["CRM_GATEWAY__POLICY__URL"] == "http://opa:8181", name
        for key, value in env.items():
            if SECRET_ENV.search(key):
                assert INTERPOLATION.search(value), (name, key)
        assert svc["read_only"] is True, name
    assert services["audit-shipper"]["command"][:4] == ["audit", "ship", "--to", "syslog"]
    for name, svc in {**gateways, "audit-shipper": services["audit-shipper"]}.items():
        targets = {s if isinstance(s, str) else s["target"] for s in svc["secrets"]}
        assert targets == {"audit_seal_key", "audit_seal_key.pub"}, name
    declared = _compose()["secrets"]
    assert all(d["file"].startswith("./secrets/") for d in declared.values())
    assert "0.0.0.0" in services["crm-demo"]["command"][0]


def _compose_env(service: str) -> dict[str, str]:
    env = _compose()["services"][service]["environment"]

    def value(m: re.Match[str]) -> str:
        # `${X:-default}` takes its default; required `${X:?msg}` a recognisable dummy.
        return m.group(3) if m.group(2) == "-" else f"dummy-{m.group(1).lower()}"

    return {k: INTERPOLATION.sub(value, v) for k, v in env.items()}


@pytest.mark.parametrize("service", ["gateway-1", "audit-shipper"])
def test_container_config_passes_check_config(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch)
    for key, value in _compose_env(service).items():
        if key.startswith("CRM_GATEWAY__"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("CRM_GATEWAY__BASE_DIR", str(REPO_ROOT))  # the image's /app
    path = DEPLOY / "config" / "gateway.yaml"
    missing = check_config(path)  # production: the keys serve would refuse without
    assert [p.split(":")[0] for p in missing] == [
        "audit.hmac_key_env",
        "audit.seal_key_file",
        "classification.pseudonym_key_env",
    ]
    seal = tmp_path / "run" / "secrets" / "audit_seal_key"  # the compose secret's mount
    monkeypatch.setenv("CRM_GATEWAY__AUDIT__SEAL_KEY_FILE", str(seal))
    _production_secrets(monkeypatch, seal)
    assert check_config(path) == []
    settings = load_settings(path)
    assert settings.environment == "production"
    assert settings.redis.url == "redis://:dummy-redis_password@redis:6379/0"
    assert settings.policy.engine == "external"
    assert settings.listen.host == "0.0.0.0"
    assert not settings.policy.report_only


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("render_configmap", K8S / "render_configmap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configmap_is_rendered_from_its_sources() -> None:
    rendered = _render_module().render()
    assert (K8S / "configmap.yaml").read_text(encoding="utf-8") == rendered, (
        "deploy/k8s/configmap.yaml is stale: run python deploy/k8s/render_configmap.py"
    )


def test_k8s_config_passes_check_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lay the mounts out as the Deployment does, under tmp_path instead of /etc/crm-gateway.
    (configmap,) = _docs(K8S / "configmap.yaml")
    (tmp_path / "config").mkdir()
    for name, text in configmap["data"].items():
        (tmp_path / "config" / name).write_text(text, encoding="utf-8")
    (tmp_path / "directory").mkdir()
    shutil.copy(REPO_ROOT / "config" / "directory.yaml", tmp_path / "directory" / "directory.yaml")
    _clean_env(monkeypatch)
    monkeypatch.setenv("CRM_GATEWAY__BASE_DIR", str(tmp_path))
    monkeypatch.setenv("CRM_GATEWAY__REDIS__URL", "redis://:pw@redis:6379/0")
    _production_secrets(monkeypatch, tmp_path / "audit" / "seal-ed25519.pem")
    path = tmp_path / "config" / "gateway.yaml"
    assert check_config(path) == []
    settings = load_settings(path)
    assert settings.path(settings.classification.taxonomy) == tmp_path / "config" / "taxonomy.yaml"
    assert settings.path(settings.classification.catalog) == tmp_path / "config" / "catalog.yaml"
    assert settings.path(settings.identity.directory).parent == tmp_path / "directory"
    assert settings.environment == "production" and settings.policy.engine == "external"
    assert settings.policy.url == "http://127.0.0.1:8181"
    mounts = {m["mountPath"] for m in _gateway_containers()[0]["volumeMounts"]}
    assert {"/etc/crm-gateway/config", "/etc/crm-gateway/directory"} <= mounts
    assert _gateway_containers()[0]["args"][2] == "/etc/crm-gateway/config/gateway.yaml"


def test_a_broken_k8s_config_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (configmap,) = _docs(K8S / "configmap.yaml")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "gateway.yaml").write_text(configmap["data"]["gateway.yaml"])
    _clean_env(monkeypatch)
    monkeypatch.setenv("CRM_GATEWAY__BASE_DIR", str(tmp_path))
    monkeypatch.setenv("CRM_GATEWAY__REDIS__URL", "redis://:pw@redis:6379/0")
    problems = check_config(tmp_path / "config" / "gateway.yaml")
    # (config/taxonomy.yaml would fall back to the source tree here, not in the image.)
    assert any(p.startswith("classification.catalog:") for p in problems)
    assert any(p.startswith("identity.directory:") for p in problems)


def test_opa_config_is_the_same_in_both_places_and_signed() -> None:
    plain = _docs(DEPLOY / "opa" / "opa-config.yaml")[0]
    (configmap,) = _docs(K8S / "opa-config.yaml")
    assert yaml.safe_load(configmap["data"]["opa-config.yaml"]) == plain
    bundle = plain["bundles"]["crm"]
    assert bundle["service"] in plain["services"]
    assert bundle["persist"] is True
    assert bundle["polling"]["max_delay_seconds"] <= 60
    assert bundle["signing"]["keyid"] in plain["keys"]
    assert "decision_logs" not in plain
    assert plain["persistence_directory"] == "/var/opa"


def test_bundle_script_matches_the_rego_readme() -> None:
    script = (DEPLOY / "opa" / "build-bundle.sh").read_text(encoding="utf-8")
    for flag in ("--bundle rego", "--ignore '*_test.rego'", '--revision "$revision"'):
        assert flag in script
    assert "--signing-key" in script and "--signing-alg RS256" in script
    assert "--verification-key" in script
    assert "git rev-parse HEAD" in script
    assert (DEPLOY / "opa" / "build-bundle.sh").stat().st_mode & 0o111


def _dockerfile() -> list[str]:
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def test_dockerfile_builds_a_non_root_gateway_image() -> None:
    lines = _dockerfile()
    froms = [i for i, ln in enumerate(lines) if ln.startswith("FROM ")]
    assert len(froms) >= 2
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines
    final = lines[froms[-1] :]
    users = [ln.split()[1] for ln in final if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "EXPOSE 8080" in final
    assert 'ENTRYPOINT ["crm-gateway"]' in final
    (cmd,) = [ln for ln in final if ln.startswith("CMD ")]
    assert cmd.startswith('CMD ["serve"')
    (health,) = [ln for ln in final if ln.startswith("HEALTHCHECK ")]
    assert "/_gateway/health" in health and "urllib" in health
    assert any(ln.startswith("COPY rego/") for ln in final)
    assert any(ln.startswith("COPY config/") for ln in final)
    assert any("pip install" in ln for ln in final)
    # the compiled detectors: built in the first stage (cargo stays there), and the
    # image fails to build rather than ship without them
    build = lines[froms[0] : froms[-1]]
    assert any("apt-get install" in ln and "cargo" in ln for ln in build)
    assert any(ln.startswith("COPY native/") for ln in build)
    assert not any("cargo" in ln for ln in final)
    assert any("from gateway.core import _native" in ln for ln in final)
    copied_config = [ln for ln in final if "deploy/config/gateway.yaml" in ln]
    assert copied_config and "/etc/crm-gateway/gateway.yaml" in copied_config[0]


def test_dockerignore_keeps_secrets_and_tests_out() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", "tests/", ".env", "*.key", "*.pem"):
        assert entry in ignored
    assert "!deploy/config/gateway.yaml" in ignored
