"""Launchers for the systems under test: fixture CRM, nginx, plain aiohttp proxy, gateway.

Every server binds 127.0.0.1 on a free port and is returned as a `procs.Proc`
that the caller stops by PID. Temporary files (nginx prefix, gateway settings,
catalog, audit log) live under the run's work directory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from bench.procs import Proc, free_port, start

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable

# Demo directory keys (config/directory.yaml's comment block): a low-clearance
# sales user (L2: masking applies) and the security admin (L4: classify only,
# only the L5 credential field is touched).
KEYS = {"mask": "demo-sales-key", "allow": "demo-admin-key"}
EXPORT_ROUTE = {
    "name": "bench_export_json",
    "path": "/api/customers/export.json",
    "methods": ["GET"],
    "records": ["item"],
}


def upstream(workdir: Path, cpus: set[int] | None = None) -> Proc:
    port = free_port()
    return start(
        "upstream",
        [PY, str(BENCH / "upstream.py"), "--port", str(port)],
        port,
        workdir,
        cpus=cpus,
        timeout=60,
    )


def plain_proxy(
    workdir: Path, upstream_port: int, workers: int, cpus: set[int] | None = None
) -> Proc:
    port = free_port()
    argv = [PY, str(BENCH / "plain_proxy.py"), "--upstream", f"http://127.0.0.1:{upstream_port}"]
    argv += ["--port", str(port), "--workers", str(workers)]
    proc = start(f"plain-w{workers}", argv, port, workdir, cpus=cpus)
    _wait_workers(proc, workers)
    return proc


def nginx(workdir: Path, upstream_port: int, workers: int, cpus: set[int] | None = None) -> Proc:
    prefix = workdir / f"nginx-w{workers}"
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = (BENCH / "nginx.conf.tmpl").read_text()
    for k, v in {
        "workers": workers,
        "prefix": prefix,
        "upstream_port": upstream_port,
        "port": port,
    }.items():
        conf = conf.replace("{" + k + "}", str(v))
    (prefix / "nginx.conf").write_text(conf)
    argv = [
        "nginx",
        "-p",
        str(prefix),
        "-c",
        str(prefix / "nginx.conf"),
        "-e",
        str(prefix / "error.log"),
    ]
    return start(f"nginx-w{workers}", argv, port, workdir, cpus=cpus)


def bench_catalog(workdir: Path) -> Path:
    """The demo catalog plus a route for the fixture's streamed JSON export."""
    catalog: dict[str, Any] = yaml.safe_load((ROOT / "config" / "crm" / "demo.yaml").read_text())
    catalog["routes"] = [*catalog["routes"], EXPORT_ROUTE]
    path = workdir / "bench-catalog.yaml"
    path.write_text(yaml.safe_dump(catalog, allow_unicode=True, sort_keys=False))
    return path


def gateway_settings(
    workdir: Path,
    name: str,
    upstream_port: int,
    port: int,
    *,
    workers: int,
    engine: str,
    cache_size: int,
    floor: bool = False,
) -> Path:
    state = workdir / name
    routes: list[dict[str, Any]] = [{"path": "/api/health", "public": True, "sensitive": False}]
    if floor:
        # The floor: customer pages on a route that is not sensitive, so the gateway
        # authenticates, guards, relays and audits them but neither parses nor masks.
        routes.append({"path": "/api/customers*", "sensitive": False})
    state.mkdir(parents=True, exist_ok=True)
    settings = {
        "environment": "development",
        "base_dir": str(ROOT),
        "listen": {"host": "127.0.0.1", "port": port, "workers": workers},
        "upstream": {"url": f"http://127.0.0.1:{upstream_port}", "pool_size": 100},
        "routes": routes,
        "identity": {"directory": str(ROOT / "config" / "directory.yaml")},
        "policy": {"engine": engine, "rego_dir": str(ROOT / "rego"), "cache_size": cache_size},
        "classification": {
            "taxonomy": str(ROOT / "config" / "taxonomy.yaml"),
            "catalog": str(bench_catalog(workdir)),
        },
        "audit": {
            "sinks": ["file"],
            "file": str(state / "audit.jsonl"),
            "spool_dir": str(state / "spool"),
            "dev_key_file": str(state / "dev-hmac.key"),
            "seal_key_file": str(state / "seal.pem"),
        },
        "logging": {"level": "warning", "format": "json"},
    }
    path = state / "gateway.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def gateway(
    workdir: Path,
    upstream_port: int,
    *,
    workers: int = 1,
    engine: str = "static",
    cache_size: int = 10_000,
    cpus: set[int] | None = None,
    profile_out: Path | None = None,
    floor: bool = False,
) -> Proc:
    """`crm-gateway serve` on its own settings file (or under pyinstrument if profile_out).

    `floor`: customer pages are not sensitive (see `gateway_settings`)."""
    name = f"gateway-{engine}-c{cache_size}-w{workers}" + ("-profiled" if profile_out else "")
    name += "-floor" if floor else ""
    port = free_port()
    cfg = gateway_settings(
        workdir,
        name,
        upstream_port,
        port,
        workers=workers,
        engine=engine,
        cache_size=cache_size,
        floor=floor,
    )
    if profile_out is None:
        argv = [PY, "-m", "gateway.cli", "serve", "--config", str(cfg)]
    else:
        argv = [PY, str(BENCH / "profiled_gateway.py"), str(cfg), str(profile_out)]
    env = {"PYTHONPATH": str(ROOT)}
    proc = start(name, argv, port, workdir, env=env, cpus=cpus, timeout=60)
    _wait_workers(proc, workers)
    proc.extra["settings"] = str(cfg)
    return proc


def _wait_workers(proc: Proc, workers: int) -> None:
    """With several workers the port answers before all have bound it: give them a moment."""
    if workers > 1:
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(proc.pids()) < workers + 1:
            time.sleep(0.1)
        time.sleep(1.0)
