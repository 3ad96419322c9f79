"""`crm-gateway serve --workers 2`: two processes share the port and stop together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from tests.conftest import free_port, stop_process, wait_for_port
from tests.integration.gateway_harness import write_directory

ROOT = Path(__file__).resolve().parents[2]


def _workers(pid: int) -> list[int]:
    """Worker processes of the server (not multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


async def test_two_workers_share_the_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    crm_port, gw_port = free_port(), free_port()
    crm = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from gateway.demo.crm import run_demo_crm; run_demo_crm('127.0.0.1', {crm_port})",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "base_dir": str(ROOT),
                "listen": {"host": "127.0.0.1", "port": gw_port, "workers": 2},
                "upstream": {"url": f"http://127.0.0.1:{crm_port}"},
                "identity": {"directory": str(write_directory(tmp_path / "directory.yaml"))},
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
    gw = subprocess.Popen(
        [str(Path(sys.executable).parent / "crm-gateway"), "serve", "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(crm_port, proc=crm)
        wait_for_port(gw_port, timeout=30, proc=gw)
        time.sleep(1.0)  # the second worker binds its own socket (SO_REUSEPORT)
        workers = _workers(gw.pid)
        assert len(workers) == 2, workers
        async with aiohttp.ClientSession() as s:
            for _ in range(40):
                async with s.get(
                    f"http://127.0.0.1:{gw_port}/api/customers?page_size=2",
                    headers={"Authorization": "Bearer test-sales-key"},
                ) as r:
                    assert r.status == 200
                    assert "application/json" in r.headers["Content-Type"]
        os.kill(gw.pid, signal.SIGTERM)
        assert gw.wait(timeout=20) == 0
        assert all(not Path(f"/proc/{w}").exists() for w in workers)
    finally:
        stop_process(gw)
        stop_process(crm)


def test_unreachable_redis_refuses_to_start_with_one_clear_line(tmp_path: Path) -> None:
    """No traceback, no leaked sessions, the password never printed; both serving modes."""
    dead = free_port()  # nothing listens there
    for workers in (1, 2):
        cfg = tmp_path / f"gateway-{workers}.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "base_dir": str(tmp_path),
                    "upstream": {"url": "http://127.0.0.1:9"},
                    "listen": {"host": "127.0.0.1", "port": free_port(), "workers": workers},
                    "redis": {"url": f"redis://:hunter2@127.0.0.1:{dead}/0"},
                    "policy": {"engine": "static"},
                    "audit": {"sinks": ["file"], "file": str(tmp_path / "audit.jsonl")},
                }
            ),
            encoding="utf-8",
        )
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
        assert done.returncode != 0
        assert f"error: redis.url: cannot use redis://:***@127.0.0.1:{dead}/0" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert "Unclosed" not in done.stderr + done.stdout
        assert "hunter2" not in done.stderr + done.stdout
