"""The canonical event: OCSF shape, allow-listed keys only, no PII, chunking."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from gateway.audit.event import (
    build_access_event,
    build_access_events,
    requires_durable,
    split_record_ids,
)
from gateway.audit.scrub import looks_like_pii, scrub
from gateway.core.model import Subject
from gateway.core.report import EnforcementReport, ReportSummary

ID_NUMBER = "11010519491231002X"  # valid check digit
MOBILE = "13812345678"
CARD = "6222020200112233446"  # Luhn-valid 19 digits
PII = (ID_NUMBER, MOBILE, CARD)


def _report() -> dict[str, Any]:
    rep = EnforcementReport()
    rep.add_record("C1001", "A", "VIP")
    rep.add_record("C1002", "B", "一般")
    rep.add_field("mobile", "L3", "masked", 2)
    rep.add_field("name", "L1", "clear", 2)
    rep.add_field("id_number", "L4", "dropped", 1)
    return rep.to_audit()


def _build(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "request_id": "req-1",
        "subject_dict": {
            **Subject(id="u-7", roles=("sales",), department="华东", clearance="L3").to_policy(),
            "ip": "10.1.2.3",
        },
        "request_dict": {"method": "GET", "route": "/api/contacts/{id}", "purpose": "service"},
        "decision_dict": {
            "allow": True,
            "reason": "role sales",
            "revision": "rev-9",
            "cache_hit": True,
            "report_only": False,
        },
        "report_dict": _report(),
        "status": 200,
        "latency_ms": 12.7,
        "now": 1_700_000_000.123,
    }
    args.update(over)
    return build_access_event(**args)


def test_ocsf_api_activity_shape() -> None:
    ev = _build()
    assert (ev["class_uid"], ev["category_uid"], ev["activity_id"]) == (6003, 6, 2)
    assert ev["type_uid"] == 600302
    assert ev["time"] == 1_700_000_000_123
    assert ev["metadata"]["version"] == "1.8.0"
    assert ev["metadata"]["correlation_uid"] == "req-1"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        ev["metadata"]["uid"],
    )
    assert ev["actor"]["user"] == {
        "uid": "u-7",
        "name": None,
        "groups": [{"name": "sales"}],
        "org": {"name": "华东"},
    }
    assert ev["src_endpoint"] == {"ip": "10.1.2.3"}
    assert ev["http_request"]["url"]["path"] == "/api/contacts/{id}"
    assert ev["api"]["operation"] == "GET /api/contacts/{id}"
    crm = ev["unmapped"]["crm"]
    assert crm["decision"]["outcome"] == "allow_masked"
    assert crm["decision"]["cache_hit"] is True
    assert crm["record_ids"] == ["C1001", "C1002"]
    assert crm["grades"] == {"A": 1, "B": 1}
    assert crm["fields"]["masked"] == {"L3": {"mobile": 2}}
    assert crm["fields"]["dropped"] == {"L4": {"id_number": 1}}
    assert crm["latency_ms"] == 12
    assert crm["status"] == 200
    assert ev["action_id"] == 4  # modified (masked)
    assert ev["severity_id"] == 2  # an L4 field was refused, none shown


@pytest.mark.parametrize(
    ("decision", "report", "outcome", "severity"),
    [
        ({"allow": False, "reason": "no"}, None, "deny", 4),
        ({"allow": True}, {"fields": {"clear": {"L5": {"id_number": 1}}}}, "allow", 3),
        ({"allow": True}, {"fields": {"clear": {"L1": {"name": 1}}}}, "allow", 1),
        ({"allow": True}, {"blocked": "bulk"}, "blocked", 4),
    ],
)
def test_outcome_and_severity(
    decision: dict[str, Any], report: dict[str, Any] | None, outcome: str, severity: int
) -> None:
    ev = _build(decision_dict=decision, report_dict=report)
    assert ev["unmapped"]["crm"]["decision"]["outcome"] == outcome
    assert ev["severity_id"] == severity


def test_honeytoken_is_critical() -> None:
    ev = _build(request_dict={"method": "GET", "route": "/x", "honeytoken": True})
    assert ev["severity_id"] == 5
    assert ev["unmapped"]["crm"]["honeytoken"] is True


def _seed(value: Any, pii: str) -> Any:
    """Replace every leaf of a nested structure with the PII value (keys too)."""
    if isinstance(value, dict):
        seeded = {k: _seed(v, pii) for k, v in value.items()}
        seeded[pii] = pii
        seeded[f"extra_{pii}"] = {pii: pii}
        return seeded
    if isinstance(value, list):
        return [pii, *(_seed(v, pii) for v in value)]
    if isinstance(value, bool | int | float) or value is None:
        return pii
    return f"{value} {pii}"


@pytest.mark.parametrize("pii", PII)
def test_no_pii_from_any_input_slot(pii: str) -> None:
    report = _report()
    report["records"]["ids"].append(pii)
    report["customer_value"] = pii
    ev = build_access_event(
        request_id=f"req {pii}",
        subject_dict=_seed(
            {
                **Subject(id="u-7", roles=("r",)).to_policy(),
                "ip": "1.2.3.4",
                "display_name": "Zhang",
                "session_id": "s",
            },
            pii,
        ),
        request_dict=_seed(
            {
                "method": "GET",
                "route": "/c/{id}",
                "purpose": "p",
                "operation": "op",
                "pii_categories": ["mobile"],
                "justification": "j",
                "query": "q",
            },
            pii,
        ),
        decision_dict=_seed(
            {"allow": True, "reason": "r", "revision": "v", "audit_level": "basic"}, pii
        ),
        report_dict=_seed(report, pii),
        status=200,
        latency_ms=1,
        now=1.0,
    )
    text = orjson.dumps(ev).decode()
    assert pii not in text
    assert pii[:11] not in text  # no long prefix of the value either
    assert "[redacted]" in text  # the allowed slots show that something was removed


def test_unknown_keys_dropped() -> None:
    ev = _build(
        subject_dict={"id": "u", "phone": "x", "ip": "1.1.1.1"},
        request_dict={"method": "GET", "route": "/a", "body": {"x": 1}},
    )
    text = orjson.dumps(ev).decode()
    assert "phone" not in text
    assert "body" not in text


def test_split_record_ids_links_follow_ups() -> None:
    report = {"records": {"ids": [f"C{i}" for i in range(1234)], "ids_total": 1234}}
    events = build_access_events(
        ids_per_event=500,
        request_id="r",
        subject_dict={"id": "u"},
        request_dict={"method": "GET", "route": "/export"},
        decision_dict={"allow": True},
        report_dict=report,
        status=200,
        latency_ms=1,
        now=1.0,
    )
    assert [len(e["unmapped"]["crm"]["record_ids"]) for e in events] == [500, 500, 234]
    assert [e["unmapped"]["crm"]["chunk"] for e in events] == [
        {"index": n, "total": 3} for n in (1, 2, 3)
    ]
    assert {e["metadata"]["correlation_uid"] for e in events} == {"r"}
    assert len({e["metadata"]["uid"] for e in events}) == 3
    ids = [i for e in events for i in e["unmapped"]["crm"]["record_ids"]]
    assert ids == [f"C{i}" for i in range(1234)]
    assert events[0]["unmapped"]["crm"]["records"]["ids_total"] == 1234


def test_split_small_event_untouched() -> None:
    ev = _build()
    assert split_record_ids(ev, 500) == [ev]


@pytest.mark.parametrize(
    ("value", "pii"),
    [
        (MOBILE, True),
        (ID_NUMBER, True),
        (CARD, True),
        ("8613812345678", True),
        ("11010519491231002", False),
        ("12345678901", False),
        ("6222020200112233441", False),
    ],
)
def test_looks_like_pii(value: str, pii: bool) -> None:
    assert looks_like_pii(value) is pii


def test_scrub_keeps_ordinary_text() -> None:
    assert scrub("order 12345 for C1001") == "order 12345 for C1001"
    assert scrub(f"call {MOBILE} now") == "call [redacted] now"


@pytest.mark.parametrize(
    ("fields", "strict", "expected"),
    [
        ({"clear": {"L5": {"id_number": 1}}}, ("L5",), True),
        ({"masked": {"L5": {"id_number": 1}}}, ("L5",), True),
        ({"dropped": {"L5": {"id_number": 1}}, "clear": {"L1": {"name": 1}}}, ("L5",), False),
        ({"clear": {"L5": {"id_number": 1}}}, (), False),
        ({"clear": {"L4": {"mobile": 0}}}, ("L4",), False),
    ],
)
def test_requires_durable(fields: dict[str, Any], strict: tuple[str, ...], expected: bool) -> None:
    assert requires_durable(ReportSummary(fields=fields), strict) is expected


def test_ocsf_required_attributes_present() -> None:
    """OCSF 1.8 base event + API Activity required attributes."""
    ev = _build()
    for key in (
        "activity_id",
        "category_uid",
        "class_uid",
        "severity_id",
        "time",
        "type_uid",
        "actor",
        "api",
        "src_endpoint",
        "metadata",
    ):
        assert ev.get(key) is not None, key
    assert ev["metadata"]["product"]["name"] == "crm-gateway"
    assert ev["api"]["operation"]
    assert ev["unmapped"]["crm"]["tiers"] == {"VIP": 1, "一般": 1}


def test_gateway_request_ids_are_kept_verbatim() -> None:
    """The handler's uuid4-hex request id is the join key between a response's
    X-Request-Id and its events; a digit run in it is not PII and must survive."""
    rid = "ab" + MOBILE + "cdef0123456789abcde"  # 32 hex chars with a mobile-shaped run
    assert len(rid) == 32
    ev = _build(request_id=rid)
    assert ev["metadata"]["correlation_uid"] == rid
    assert ev["http_request"]["uid"] == rid
    assert ev["api"]["request"]["uid"] == rid
    # Anything not shaped like a gateway id is still scrubbed.
    assert _build(request_id=f"req {MOBILE}")["metadata"]["correlation_uid"] == "req [redacted]"
