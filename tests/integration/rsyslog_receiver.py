"""A real rsyslogd running deploy/siem/rsyslog-tls.conf, with certificates made by the test.

The test's own master config only sets the work directory and a template that prints what
rsyslog's RFC 5424 parser extracted; it then includes the shipped file unchanged. Site values
(certificates, port, archive, extra actions) reach it through the environment, as documented
in deploy/siem/rsyslog.env.example.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.conftest import ROOT, free_port, stop_process, wait_for_port
from tests.tls_certs import TlsFiles, make_tls_files

SHIPPED_CONF = ROOT / "deploy" / "siem" / "rsyslog-tls.conf"

_MASTER = """\
global(workDirectory="{work}")
template(name="crm-audit-parsed" type="list") {{
  constant(value="{{")
  property(outname="hostname" name="hostname" format="jsonf") constant(value=",")
  property(outname="app_name" name="app-name" format="jsonf") constant(value=",")
  property(outname="procid" name="procid" format="jsonf") constant(value=",")
  property(outname="msgid" name="msgid" format="jsonf") constant(value=",")
  property(outname="version" name="protocol-version" format="jsonf") constant(value=",")
  property(outname="facility" name="syslogfacility" format="jsonf") constant(value=",")
  property(outname="severity" name="syslogseverity" format="jsonf") constant(value=",")
  property(outname="sd" name="structured-data" format="jsonf") constant(value=",")
  property(outname="msg" name="msg" format="jsonf")
  constant(value="}}\\n")
}}
include(file="{shipped}")
"""

_LOCAL = 'action(type="omfile" file="{parsed}" template="crm-audit-parsed")\n'


def find_rsyslogd() -> str:
    found = shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if os.access("/usr/sbin/rsyslogd", os.X_OK) else None
    )
    if not found or not Path("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists():
        raise RuntimeError(
            "rsyslogd with GnuTLS not found: run `make deps`"
            " (apt-get install rsyslog rsyslog-gnutls)"
        )
    return found


@dataclass
class Rsyslog:
    port: int
    tls: TlsFiles
    archive: Path
    parsed: Path

    def archive_lines(self) -> list[bytes]:
        return self.archive.read_bytes().splitlines() if self.archive.exists() else []

    def parsed_records(self) -> list[dict[str, str]]:
        if not self.parsed.exists():
            return []
        return [orjson.loads(line) for line in self.parsed.read_bytes().splitlines()]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[bytes]:
        """Archive lines once at least `count` are written (rsyslog writes asynchronously)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.archive_lines()
            if len(lines) >= count and len(self.parsed_records()) >= count:
                return lines
            time.sleep(0.05)
        raise AssertionError(f"rsyslog archived {len(self.archive_lines())} of {count} messages")


def run_rsyslog(tmp: Path) -> Iterator[Rsyslog]:
    work = tmp / "rsyslog"
    work.mkdir()
    tls = make_tls_files(work)
    port = free_port()
    rx = Rsyslog(port, tls, work / "audit.jsonl", work / "parsed.jsonl")
    master = work / "rsyslog.conf"
    master.write_text(_MASTER.format(work=work, shipped=SHIPPED_CONF))
    local = work / "local.conf"
    local.write_text(_LOCAL.format(parsed=rx.parsed))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CRM_AUDIT_TLS_CA": str(tls.ca),
        "CRM_AUDIT_TLS_CERT": str(tls.server_cert),
        "CRM_AUDIT_TLS_KEY": str(tls.server_key),
        "CRM_AUDIT_LISTEN": "127.0.0.1",
        "CRM_AUDIT_PORT": str(port),
        "CRM_AUDIT_FILE": str(rx.archive),
        "CRM_AUDIT_LOCAL": str(local),
    }
    rsyslogd = find_rsyslogd()
    check = subprocess.run(
        [rsyslogd, "-N1", "-f", str(master)], env=env, capture_output=True, timeout=30
    )
    assert check.returncode == 0, check.stderr.decode() + check.stdout.decode()
    log = (work / "rsyslogd.log").open("wb")
    proc = subprocess.Popen(
        [rsyslogd, "-n", "-f", str(master), "-i", str(work / "rsyslogd.pid")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc=proc)
        yield rx
    finally:
        stop_process(proc)
        log.close()
