"""What would the proposed hot-path fixes buy? Measure them before anyone writes them.

    .venv/bin/python bench/whatif.py [--seconds 2] [--repeats 3]

Starts the gateway (static policy, masking caller, one worker pinned to CPU 0)
four times: unchanged, with fix A, with fixes A+B+C, unchanged again (the two
unchanged runs bracket the noise). The fixes are applied by monkeypatching in
this process only, never in gateway/, so the figures show what the real change
should achieve:

- A: free-text detection memoised per text (LRU of 8,192 texts up to 4 KiB);
- B: prometheus label children cached instead of `labels()` on every request;
- C: `ipaddress.ip_address` memoised (the peer address is parsed 3 times per request).

The script is tied to internal names (`gateway.core.enforce._values.detectors`);
when those move it fails loudly rather than measure nothing.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load, servers
from bench.procs import free_port, start


def _patch_detect() -> None:
    from gateway.core import detectors
    from gateway.core.enforce import _values

    if getattr(_values, "detectors", None) is not detectors:
        raise RuntimeError("gateway.core.enforce._values no longer uses detectors.detect")
    original = detectors.detect
    cached = functools.lru_cache(maxsize=8192)(lambda text: tuple(original(text)))

    class Memo:
        def __getattr__(self, name: str) -> Any:
            return getattr(detectors, name)

        @staticmethod
        def detect(text: str) -> list[Any]:
            return list(cached(text)) if len(text) <= 4096 else original(text)

    vars(_values)["detectors"] = Memo()


def _patch_labels() -> None:
    from prometheus_client.metrics import MetricWrapperBase

    plain = MetricWrapperBase.labels

    def labels(self: Any, *args: Any, **kwargs: Any) -> Any:
        cache = self.__dict__.setdefault("_whatif_children", {})
        key = (args, tuple(sorted(kwargs.items())))
        child = cache.get(key)
        if child is None:
            child = cache[key] = plain(self, *args, **kwargs)
        return child

    MetricWrapperBase.labels = labels  # type: ignore[method-assign]


def serve_patched(settings_file: str, fixes: set[str]) -> None:
    """Child mode: apply `fixes`, then run the gateway until SIGTERM."""
    if "A" in fixes:
        _patch_detect()
    if "B" in fixes:
        _patch_labels()
    if "C" in fixes:
        ipaddress.ip_address = functools.lru_cache(maxsize=1024)(ipaddress.ip_address)
    from gateway.server import serve
    from gateway.settings import load_settings

    serve(load_settings(Path(settings_file)), announce=lambda _msg: None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--serve", nargs=2, metavar=("SETTINGS", "FIXES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_patched(args.serve[0], set(args.serve[1].split(",")))
        return
    workdir = Path(tempfile.mkdtemp(prefix="crm-whatif-"))
    up = servers.upstream(workdir)
    up.pin({1})
    key = servers.KEYS["mask"]
    try:
        for name, fixes in (("unchanged", "-"), ("A", "A"), ("A+B+C", "A,B,C"), ("unchanged", "-")):
            port = free_port()
            label = name.replace("+", "")
            cfg = servers.gateway_settings(
                workdir,
                f"whatif-{label}",
                up.port,
                port,
                workers=1,
                engine="static",
                cache_size=10_000,
            )
            argv = [sys.executable, __file__, "--serve", str(cfg), fixes]
            env = {"PYTHONPATH": str(servers.ROOT)}
            proc = start(f"whatif-{label}", argv, port, workdir, env=env, cpus={0}, timeout=60)
            try:
                for n, conns in ((20, 1), (20, 16), (1, 16)):
                    path = f"/api/customers?page_size={n}"
                    load.wrk(proc.port, path, key, conns, 1, cpus={1})
                    runs = [
                        load.measured_wrk([proc], proc.port, path, key, conns, args.seconds, {1})
                        for _ in range(args.repeats)
                    ]
                    best = max(runs, key=lambda r: r["rps"])
                    print(
                        f"{name:<10} {n:>2} records c={conns:<3} {best['rps']:6.0f} req/s  "
                        f"p50 {best['latency_us']['p50'] / 1000:.2f} ms  "
                        f"CPU {best['cpu_us_per_req']} us/req  errors {best['errors']['status']}",
                        flush=True,
                    )
            finally:
                proc.stop()
    finally:
        up.stop()
        if not os.environ.get("BENCH_KEEP"):
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
