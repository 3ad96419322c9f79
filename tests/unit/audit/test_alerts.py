"""Alert events: OCSF Detection Finding shape, severities, and no customer data."""

from __future__ import annotations

import orjson

from gateway.audit.alerts import build_alert
from gateway.audit.chain import ChainWriter
from gateway.core.findings import Finding

AT = 1_764_151_230.5  # 2025-11-26T10:00:30.5Z


def _volume() -> Finding:
    return Finding(
        kind="distinct_customers",
        subject_id="u-alice",
        at=AT,
        window_start=1_764_151_200.0,
        window_seconds=3600,
        count=57,
        threshold=50,
        action="throttle",
        level="L4",
    )


def test_detection_finding_shape() -> None:
    ev = build_alert(_volume())
    assert (ev["class_uid"], ev["category_uid"], ev["type_uid"]) == (2004, 2, 200401)
    assert ev["severity_id"] == 4
    assert ev["severity"] == "High"
    assert ev["is_alert"] is True
    assert ev["time"] == 1_764_151_230_500
    assert ev["time_dt"] == "2025-11-26T10:00:30.500Z"
    assert ev["actor"]["user"]["uid"] == "u-alice"
    assert ev["finding_info"]["uid"] == "distinct_customers.L4:u-alice:1764151200"
    assert ev["finding_info"]["types"] == ["distinct_customers"]
    assert ev["disposition_id"] == 2
    assert ev["action_id"] == 2
    anomaly = ev["unmapped"]["crm"]["anomaly"]
    assert anomaly == {
        "kind": "distinct_customers",
        "level": "L4",
        "count": 57,
        "threshold": 50,
        "window_seconds": 3600,
        "window_start": "2025-11-26T10:00:00.000Z",
        "action": "throttle",
    }
    assert ev["resources"] == []
    assert ev["unmapped"]["crm"]["record_ids"] == []
    assert "57 distinct customers at L4" in ev["message"]


def test_each_alert_has_its_own_event_id_but_the_same_finding_id() -> None:
    a, b = build_alert(_volume()), build_alert(_volume())
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    assert a["finding_info"]["uid"] == b["finding_info"]["uid"]


def test_honeytoken_is_critical_and_names_only_the_decoy() -> None:
    ev = build_alert(
        Finding(
            kind="honeytoken",
            subject_id="u-bob",
            at=AT,
            window_start=AT,
            window_seconds=0,
            count=1,
            threshold=1,
            decoy_ids=("C999901",),
        )
    )
    assert ev["severity_id"] == 5
    assert ev["severity"] == "Critical"
    assert ev["resources"] == [{"uid": "C999901", "type": "crm.customer.decoy"}]
    assert ev["unmapped"]["crm"]["honeytoken"] is True
    assert ev["disposition_id"] == 19  # alert only


def test_alert_goes_through_the_audit_chain() -> None:
    writer = ChainWriter(b"k" * 32, writer="w1")
    line = writer.append(build_alert(_volume()))
    doc = orjson.loads(line)
    assert doc["unmapped"]["integrity"]["seq"] == 1
    assert doc["class_uid"] == 2004
