"""`crm-gateway demo` as a newcomer runs it: the banner's summary comes from the live
gateway (a purpose changes what the manager sees), and the audit path is printed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _ports() -> tuple[int, int]:
    socks = [socket.socket() for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = (socks[0].getsockname()[1], socks[1].getsockname()[1])
    for s in socks:
        s.close()
    return ports


def test_demo_banner_shows_what_each_user_sees(tmp_path: Path) -> None:
    gw, crm = _ports()
    out = tmp_path / "demo.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "demo", "--listen", f"127.0.0.1:{gw}",
             "--crm-listen", f"127.0.0.1:{crm}"],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ},
        )  # fmt: skip
    try:
        started = time.monotonic()
        while b"Ctrl-C stops everything" not in out.read_bytes():
            assert proc.poll() is None, out.read_text(errors="replace")
            assert time.monotonic() - started < 60, out.read_text(errors="replace")
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    text = out.read_text(errors="replace")
    summary = text[text.index("What each demo user sees") : text.index("Try the same customer")]
    rows = {ln.split("  ")[1].strip(): ln for ln in summary.splitlines() if ln.startswith("  u-")}
    assert "risk_level=***" in rows["u-manager"]  # no purpose declared: the L2 view
    purposeful = rows["u-manager +X-Purpose: service"]
    assert "risk_level=C" in purposeful and "risk_level=***" not in purposeful
    assert "403 subject_revoked" in rows["u-departed"]
    assert "query_password=-" in rows["u-cs"]  # never in clear
    assert f"Audit events are written to {ROOT / 'var' / 'demo' / 'audit.jsonl'}" in text


def test_a_taken_port_is_one_line_not_a_traceback() -> None:
    gw, crm = _ports()
    for flag, named in (("--listen", "(listen)"), ("--crm-listen", "(--crm-listen)")):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", gw if flag == "--listen" else crm))
            taken.listen()
            proc = subprocess.run(
                [sys.executable, "-m", "gateway.cli", "demo", "--listen", f"127.0.0.1:{gw}",
                 "--crm-listen", f"127.0.0.1:{crm}"],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert "cannot listen on 127.0.0.1:" in proc.stderr and named in proc.stderr
