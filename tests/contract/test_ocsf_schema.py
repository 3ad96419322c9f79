"""The gateway's audit events validated against the OCSF schema shipped in `pydantic-ocsf`.

pydantic-ocsf 3.0 bundles the OCSF schema releases 1.0-1.7 (the JSON export of the schema
repository) and models generated from them. The gateway emits OCSF 1.8.0, which adds no
attribute these events use, so they are checked against the 1.7.0 models and schema:

- the class model (API Activity 6003 for accesses, Detection Finding 2004 for alerts,
  User Access Management 3005 for governance changes) validates required attributes,
  types, nested objects and enum ids;
- the models allow unknown keys, so every key the model kept as "extra" must be either
  `unmapped` (OCSF's place for product data) or a profile attribute this test validates
  itself against the schema's dictionary (security_control's `action_id`,
  `disposition_id`, `policy`; datetime's `*_dt`);
- `http_request.http_method` is a string enum in the schema, which the library models as
  an integer (a known bug of the package): the value is checked against the schema's
  list of methods and removed before the model sees it.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import ocsf
import pytest
from ocsf.v1_7_0 import events as ocsf_events
from ocsf.v1_7_0 import objects as ocsf_objects
from pydantic import BaseModel, ValidationError

from gateway.audit.alerts import _TITLES, build_alert
from gateway.audit.event import OCSF_VERSION, build_access_event
from gateway.audit.governance import Actor, Change, build_governance_event
from gateway.core.findings import Finding

SCHEMA = json.loads((Path(ocsf.__path__[0]) / "schemas" / "v1_7_0.json").read_text())
DICTIONARY: dict[str, Any] = SCHEMA["dictionary"]["attributes"]
HTTP_METHODS = {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "TRACE", "PATCH"}
# attributes of the security_control profile that the 1.7.0 class models do not carry
PROFILE_ENUMS = ("action_id", "disposition_id")
# The export bundled with the package has the dictionary, not the profile files: the
# security_control profile widens action_id with 3 Observed and 4 Modified (the gateway's
# "response masked"), which the dictionary's own enum (0, 1, 2, 99) lacks.
PROFILE_ENUM_ADDITIONS = {"action_id": {3, 4}}


def _enum_ids(attribute: str) -> set[int]:
    ids = {int(k) for k in DICTIONARY[attribute]["enum"]}
    return ids | PROFILE_ENUM_ADDITIONS.get(attribute, set())


def ocsf_violations(event: dict[str, Any], model: type[BaseModel]) -> list[str]:
    """Everything in `event` that the bundled OCSF 1.7.0 schema does not accept."""
    found: list[str] = []
    event = copy.deepcopy(event)
    request = event.get("http_request")
    if isinstance(request, dict) and "http_method" in request:
        method = request.pop("http_method")
        if method not in HTTP_METHODS:
            found.append(f"http_request.http_method: {method!r} is not an OCSF HTTP method")
    try:
        validated = model.model_validate(event)
    except ValidationError as exc:
        return found + [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    for key, value in (validated.model_extra or {}).items():
        if key in PROFILE_ENUMS:
            if value not in _enum_ids(key):
                found.append(f"{key}: {value!r} is not in the schema's enum")
        elif key == "policy":
            try:
                ocsf_objects.Policy.model_validate(value)
            except ValidationError as exc:
                found.append(f"policy: {exc}")
        elif key.endswith("_dt"):
            if not isinstance(value, str):
                found.append(f"{key}: not an RFC 3339 string")
            else:
                datetime.fromisoformat(value)
        elif key != "unmapped":
            found.append(f"{key}: not an attribute of {model.__name__} or its profiles")
    found += _nested_extras(validated, "")
    return found


def _nested_extras(model: BaseModel, path: str) -> list[str]:
    found = [f"{path}.{k}: not an attribute" for k in (model.model_extra or {}) if path]
    for name in type(model).model_fields:
        if not path and name == "unmapped":
            continue  # product data, free-form by definition
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                found += _nested_extras(item, f"{path}.{name}")
    return found


def _access(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "request_id": "req-1",
        "subject_dict": {"id": "u1", "ip": "10.0.0.1", "name": "张伟", "roles": ["sales"]},
        "request_dict": {"method": "GET", "route": "/api/contacts/{id}"},
        "decision_dict": {"allow": True, "revision": "r1"},
        "report_dict": {
            "records": {"ids": ["C1", "C2"]},
            "fields": {"masked": {"L3": {"mobile": 2}}, "shown": {"L2": {"name": 2}}},
        },
        "status": 200,
        "latency_ms": 3,
        "now": time.time(),
    }
    args.update(overrides)
    return build_access_event(**args)


ACCESS_CASES: dict[str, dict[str, Any]] = {
    "allow_masked": {},
    "deny": {
        "decision_dict": {"allow": False, "revision": "r1", "reason": "clearance"},
        "report_dict": {},
        "status": 403,
    },
    "write": {"request_dict": {"method": "PATCH", "route": "/api/contacts/{id}"}},
    "upstream_error": {"status": 502, "report_dict": {}},
}


@pytest.mark.parametrize("case", sorted(ACCESS_CASES))
def test_access_events_are_ocsf_api_activity(case: str) -> None:
    event = _access(**ACCESS_CASES[case])
    assert event["class_uid"] == 6003 and event["metadata"]["version"] == OCSF_VERSION
    assert ocsf_violations(event, ocsf_events.ApiActivity) == []


def test_alert_events_are_ocsf_detection_findings() -> None:
    now = time.time()
    for kind in _TITLES:
        finding = Finding(
            kind=kind,  # type: ignore[arg-type]
            subject_id="u1",
            at=now,
            window_start=now - 60,
            window_seconds=60,
            count=50,
            threshold=20,
        )
        event = build_alert(finding)
        violations = ocsf_violations(event, ocsf_events.DetectionFinding)
        # Detection Finding has no top-level actor in OCSF; the alert keeps one for pivots
        assert [v for v in violations if not v.startswith("actor:")] == [], kind


def test_governance_events_are_ocsf_user_access_management() -> None:
    change = Change(
        action="grant_revoked",
        actor=Actor(id="sec1", ip="10.0.0.2", roles=("security",)),
        subject="u1",
        grant_id="g-1",
        reason="left the team",
    )
    event = build_governance_event(change)
    assert ocsf_violations(event, ocsf_events.UserAccess) == []


def test_the_check_rejects_what_the_schema_rejects() -> None:
    good = _access()
    missing = copy.deepcopy(good)
    del missing["actor"]
    assert any(v.startswith("actor") for v in ocsf_violations(missing, ocsf_events.ApiActivity))
    bad_activity = copy.deepcopy(good)
    bad_activity["activity_id"] = 17
    assert ocsf_violations(bad_activity, ocsf_events.ApiActivity)
    bad_action = copy.deepcopy(good)
    bad_action["action_id"] = 42
    assert ocsf_violations(bad_action, ocsf_events.ApiActivity) == [
        "action_id: 42 is not in the schema's enum"
    ]
    stray = copy.deepcopy(good)
    stray["customer_ids"] = ["C1"]  # product data outside `unmapped`
    assert ocsf_violations(stray, ocsf_events.ApiActivity)
    nested = copy.deepcopy(good)
    nested["src_endpoint"]["office_floor"] = "3"
    assert ocsf_violations(nested, ocsf_events.ApiActivity) == [
        ".src_endpoint.office_floor: not an attribute"
    ]
    method = copy.deepcopy(good)
    method["http_request"]["http_method"] = "FETCH"
    assert ocsf_violations(method, ocsf_events.ApiActivity)
