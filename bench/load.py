"""Load generators as subprocesses: wrk (closed loop) and bench/fixed_rate.py (open loop).

Both print one `BENCH_JSON {...}` line; this module runs them bounded in time,
pinned to the load generator's CPUs, and returns the parsed dict. The system
under test's CPU time is read from /proc around the run, so CPU per request
covers exactly the measured interval.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.procs import Proc, Snapshot

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "wrk" / "load.lua"


def _cpu_prefix(cpus: set[int] | None) -> list[str]:
    return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus))] if cpus else []


def _parse(out: str, argv: list[str]) -> dict[str, Any]:
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            parsed: dict[str, Any] = json.loads(line[len("BENCH_JSON ") :])
            return parsed
    raise RuntimeError(f"no BENCH_JSON line from {' '.join(argv)}:\n{out[-2000:]}")


def accept_for(path: str) -> str:
    """What a client of `path` accepts: the gateway answers a route only in the types
    its catalog declares (406 otherwise), and the CSV export declares text/csv."""
    return "text/csv" if path.split("?")[0].endswith(".csv") else "application/json"


def wrk(
    port: int,
    path: str,
    key: str,
    conns: int,
    seconds: float,
    *,
    threads: int = 1,
    cpus: set[int] | None = None,
) -> dict[str, Any]:
    threads = max(1, min(threads, conns))
    argv = [
        *_cpu_prefix(cpus),
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
    ]
    env = {
        "BENCH_KEY": key,
        "BENCH_PATH": path,
        "BENCH_ACCEPT": accept_for(path),
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
    }
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=seconds + 30, check=False
    )
    result = _parse(done.stdout, argv)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def measured_wrk(
    sut: list[Proc],
    port: int,
    path: str,
    key: str,
    conns: int,
    seconds: float,
    cpus: set[int] | None,
) -> dict[str, Any]:
    """wrk plus the CPU seconds the system under test spent, and its peak RSS."""
    pids = [p for proc in sut for p in proc.pids()]
    before = Snapshot.take(pids)
    result = wrk(port, path, key, conns, seconds, cpus=cpus)
    after = Snapshot.take(pids)
    cpu = after.cpu_since(before)
    wall = after.at - before.at
    ok = result["requests"] - result["errors"]["status"]
    result["sut_cpu_s"] = round(cpu, 3)
    result["sut_cpu_util"] = round(cpu / wall, 3) if wall else 0.0
    result["cpu_us_per_req"] = round(cpu / ok * 1e6, 1) if ok else None
    rss: dict[str, float] = {}
    for proc in sut:
        rss.update(proc.peak_rss_mb())
    result["peak_rss_mb"] = {k: round(v, 1) for k, v in rss.items()}
    return result


def fixed_rate(
    port: int, path: str, key: str, rate: float, seconds: float, cpus: set[int] | None
) -> dict[str, Any]:
    argv = [
        *_cpu_prefix(cpus),
        sys.executable,
        str(BENCH / "fixed_rate.py"),
        "--url",
        f"http://127.0.0.1:{port}{path}",
        "--rate",
        f"{rate:.1f}",
        "--seconds",
        str(seconds),
        "--key",
        key,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    return _parse(done.stdout + done.stderr, argv)
