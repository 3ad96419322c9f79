"""Processes the benchmark starts: launch, wait for the port, measure, stop by PID.

CPU time and peak RSS come from /proc, summed (CPU) or maxed/summed (RSS) over
a process and its descendants, because the gateway and the aiohttp proxy fork
workers and the managed OPA is a child of the gateway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def children(pid: int) -> list[int]:
    """Direct children of pid (from every thread's children file)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                out += [int(c) for c in text.split()]
    return out


def tree(pid: int) -> list[int]:
    """pid and all its descendants, parents first."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        found.append(p)
        todo += children(p)
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (fields 14 and 15 of /proc/pid/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@dataclass
class Snapshot:
    """CPU seconds per pid of a process tree at one moment."""

    cpu: dict[int, float]
    at: float

    @classmethod
    def take(cls, pids: Sequence[int]) -> Snapshot:
        return cls({p: cpu_seconds(p) for p in pids}, time.monotonic())

    def cpu_since(self, earlier: Snapshot) -> float:
        return sum(v - earlier.cpu.get(p, 0.0) for p, v in self.cpu.items())


@dataclass
class Proc:
    """A started process (and what it forks): measured and stopped by PID."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self) -> list[int]:
        return tree(self.pid)

    def snapshot(self) -> Snapshot:
        return Snapshot.take(self.pids())

    def peak_rss_mb(self) -> dict[str, float]:
        """VmHWM (peak resident set) per process of the tree, in MB, keyed pid:comm."""
        return {f"{p}:{comm(p)}": status_kb(p, "VmHWM") / 1024 for p in self.pids()}

    def pin(self, cpus: set[int]) -> None:
        for p in self.pids():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(p, cpus)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the tree (children first), then SIGKILL what is left, by PID."""
        pids = self.pids()
        for p in reversed(pids):
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        deadline = time.monotonic() + timeout
        for p in pids:
            while time.monotonic() < deadline and Path(f"/proc/{p}").exists():
                if p != self.pid and _zombie(p):
                    break
                time.sleep(0.05)
            with contextlib.suppress(OSError):
                if Path(f"/proc/{p}").exists() and not _zombie(p):
                    os.kill(p, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(2)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def start(
    name: str,
    argv: Sequence[str],
    port: int,
    logdir: Path,
    *,
    env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
    timeout: float = 30.0,
) -> Proc:
    log = logdir / f"{name}.log"
    fh = log.open("ab")
    popen = subprocess.Popen(
        list(argv),
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    fh.close()
    proc = Proc(name, popen, port, log)
    try:
        wait_for_port(port, popen, timeout)
    except RuntimeError as exc:
        proc.stop()
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name}: {exc}\n--- {log} ---\n{tail}") from exc
    if cpus is not None:
        proc.pin(cpus)
    return proc
