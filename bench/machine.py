"""The machine description printed next to every benchmark figure."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    return (done.stdout or done.stderr).strip()


def _cpuinfo() -> dict[str, Any]:
    info: dict[str, Any] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key in ("model name", "cpu MHz", "cache size", "flags") and key not in info:
                info[key] = value if key != "flags" else ("avx2" in value.split())
    info["avx2"] = info.pop("flags", None)
    return info


def _version(module: str) -> str:
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        return version(module)
    return "not installed"


def _opa() -> str:
    for candidate in (ROOT / ".tools" / "bin" / "opa", Path("/usr/local/bin/opa")):
        if candidate.exists():
            return _run([str(candidate), "version"]).splitlines()[0]
    return "not found"


def describe() -> dict[str, Any]:
    return {
        "cpu": _cpuinfo(),
        "nproc": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "free": _run(["free", "-m"]),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {
            "aiohttp": _version("aiohttp"),
            "uvloop": _version("uvloop"),
            "orjson": _version("orjson"),
            "opa": _opa(),
            "nginx": _run(["nginx", "-v"]),
            "wrk": _run(["wrk", "-v"]).splitlines()[0] if _run(["wrk", "-v"]) else "?",
        },
        "git": _run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"]),
    }
