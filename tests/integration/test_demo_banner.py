"""`crm-gateway demo` as a newcomer runs it: the banner's summary comes from the live
gateway (a purpose changes what the manager sees), and the audit path is printed.

The policy caps L3 and above outside working hours (Asia/Shanghai), so what a purpose
lifts depends on the clock: the banner test runs the demo on a copy of the policy
whose working hours are every hour of every day, and the banner's own note for the
hours outside them is checked on the shipped data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from gateway.demo.runner import outside_hours_note

ROOT = Path(__file__).resolve().parents[2]


def _ports() -> tuple[int, int]:
    socks = [socket.socket() for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = (socks[0].getsockname()[1], socks[1].getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _around_the_clock(tmp_path: Path) -> Path:
    """config/demo.yaml beside a copy of rego/ whose working hours never close."""
    shutil.copytree(ROOT / "rego", tmp_path / "rego")
    data_file = tmp_path / "rego" / "data.json"
    data = json.loads(data_file.read_text(encoding="utf-8"))
    place = data["crm"]["config"]["time_place"]
    place["hours"] = {str(day): {"start": 0, "end": 24} for day in range(1, 8)}
    place["holidays"] = []
    data_file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    shutil.copy(ROOT / "config" / "demo.yaml", tmp_path / "demo.yaml")
    return tmp_path / "demo.yaml"


def test_demo_banner_shows_what_each_user_sees(tmp_path: Path) -> None:
    gw, crm = _ports()
    config = _around_the_clock(tmp_path)
    out = tmp_path / "demo.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "demo", "--config", str(config),
             "--listen", f"127.0.0.1:{gw}", "--crm-listen", f"127.0.0.1:{crm}"],
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
    assert "outside the policy's working hours" not in text
    assert f"Audit events are written to {tmp_path / 'var' / 'demo' / 'audit.jsonl'}" in text


def test_outside_working_hours_the_banner_says_why_a_purpose_lifts_nothing() -> None:
    data = ROOT / "rego" / "data.json"
    saturday_night = datetime(2026, 12, 5, 17, 46, tzinfo=UTC)  # Sun 01:46 in Shanghai
    note = outside_hours_note(data, "Asia/Shanghai", saturday_night)
    assert note is not None and "Sun 01:46 in Asia/Shanghai" in note and "from L3" in note
    holiday = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)  # Thursday 11:00, National Day
    assert outside_hours_note(data, "Asia/Shanghai", holiday) is not None
    assert (
        outside_hours_note(data, "Asia/Shanghai", datetime(2026, 12, 4, 3, 0, tzinfo=UTC)) is None
    )
    assert outside_hours_note(ROOT / "no-such.json", "Asia/Shanghai", saturday_night) is None


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
