"""Anomaly detection through HTTP, across two real gateway replicas (issue 14, item 5).

Two `crm-gateway serve` processes share one redis-server, in front of the demo CRM,
with anomaly detection as it ships (on) and thresholds made small. Each kind is
driven by its own caller through plain HTTP requests spread over both replicas:
bulk access (many distinct customers), a burst of refused requests, filter
probing, access outside usual days, and a honeytoken customer. For each alert the
test measures how long after the triggering request it is in the audit stream and
in a real rsyslogd (the shipped deploy/siem/rsyslog-tls.conf, RFC 5425 over TLS,
fed from the stream by `crm-gateway audit ship --to syslog`, as deployed): printed,
not asserted. It checks that exactly one replica
raised it (the stream and both replicas' metrics), and that its action holds on
both replicas: throttled callers get 429 everywhere, the caller who opened the
decoy is revoked everywhere.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest
import yaml

from tests.conftest import free_port, start_serve, stop_process, wait_for_port
from tests.integration import audit_load as al
from tests.integration.gateway_harness import write_key_directory
from tests.integration.rsyslog_receiver import Rsyslog, run_rsyslog

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "crm-gateway")
STREAM = "anomaly-http:audit"
CALLERS = ("bulk", "burst", "probe", "decoy", "quiet")
DECOY = "C000150"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def key(name: str) -> str:
    return f"anomaly-key-{name}-0123456789"


def _usual_days_not_now() -> list[str]:
    """Every day but today and tomorrow in Shanghai: now is outside usual hours, even
    if the test runs across midnight."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).weekday()
    return [d for i, d in enumerate(_DAYS) if i not in (today, (today + 1) % 7)]


@dataclass
class Replicas:
    urls: list[str]
    redis_url: str
    rsyslog: Rsyslog


def _config(tmp_path: Path, redis_url: str, crm_port: int, rx: Rsyslog) -> Path:
    directory = write_key_directory(
        tmp_path / "directory.yaml",
        [({"id": f"u-{n}", "clearance": "L2", "roles": ["sales"], "department": "retail"},
          f"k-{n}", key(n)) for n in CALLERS],
    )  # fmt: skip
    settings = {
        "base_dir": str(ROOT),
        "listen": {"host": "127.0.0.1", "port": 0},
        "upstream": {"url": f"http://127.0.0.1:{crm_port}"},
        "redis": {"url": redis_url},
        "identity": {"directory": str(directory)},
        "policy": {"engine": "static"},
        "monitor": {
            # `enabled` is left at its default: detection ships on.
            "window_seconds": 7 * 86400,
            "distinct_customers": {"L2": 8},
            "blocked_burst_count": 5,
            "blocked_burst_seconds": 86400,
            "filter_probes": 3,
            "usual_days": _usual_days_not_now(),
            "action": "throttle",
            "throttle_seconds": 600,
            "honeytokens": [DECOY],
            "honeytoken_action": "revoke",
            "refresh_seconds": 0.1,
        },
        "audit": {
            "sinks": ["redis"],
            # for the shipper (`audit ship --to syslog`), which feeds rsyslog
            "syslog_host": "localhost",
            "syslog_port": rx.port,
            "syslog_ca_file": str(rx.tls.ca),
            "syslog_cert_file": str(rx.tls.client_cert),
            "syslog_key_file": str(rx.tls.client_key),
            "stream": STREAM,
            "spool_dir": str(tmp_path / "spool"),
            "registry_dir": str(tmp_path / "writers"),
        },
        "logging": {"level": "warning"},
    }
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return cfg


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    yield from run_rsyslog(tmp_path)


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str, rsyslog: Rsyslog) -> Iterator[Replicas]:
    crm_port = free_port()
    procs = [al.start_crm(crm_port)]
    config = _config(tmp_path, redis_url, crm_port, rsyslog)
    ports = [free_port(), free_port()]
    try:
        for i, port in enumerate(ports):
            procs.append(start_serve(config, port, tmp_path / f"gateway-{i}.log"))
        with (tmp_path / "shipper.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [CLI, "audit", "ship", "--to", "syslog", "--config", str(config)],
                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        for port, proc in zip(ports, procs[1:3], strict=True):
            wait_for_port(port, timeout=30, proc=proc)
        yield Replicas([f"http://127.0.0.1:{p}" for p in ports], redis_url, rsyslog)
    finally:
        for proc in reversed(procs):
            stop_process(proc)


async def _get(s: aiohttp.ClientSession, url: str, who: str) -> tuple[int, str]:
    async with s.get(url, headers={"X-API-Key": key(who)}) as r:
        return r.status, await r.text()


def _alerts(redis_url: str) -> list[tuple[str, str]]:
    """(kind, subject) of every anomaly alert (OCSF Detection Finding) in the stream."""
    return [
        (e["unmapped"]["crm"]["anomaly"]["kind"], e["actor"]["user"]["uid"])
        for e in al.stream_events(redis_url, STREAM)
        if e.get("class_uid") == 2004 and "anomaly" in e.get("unmapped", {}).get("crm", {})
    ]


def _received(rx: Rsyslog) -> list[tuple[str, str]]:
    """(kind, subject) of every anomaly alert rsyslog archived."""
    out = []
    for line in rx.archive_lines():
        e = orjson.loads(line)
        anomaly = e.get("unmapped", {}).get("crm", {}).get("anomaly")
        if e.get("class_uid") == 2004 and anomaly:
            out.append((anomaly["kind"], e["actor"]["user"]["uid"]))
    return out


async def _alert_after(r: Replicas, kind: str, subject: str) -> tuple[float, float]:
    """Seconds from now until the `kind` alert about `subject` is in the stream, and
    until rsyslog has archived it."""
    since = time.monotonic()
    stream = syslog = 0.0
    while not (stream and syslog):
        if not stream and (kind, subject) in _alerts(r.redis_url):
            stream = time.monotonic() - since
        if not syslog and (kind, subject) in _received(r.rsyslog):
            syslog = time.monotonic() - since
        assert time.monotonic() - since < 5, f"no {kind} alert for {subject} after 5 s"
        await asyncio.sleep(0.02)
    return stream, syslog


async def _everywhere(s: aiohttp.ClientSession, r: Replicas, who: str, status: int) -> None:
    """Both replicas answer `who` with `status` within 2 s."""
    started = time.monotonic()
    for url in r.urls:
        while (await _get(s, f"{url}/api/customers/C000001", who))[0] != status:
            assert time.monotonic() - started < 2, f"{url} does not answer {who} with {status}"
            await asyncio.sleep(0.05)


async def _metric_sum(s: aiohttp.ClientSession, r: Replicas, kind: str) -> float:
    total = 0.0
    pattern = re.compile(
        rf'^crmgw_anomaly_alerts_total\{{[^}}]*kind="{kind}"[^}}]*\}} (\S+)$', re.M
    )
    for url in r.urls:
        async with s.get(f"{url}/_gateway/metrics") as resp:
            total += sum(float(v) for v in pattern.findall(await resp.text()))
    return total


async def test_each_anomaly_alerts_once_in_the_stream_and_acts_on_both_replicas(
    replicas: Replicas,
) -> None:
    r = replicas
    latencies: dict[str, tuple[float, float]] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        # Bulk access: 8 distinct customers, half through each replica.
        for n in range(1, 9):
            status, body = await _get(s, f"{r.urls[n % 2]}/api/customers/C{n:06d}", "bulk")
            assert status == 200, body
        latencies["distinct_customers"] = await _alert_after(r, "distinct_customers", "u-bulk")
        await _everywhere(s, r, "bulk", 429)

        # A burst of refused requests (a filter on a card number, the same one each
        # time: one probed value, below the probing threshold), over both replicas.
        for n in range(5):
            url = f"{r.urls[n % 2]}/api/customers?bank_card=6222020200112233445"
            assert (await _get(s, url, "burst"))[0] == 403
        latencies["blocked_burst"] = await _alert_after(r, "blocked_burst", "u-burst")
        await _everywhere(s, r, "burst", 429)

        # Filter probing: three different card numbers guessed (each refused).
        for n in range(3):
            url = f"{r.urls[n % 2]}/api/customers?bank_card=622202020011223344{n}"
            assert (await _get(s, url, "probe"))[0] == 403
        latencies["filter_probe"] = await _alert_after(r, "filter_probe", "u-probe")
        await _everywhere(s, r, "probe", 429)

        # A honeytoken customer, opened once on replica 0: revoked on both.
        assert (await _get(s, f"{r.urls[0]}/api/customers/{DECOY}", "decoy"))[0] == 200
        latencies["honeytoken"] = await _alert_after(r, "honeytoken", "u-decoy")
        await _everywhere(s, r, "decoy", 403)

        # Outside the usual days: one ordinary read alerts, and only alerts.
        status, _ = await _get(s, f"{r.urls[1]}/api/customers/C000001", "quiet")
        assert status == 200
        latencies["off_hours"] = await _alert_after(r, "off_hours", "u-quiet")
        assert (await _get(s, f"{r.urls[0]}/api/customers/C000002", "quiet"))[0] == 200

        await asyncio.sleep(0.5)  # any duplicate from the other replica would be in by now
        kinds = [kind for kind, _ in _alerts(r.redis_url)]
        raised = {kind: await _metric_sum(s, r, kind) for kind in latencies}
        shown = [f"{k} {a * 1000:.0f}/{b * 1000:.0f} ms" for k, (a, b) in latencies.items()]
        print("\nalert latency after the request (audit stream / rsyslog): " + ", ".join(shown))
    # Each breach is raised once, by one replica (off-hours: once per caller).
    by_kind = {k: kinds.count(k) for k in set(kinds)}
    assert by_kind.pop("off_hours") == len(CALLERS)
    assert by_kind == {k: 1 for k in latencies if k != "off_hours"}, by_kind
    assert raised == {**dict.fromkeys(by_kind, 1), "off_hours": len(CALLERS)}, raised


def test_the_usual_days_exclude_now() -> None:
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    days = _usual_days_not_now()
    assert _DAYS[now.weekday()] not in days
    assert _DAYS[(now + timedelta(days=1)).weekday()] not in days and len(days) == 5
