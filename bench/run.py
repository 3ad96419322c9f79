"""`make bench`: every figure of bench/REPORT.md from one run on this machine.

    .venv/bin/python bench/run.py [--full] [--export-bytes N] [--skip-micro] [--skip-gateway]

QUICK (default, <= 10 minutes) and FULL profiles differ only in durations,
connection counts and the export size. The run starts the fixture CRM
(bench/upstream.py), then each configuration in turn (direct, nginx, a plain
aiohttp proxy, the gateway in several set-ups), loads it with wrk, reads the
proxy's CPU time and peak RSS from /proc, and stops it by PID before the next.
Results go to bench/results/<timestamp>.json and latest.json; bench/report.py
turns them into bench/REPORT.md and PNG plots.

CPU placement on a 2-core machine: load generator, upstream and proxy compete
for two cores. One-worker configurations are pinned: the system under test on
CPU 0, wrk and the upstream on CPU 1 (for "direct" the upstream is the system
under test). Two-worker comparisons run unpinned, and their one-worker
references are re-run unpinned too, so each ratio compares equal conditions.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load, servers
from bench.machine import describe
from bench.procs import Proc

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
SUT_CPU, LOAD_CPU, ALL = {0}, {1}, {0, 1}
PAGE = "/api/customers?page_size={n}"
PROFILE_SECONDS = 8
PHASES = ("sweeps", "workers", "opa", "fixed-rate", "export", "profile", "micro")


@dataclass(frozen=True)
class Profile:
    name: str
    seconds: float  # per repeat; the best of `repeats` is kept (see Bench.load)
    repeats: int
    warmup: float
    records: tuple[int, ...]
    conns: tuple[int, ...]
    sweep_conns: int
    fixed_seconds: float
    export_bytes: int
    micro_args: tuple[str, ...]
    policy_args: tuple[str, ...]


QUICK = Profile(
    name="quick",
    seconds=2,
    repeats=3,
    warmup=1,
    records=(1, 20, 100, 1000),
    conns=(1, 16, 64),
    sweep_conns=16,
    fixed_seconds=10,
    export_bytes=200 << 20,
    micro_args=("--benchmark-min-rounds=5", "--benchmark-max-time=0.3"),
    policy_args=("--misses", "300", "--hits", "20000"),
)
FULL = Profile(
    name="full",
    seconds=5,
    repeats=3,
    warmup=3,
    records=(1, 20, 100, 1000),
    conns=(1, 4, 16, 64, 128),
    sweep_conns=32,
    fixed_seconds=30,
    export_bytes=1 << 30,
    micro_args=(),
    policy_args=("--misses", "2000", "--hits", "100000"),
)


class Bench:
    """One run: the upstream, the result document, and the helpers that fill it."""

    def __init__(self, profile: Profile, workdir: Path) -> None:
        self.p = profile
        self.workdir = workdir
        self.up: Proc | None = None
        self.doc: dict[str, Any] = {"runs": [], "fixed_rate": [], "errors": []}

    @property
    def upstream(self) -> Proc:
        assert self.up is not None
        return self.up

    def log(self, msg: str) -> None:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)

    @contextlib.contextmanager
    def system(self, name: str, launch: Callable[[], Proc] | None, pinned: bool) -> Iterator[Proc]:
        """Start a proxy (None: direct to the upstream), place CPUs, stop it afterwards."""
        proc = launch() if launch else self.upstream
        if launch is None:
            self.upstream.pin(SUT_CPU if pinned else ALL)
        else:
            self.upstream.pin(LOAD_CPU if pinned else ALL)
            proc.pin(SUT_CPU if pinned else ALL)
        self.log(f"{name}: up (pid {proc.pid}, {'pinned' if pinned else 'unpinned'})")
        try:
            yield proc
        finally:
            if launch is not None:
                proc.stop()

    def load(
        self, config: str, proc: Proc, key: str, path: str, conns: int, pinned: bool, **tags: Any
    ) -> dict[str, Any]:
        """Warm up, then `repeats` short wrk runs; keep the fastest, record the spread.

        Other processes on a shared machine steal CPU in bursts; the best of a few
        short runs estimates what the system under test can do, and `reps_rps`
        shows how noisy the point was.
        """
        cpus = LOAD_CPU if pinned else None
        load.wrk(proc.port, path, key, conns, self.p.warmup, cpus=cpus)
        reps = [
            load.measured_wrk([proc], proc.port, path, key, conns, self.p.seconds, cpus)
            for _ in range(self.p.repeats)
        ]
        res = max(reps, key=lambda r: r["rps"])
        res["reps_rps"] = [round(r["rps"]) for r in reps]
        res.update(config=config, path=path, conns=conns, pinned=pinned, **tags)
        res["loadavg_1m"] = round(os.getloadavg()[0], 2)
        upstream_cpu = ("0" if config == "direct" else "1") if pinned else "0-1"
        res["cpus"] = {
            "sut": "0" if pinned else "0-1",
            "wrk": "1" if pinned else "0-1",
            "upstream": upstream_cpu,
        }
        self.doc["runs"].append(res)
        lat = res["latency_us"]
        self.log(
            f"  {config:<22} {path:<42} c={conns:<3} {res['rps']:8.0f} req/s  p50 {lat['p50']}us "
            f"p99 {lat['p99']}us reps {res['reps_rps']} cpu/req {res['cpu_us_per_req']}us "
            f"load {res['loadavg_1m']} err { {k: v for k, v in res['errors'].items() if v} }"
        )
        return res

    def guarded(self, what: str, fn: Callable[[], None]) -> None:
        """A failing phase is recorded and reported; the others still run."""
        try:
            fn()
        except Exception as exc:
            self.log(f"{what} FAILED: {exc}")
            self.doc["errors"].append(
                {
                    "phase": what,
                    "error": f"{type(exc).__name__}: {exc}",
                    "trace": traceback.format_exc()[-3000:],
                }
            )


def _gateway(b: Bench, **kw: Any) -> Callable[[], Proc]:
    return lambda: servers.gateway(b.workdir, b.upstream.port, **kw)


def one_worker_configs(b: Bench) -> list[tuple[str, Callable[[], Proc] | None, str]]:
    return [
        ("direct", None, ""),
        ("nginx-w1", lambda: servers.nginx(b.workdir, b.upstream.port, 1), ""),
        ("plain-w1", lambda: servers.plain_proxy(b.workdir, b.upstream.port, 1), ""),
        ("gw-mask-w1", _gateway(b), servers.KEYS["mask"]),
        ("gw-allow-w1", _gateway(b), servers.KEYS["allow"]),
        ("gw-floor-w1", _gateway(b, floor=True), servers.KEYS["mask"]),
    ]


def phase_sweeps(b: Bench, include_gateway: bool) -> None:
    """Throughput vs record count, connection sweep, CSV: one-worker systems, pinned."""
    for config, launch, key in one_worker_configs(b):
        if config.startswith("gw-") and not include_gateway:
            continue

        def run(config: str = config, launch: Any = launch, key: str = key) -> None:
            with b.system(config, launch, pinned=True) as proc:
                for n in b.p.records:
                    b.load(
                        config,
                        proc,
                        key,
                        PAGE.format(n=n),
                        b.p.sweep_conns,
                        True,
                        records=n,
                        workers=1,
                    )
                for c in b.p.conns:
                    if c != b.p.sweep_conns:
                        b.load(config, proc, key, PAGE.format(n=20), c, True, records=20, workers=1)
                b.load(
                    config,
                    proc,
                    key,
                    "/api/customers/export.csv",
                    b.p.sweep_conns,
                    True,
                    records=1000,
                    workers=1,
                    kind="csv",
                )

        b.guarded(f"sweep {config}", run)


def phase_workers(b: Bench, include_gateway: bool) -> None:
    """1 vs 2 workers, unpinned (equal conditions for the ratio)."""
    conns = max(b.p.conns)
    systems: list[tuple[str, Callable[[], Proc], str, int]] = [
        ("nginx-w2", lambda: servers.nginx(b.workdir, b.upstream.port, 2), "", 2),
    ]
    for w in (1, 2):
        plain = functools.partial(servers.plain_proxy, b.workdir, b.upstream.port, w)
        systems.append((f"plain-w{w}", plain, "", w))
        if include_gateway:
            systems.append((f"gw-mask-w{w}", _gateway(b, workers=w), servers.KEYS["mask"], w))
    for config, launch, key, w in systems:

        def run(config: str = config, launch: Any = launch, key: str = key, w: int = w) -> None:
            with b.system(config, launch, pinned=False) as proc:
                b.load(
                    config,
                    proc,
                    key,
                    PAGE.format(n=20),
                    conns,
                    False,
                    records=20,
                    workers=w,
                    kind="workers",
                )

        b.guarded(f"workers {config}", run)


def phase_opa(b: Bench) -> None:
    """The gateway with a real OPA: decision cache warm, and disabled (every request asks OPA)."""
    for config, cache in (("gw-mask-opa-warm-w1", 10_000), ("gw-mask-opa-cold-w1", 0)):

        def run(config: str = config, cache: int = cache) -> None:
            with b.system(
                config, _gateway(b, engine="managed", cache_size=cache), pinned=True
            ) as proc:
                for c in (1, b.p.sweep_conns):
                    b.load(
                        config,
                        proc,
                        servers.KEYS["mask"],
                        PAGE.format(n=20),
                        c,
                        True,
                        records=20,
                        workers=1,
                        kind="opa",
                    )

        b.guarded(f"opa {config}", run)


def max_rps(b: Bench, config: str) -> float:
    rows = [
        r for r in b.doc["runs"] if r["config"] == config and r.get("records") == 20 and r["pinned"]
    ]
    return max((r["rps"] for r in rows), default=0.0)


def phase_fixed_rate(b: Bench, include_gateway: bool) -> None:
    """Open-loop p99 at 50% of the masked gateway's max (direct and plain at the same rate)."""
    ref = "gw-mask-w1" if include_gateway else "plain-w1"
    rate = 0.5 * max_rps(b, ref)
    if rate <= 0:
        raise RuntimeError(f"no throughput measured for {ref}")
    b.doc["fixed_rate_reference"] = {"config": ref, "max_rps": max_rps(b, ref), "rate": rate}
    for config, launch, key in one_worker_configs(b):
        if config not in ("direct", "plain-w1", "gw-mask-w1") or (
            config.startswith("gw") and not include_gateway
        ):
            continue

        def run(config: str = config, launch: Any = launch, key: str = key) -> None:
            with b.system(config, launch, pinned=True) as proc:
                path = PAGE.format(n=20)
                load.wrk(proc.port, path, key, 16, b.p.warmup, cpus=LOAD_CPU)
                before = proc.snapshot()
                res = load.fixed_rate(proc.port, path, key, rate, b.p.fixed_seconds, LOAD_CPU)
                cpu = proc.snapshot().cpu_since(before)
                res.update(config=config, path=path, cpu_util=round(cpu / b.p.fixed_seconds, 3))
                b.doc["fixed_rate"].append(res)
                lat = res["latency_us"]
                b.log(
                    f"  fixed {config}: {res['achieved_rate']}/s of {rate:.0f}/s p50 "
                    f"{lat['p50']}us p99 {lat['p99']}us errors {res['errors']}"
                )

        b.guarded(f"fixed-rate {config}", run)


def stream_export(b: Bench, port: int, key: str, nbytes: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/customers/export.json?bytes={nbytes}"
    argv = [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download} %{time_total}",
        url,
    ]
    if key:
        argv[1:1] = ["-H", f"X-Api-Key: {key}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    status, size, secs = done.stdout.split()
    return {
        "status": int(status),
        "bytes": int(size),
        "seconds": float(secs),
        "mb_per_s": round(int(size) / float(secs) / 1e6, 1) if float(secs) else 0.0,
    }


def phase_export(b: Bench) -> None:
    """Stream the upstream's large JSON array: direct, then through the masking gateway."""
    n = b.p.export_bytes
    out: dict[str, Any] = {"requested_bytes": n}
    b.upstream.pin(ALL)
    out["direct"] = stream_export(b, b.upstream.port, "", n)
    b.log(f"  export direct: {out['direct']}")
    with b.system("gw-mask-export", _gateway(b), pinned=False) as proc:
        before = proc.snapshot()
        res = stream_export(b, proc.port, servers.KEYS["mask"], n)
        res["cpu_s"] = round(proc.snapshot().cpu_since(before), 2)
        res["peak_rss_mb"] = {k: round(v, 1) for k, v in proc.peak_rss_mb().items()}
        out["gateway_mask"] = res
        b.log(f"  export via gateway: {res}")
    b.doc["export"] = out


def phase_profile(b: Bench) -> None:
    """pyinstrument on the one-worker gateway under load, masked pages of 20 and 1 records.

    The profiler starts on SIGUSR1 after a warm-up, samples for a fixed time
    under wrk, and writes its files when the gateway is stopped. The 1-record
    profile isolates the fixed per-request cost from the per-record cost.
    """
    b.doc["profile"] = {}
    for n in (20, 1):
        out = RESULTS / f"profile-{n}.txt"
        for stale in (out, out.with_suffix(".html"), out.with_suffix(".top.json")):
            stale.unlink(missing_ok=True)
        launch = functools.partial(servers.gateway, b.workdir, b.upstream.port, profile_out=out)
        key, path = servers.KEYS["mask"], PAGE.format(n=n)
        with b.system(f"gw-mask-profiled-{n}", launch, pinned=True) as proc:
            load.wrk(proc.port, path, key, b.p.sweep_conns, b.p.warmup + 1, cpus=LOAD_CPU)
            os.kill(proc.pid, signal.SIGUSR1)
            res = load.wrk(proc.port, path, key, b.p.sweep_conns, PROFILE_SECONDS, cpus=LOAD_CPU)
            b.doc["profile"][str(n)] = {
                "rps_under_profiler": res["rps"],
                "seconds": PROFILE_SECONDS,
                "file": str(out.relative_to(BENCH.parent)),
            }
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not out.with_suffix(".top.json").exists():
            time.sleep(0.2)
        b.log(f"  profile {out.name} written: {out.exists()}")


def phase_micro(b: Bench) -> None:
    """pytest-benchmark micro benchmarks (bench/micro) and the policy stage bench."""
    out = b.workdir / "micro.json"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(BENCH / "micro"),
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-only",
        f"--benchmark-json={out}",
        *b.p.micro_args,
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=900, check=False, cwd=str(BENCH.parent)
    )
    b.doc["micro_exit"] = done.returncode
    if out.exists():
        data = json.loads(out.read_text())
        b.doc["micro"] = [
            {
                "name": m["fullname"].split("bench/micro/")[-1],
                "median_us": round(m["stats"]["median"] * 1e6, 2),
                "mean_us": round(m["stats"]["mean"] * 1e6, 2),
                "rounds": m["stats"]["rounds"],
            }
            for m in data["benchmarks"]
        ]
    else:
        b.doc["errors"].append(
            {"phase": "micro", "error": done.stdout[-3000:] + done.stderr[-2000:]}
        )
    pol = b.workdir / "policy.json"
    argv = [sys.executable, str(BENCH / "policy_bench.py"), *b.p.policy_args, "--json", str(pol)]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=900, check=False, cwd=str(BENCH.parent)
    )
    if pol.exists():
        b.doc["policy_bench"] = json.loads(pol.read_text())
    else:
        b.doc["errors"].append(
            {"phase": "policy_bench", "error": done.stdout[-2000:] + done.stderr[-2000:]}
        )
    cost = b.workdir / "audit_cost.json"
    argv = [sys.executable, str(BENCH / "audit_cost.py"), "--json", str(cost)]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=900, check=False, cwd=str(BENCH.parent)
    )
    if cost.exists():
        b.doc["audit_cost"] = json.loads(cost.read_text())
    else:
        b.doc["errors"].append(
            {"phase": "audit_cost", "error": done.stdout[-2000:] + done.stderr[-2000:]}
        )


def gateway_starts(b: Bench) -> bool:
    try:
        with b.system("gateway smoke test", _gateway(b), pinned=False) as proc:
            res = load.wrk(proc.port, PAGE.format(n=20), servers.KEYS["mask"], 1, 1)
            if res["requests"] == 0 or res["errors"]["status"]:
                raise RuntimeError(f"gateway answers with errors: {res['errors']} (see {proc.log})")
        return True
    except Exception as exc:
        b.log(f"gateway unavailable, gateway phases skipped: {exc}")
        b.doc["errors"].append({"phase": "gateway start", "error": str(exc)[-3000:]})
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description="crm-gateway benchmarks (writes bench/REPORT.md)")
    ap.add_argument(
        "--full", action="store_true", help="longer runs, more connections, 1 GB export"
    )
    ap.add_argument(
        "--export-bytes", type=int, help="size of the streamed export (default 200 MB / 1 GB)"
    )
    ap.add_argument("--skip-micro", action="store_true")
    ap.add_argument(
        "--phases",
        help=f"comma-separated subset of {','.join(PHASES)} (for development; "
        "a partial run still writes results/latest.json and REPORT.md)",
    )
    ap.add_argument("--skip-gateway", action="store_true", help="baselines only")
    ap.add_argument("--keep-workdir", action="store_true")
    args = ap.parse_args()
    profile = FULL if args.full else QUICK
    if args.export_bytes:
        profile = Profile(**{**profile.__dict__, "export_bytes": args.export_bytes})
    for tool in ("wrk", "nginx", "curl", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} is required (Debian: apt-get install {tool})", file=sys.stderr)
            return 1
    RESULTS.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    b = Bench(profile, workdir)
    started = datetime.now(UTC)
    b.doc["meta"] = {
        "started": started.isoformat(timespec="seconds"),
        "profile": profile.__dict__,
        "machine": describe(),
        "pinning": (__doc__ or "").split("CPU placement")[1].strip(),
    }
    b.doc["meta"]["loadavg"] = {"start": round(os.getloadavg()[0], 2)}
    b.log(f"profile {profile.name}; work dir {workdir}")
    try:
        b.up = servers.upstream(workdir)
        gw = not args.skip_gateway and gateway_starts(b)
        want = set(args.phases.split(",")) if args.phases else set(PHASES)
        if args.skip_micro:
            want.discard("micro")
        if "sweeps" in want:
            phase_sweeps(b, gw)
        if "workers" in want:
            b.guarded("workers", lambda: phase_workers(b, gw))
        if gw and "opa" in want:
            b.guarded("opa", lambda: phase_opa(b))
        if "fixed-rate" in want:
            b.guarded("fixed-rate", lambda: phase_fixed_rate(b, gw))
        if gw and "export" in want:
            b.guarded("export", lambda: phase_export(b))
        if gw and "profile" in want:
            b.guarded("profile", lambda: phase_profile(b))
        if "micro" in want:
            b.guarded("micro", lambda: phase_micro(b))
    finally:
        if b.up is not None:
            b.up.stop()
        b.doc["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        b.doc["meta"]["loadavg"]["end"] = round(os.getloadavg()[0], 2)
        b.doc["meta"]["gateway_measured"] = bool(
            not args.skip_gateway and any(r["config"].startswith("gw-") for r in b.doc["runs"])
        )
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        text = json.dumps(b.doc, indent=1, ensure_ascii=False)
        if args.phases:  # a partial run never replaces the full figures
            stamp = f"partial-{stamp}"
        (RESULTS / f"{stamp}.json").write_text(text)
        if not args.phases:
            (RESULTS / "latest.json").write_text(text)
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.phases:
        b.log(f"partial run: bench/results/{stamp}.json (REPORT.md and latest.json unchanged)")
        return 0
    from bench.report import write_report

    write_report(b.doc, BENCH / "REPORT.md", RESULTS)
    b.log(
        f"done in {(datetime.now(UTC) - started).total_seconds():.0f}s: bench/REPORT.md, "
        f"bench/results/{stamp}.json"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
