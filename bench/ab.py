"""Two points, side by side: the plain proxy, the gateway floor and the masking gateway
on the 20-record page, and the plain proxy and the masking gateway on the 1,000-row
CSV export, pinned as in run.py, for measuring one change at a time.

    .venv/bin/python bench/ab.py [--seconds 3] [--rounds 3] [--conns 16] [--profile floor]

Each round loads every system in turn (so a burst of foreign load hits all of them
alike) and the best round per system is reported with its CPU per request, the
number to compare between revisions. `--profile floor|mask|csv` writes a
pyinstrument profile of that gateway (csv: the masked 1,000-row export) to
bench/results/profile-ab-<which>.txt instead. Not part of
`make bench`; REPORT.md comes from run.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load, servers
from bench.procs import Proc

SUT_CPU, LOAD_CPU = {0}, {1}
PAGE = "/api/customers?page_size=20"
EXPORT = "/api/customers/export.csv"
RESULTS = Path(__file__).resolve().parent / "results"


def systems(workdir: Path, up: int) -> dict[str, tuple[Callable[[], Proc], str, str]]:
    """name -> (launcher, API key, path); the `-csv` pair is the 1,000-row export."""
    plain = lambda: servers.plain_proxy(workdir, up, 1)  # noqa: E731
    gateway = lambda: servers.gateway(workdir, up)  # noqa: E731
    mask = servers.KEYS["mask"]
    return {
        "plain": (plain, "", PAGE),
        "gw-floor": (lambda: servers.gateway(workdir, up, floor=True), mask, PAGE),
        "gw-mask": (gateway, mask, PAGE),
        "plain-csv": (plain, "", EXPORT),
        "gw-csv": (gateway, mask, EXPORT),
    }


def measure(args: argparse.Namespace, workdir: Path, upstream: Proc) -> None:
    best: dict[str, dict[str, Any]] = {}
    for r in range(args.rounds):
        for name, (launch, key, path) in systems(workdir, upstream.port).items():
            proc = launch()
            try:
                proc.pin(SUT_CPU)
                load.wrk(proc.port, path, key, args.conns, 1, cpus=LOAD_CPU)
                res = load.measured_wrk(
                    [proc], proc.port, path, key, args.conns, args.seconds, LOAD_CPU
                )
            finally:
                proc.stop()
            print(
                f"round {r + 1} {name:<9} {res['rps']:8.0f} req/s  "
                f"cpu/req {res['cpu_us_per_req']} us  p50 {res['latency_us']['p50']} us",
                flush=True,
            )
            if name not in best or res["rps"] > best[name]["rps"]:
                best[name] = res
    load_1m = os.getloadavg()[0]
    print(f"\nbest of {args.rounds} rounds, c={args.conns}, load {load_1m:.2f}")
    for name, res in best.items():
        plain = best["plain-csv" if name.endswith("csv") else "plain"]["rps"]
        errors = sum(res["errors"].values())
        print(
            f"  {name:<9} {res['rps']:8.0f} req/s  {res['cpu_us_per_req']:>7} us CPU/req  "
            f"{100 * res['rps'] / plain:5.1f}% of plain" + (f"  ERRORS {errors}" if errors else "")
        )


def profile(args: argparse.Namespace, workdir: Path, upstream: Proc) -> None:
    out = RESULTS / f"profile-ab-{args.profile}.txt"
    proc = servers.gateway(workdir, upstream.port, profile_out=out, floor=args.profile == "floor")
    path = EXPORT if args.profile == "csv" else PAGE
    try:
        proc.pin(SUT_CPU)
        key = servers.KEYS["mask"]
        load.wrk(proc.port, path, key, args.conns, 2, cpus=LOAD_CPU)
        os.kill(proc.pid, signal.SIGUSR1)
        res = load.wrk(proc.port, path, key, args.conns, 8, cpus=LOAD_CPU)
        print(f"{res['rps']:.0f} req/s under the profiler")
    finally:
        proc.stop()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not out.with_suffix(".top.json").exists():
        time.sleep(0.2)
    print(f"profile: {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--profile", choices=("floor", "mask", "csv"))
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is required (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    RESULTS.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="crm-ab-"))
    upstream = servers.upstream(workdir)
    try:
        upstream.pin(LOAD_CPU)
        (profile if args.profile else measure)(args, workdir, upstream)
    finally:
        upstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
