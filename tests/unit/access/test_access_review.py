"""The periodic review's logic on hand-made audit events (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.access.review import (
    OPEN,
    SubjectFacts,
    apply_decisions,
    build_review,
    check_reviewer,
    parse_decisions,
    parse_period,
    review_event,
    seal,
)
from gateway.errors import ClientError, Forbidden

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SUBJECTS = [
    SubjectFacts("u-rm", "wealth", ("relationship_manager",), "L3"),
    SubjectFacts("u-cs", "customer_service", ("customer_service",), "L2"),
    SubjectFacts("u-new", "retail", ("sales",), "L1"),
    SubjectFacts("u-sec", "security", ("security_admin",), "L4"),
]
GRANTS: list[dict[str, Any]] = [
    {"id": "g-lvl", "subject": "u-cs", "type": "level", "level": "L3", "state": "active",
     "activated": "2026-11-20T00:00:00Z", "expires": "2026-12-20T00:00:00Z",
     "approved_by": ["security"]},
    {"id": "g-a", "subject": "u-rm", "type": "grade_a", "state": "active",
     "activated": "2026-11-01T00:00:00Z", "expires": "2026-12-02T00:00:00Z",
     "approved_by": ["it", "security"]},
    {"id": "g-old", "subject": "u-rm", "type": "grade_b", "state": "expired",
     "expires": "2026-10-01T00:00:00Z"},
]  # fmt: skip


def event(
    who: str, at: datetime, clear: dict[str, int], *, allowed: bool = True, **extra: Any
) -> dict[str, Any]:
    crm: dict[str, Any] = {
        "decision": {"outcome": "allow" if allowed else "deny"},
        "fields": {"clear": {lv: {"x": n} for lv, n in clear.items()}},
        "grades": extra.get("grades", {}),
        "records": extra.get("records", {"seen": 1, "dropped": 0}),
    }
    return {
        "time": int(at.timestamp() * 1000),
        "actor": {"user": {"uid": who}},
        "api": {"operation": extra.get("operation", "view")},
        "unmapped": {"crm": crm},
    }


EVENTS: list[dict[str, Any]] = [
    event("u-rm", NOW - timedelta(days=200), {"L3": 1}),  # before the period
    event("u-rm", NOW - timedelta(days=3), {"L2": 2}, grades={"A": 1}),  # L2 only; grade A
    event("u-cs", NOW - timedelta(days=5), {"L2": 1, "L3": 1}),  # L3 thanks to g-lvl
    event("u-cs", NOW - timedelta(days=1), {"L3": 1}, allowed=False),  # refused: no use
    event("u-sec", NOW - timedelta(days=30), {"L1": 4}),  # nothing above the default
    {"class_uid": 3004, "unmapped": {"governance": {}}},  # not an access event
]


def review() -> Any:
    return build_review(
        SUBJECTS, GRANTS, EVENTS, period=timedelta(days=90), default_clearance="L1", now=NOW
    )


def test_lines_usage_and_unused_flags() -> None:
    r = review()
    lines = {ln.line: ln for ln in r.lines}
    assert list(lines) == [
        "clearance:u-cs", "clearance:u-rm", "clearance:u-sec", "grant:g-lvl", "grant:g-a",
    ]  # fmt: skip
    assert (lines["clearance:u-cs"].uses_in_period, lines["clearance:u-cs"].highest_level_used) == (
        1,
        "L2",
    )  # its L3 came from the grant
    assert lines["grant:g-lvl"].highest_level_used == "L3" and not lines["grant:g-lvl"].unused
    assert lines["clearance:u-rm"].highest_level_used == "L2"  # holds L3, uses L2
    assert lines["grant:g-a"].uses_in_period == 1  # grade A records returned
    assert lines["clearance:u-sec"].unused and lines["clearance:u-sec"].last_use is None
    assert r.events_read == 5
    assert r.summary()["unused"] == 1


def test_grade_grant_not_used_by_dropped_records() -> None:
    dropped = event(
        "u-rm", NOW - timedelta(days=2), {}, grades={"A": 1}, records={"seen": 1, "dropped": 1}
    )
    r = build_review(SUBJECTS, GRANTS[1:2], [dropped], period=timedelta(days=9), now=NOW)
    assert next(ln for ln in r.lines if ln.kind == "grant").unused


def _phased(who: str, at: datetime, request: str, phase: str) -> dict[str, Any]:
    out = event(who, at, {"L2": 1})
    out["metadata"] = {"correlation_uid": request}
    out["unmapped"]["crm"]["phase"] = phase
    return out


def test_a_durably_audited_request_counts_once() -> None:
    at = NOW - timedelta(days=2)
    trail = [
        _phased("u-cs", at, "r1", "release"),
        _phased("u-cs", at, "r2", "release"),  # interleaved with r1's final
        _phased("u-cs", at, "r1", "final"),
        _phased("u-cs", at, "r2", "final"),
        _phased("u-cs", at, "r3", "release"),  # its final never written (a crash)
        _phased("u-cs", at, "r4", "final"),  # below durable_from: only a final
    ]
    r = build_review(SUBJECTS, [], trail, period=timedelta(days=9), now=NOW)
    line = next(ln for ln in r.lines if ln.line == "clearance:u-cs")
    assert line.uses_in_period == 4


@pytest.mark.parametrize("text", ["90", "0d", "-3d", "3y", ""])
def test_bad_periods(text: str) -> None:
    with pytest.raises(ClientError):
        parse_period(text)


def test_decisions_from_csv_and_json() -> None:
    csv_raw = b"line,decision,note\nclearance:u-cs,Confirm,\ngrant:g-a,revoke,unused\n"
    assert parse_decisions(csv_raw, "d.csv") == {
        "clearance:u-cs": ("confirm", ""),
        "grant:g-a": ("revoke", "unused"),
    }
    assert parse_decisions(b'{"grant:g-a": "revoke"}') == {"grant:g-a": ("revoke", "")}
    with pytest.raises(ClientError, match="confirm or revoke"):
        parse_decisions(b'[{"line": "grant:g-a", "decision": "maybe"}]')
    with pytest.raises(ClientError, match="twice"):
        parse_decisions(b"line,decision\ngrant:g-a,revoke\ngrant:g-a,confirm\n", "d.csv")


def test_sign_off_rules() -> None:
    r = review()
    everyone = {ln.line: ("confirm", "") for ln in r.lines}
    with pytest.raises(Forbidden, match="own access"):
        apply_decisions(r, everyone, reviewer="u-sec")
    del everyone["clearance:u-sec"]
    with pytest.raises(ClientError, match="missing: grant:g-a"):
        apply_decisions(
            r, {k: v for k, v in everyone.items() if k != "grant:g-a"}, reviewer="u-sec"
        )
    signed = apply_decisions(
        r, {**everyone, "grant:g-a": ("revoke", "")}, reviewer="u-sec", now=NOW
    )
    own = next(ln for ln in signed.lines if ln.line == "clearance:u-sec")
    assert own.decision is None and own.outcome == OPEN
    assert signed.summary() | {} == {
        "lines": 5, "clearance_lines": 3, "grant_lines": 2, "unused": 1, "confirmed": 3,
        "revoked": 1, "open": 1,
    }  # fmt: skip
    seal(signed)
    first = signed.digest
    assert len(first) == 64 and seal(signed).digest == first  # stable
    ev = review_event(signed, uid="u", time_ms=1, time_dt="t")
    gov = ev["unmapped"]["governance"]
    assert gov["evidence_sha256"] == first and gov["reviewer"] == "u-sec"
    assert [ln["decision"] for ln in gov["lines"]].count("revoke") == 1


def test_reviewer_must_be_a_real_enabled_reviewer() -> None:
    with pytest.raises(Forbidden, match="not in the directory"):
        check_reviewer("nobody-at-all", None)
    with pytest.raises(Forbidden, match="reviewer roles"):
        check_reviewer("u-cs", SUBJECTS[1])
    with pytest.raises(Forbidden, match="disabled"):
        check_reviewer("u-x", SubjectFacts("u-x", "security", ("security_admin",), "L4", True))
    check_reviewer("u-sec", SUBJECTS[3])


def test_csv_export_has_one_row_per_line() -> None:
    text = review().to_csv().splitlines()
    assert text[0].startswith("line,kind,subject") and len(text) == 6


def test_review_event_projects_to_siem_formats() -> None:
    from gateway.audit.sinks.cef import to_cef
    from gateway.audit.sinks.syslog import to_rfc5424

    signed = seal(
        apply_decisions(
            review(),
            {ln.line: ("confirm", "") for ln in review().lines if ln.subject != "u-sec"},
            reviewer="u-sec",
            now=NOW,
        )
    )
    ev = review_event(signed, uid="u-1", time_ms=1_700_000_000_000, time_dt="t")
    cef = to_cef(ev, vendor="v", product="p", version="1")
    assert "suid=u-sec" in cef and "externalId=u-1" in cef
    line = orjson.dumps(ev)
    assert b"u-sec" in to_rfc5424(line, ev, app_name="a", sd_id="x@1", hostname="h")


def test_review_report_command_on_the_audit_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    audit = tmp_path / "audit.jsonl"
    at = datetime.now(UTC) - timedelta(days=1)
    audit.write_bytes(orjson.dumps(event("u-manager", at, {"L3": 2})) + b"\n")
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"identity: {{directory: {ROOT / 'config' / 'directory.yaml'}}}\n"
        f"audit: {{file: {audit}}}\n",
        encoding="utf-8",
    )
    assert main(["review", "report", "--json", "--config", str(config)]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    lines = {ln["line"]: ln for ln in doc["lines"]}
    assert lines["clearance:u-manager"]["uses_in_period"] == 1
    assert lines["clearance:u-manager"]["highest_level_used"] == "L3"
    assert lines["clearance:u-sales-01"]["unused"] is True
    assert "clearance:u-partner-01" not in lines  # L1: the default
    assert main(["review", "report", "--csv", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("line,kind,subject")
    assert main(["review", "report", "--period", "9x", "--config", str(config)]) == 2
