"""The normalised input: what changes the cache key, and the OPA input built from it."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.model import Subject
from gateway.policy.inputs import (
    NormalisedInput,
    PolicyRequest,
    build_opa_input,
    normalise,
    time_piece,
)

ROOT = Path(__file__).resolve().parents[3]
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 2, 30, 15, tzinfo=UTC)  # Wednesday 10:30:15 in Shanghai
TAXONOMY = {"levels": ["L0", "L1", "L2"], "categories": {"name": {"level": "L2", "spi": False}}}

SUBJECT = Subject(
    id="u1", roles=("sales", "auditor"), department="sales", clearance="L2", mfa=True,
    auth_method="jwt",
)  # fmt: skip
REQUEST = PolicyRequest(
    method="get", operation="view", route_template="/api/customers/{id}", purpose="sales",
    justification=False, network_zone="internal", network_allowed=True, now=NOW,
)  # fmt: skip
GRANT = {
    "id": "g-1", "type": "grade_b", "level": None, "approved_by": ["security"],
    "expires": "2026-11-26T00:00:00Z", "justification": "ticket 7", "subject": "u1",
}  # fmt: skip


def norm(
    subject: Subject = SUBJECT,
    request: PolicyRequest = REQUEST,
    grants: list[dict[str, Any]] | None = None,
    revision: str = "r1",
) -> tuple[NormalisedInput, datetime]:
    return normalise(
        subject, request, revision=revision, taxonomy_digest="t", grants=grants or [],
        tz=TZ, report_only=False,
    )  # fmt: skip


def test_same_request_same_key_within_the_hour() -> None:
    a, _ = norm()
    b, _ = norm(request=dataclasses.replace(REQUEST, now=NOW + timedelta(minutes=20)))
    assert a == b
    assert hash(a) == hash(b)
    assert a.digest() == b.digest()


@pytest.mark.parametrize(
    "change",
    [
        {"subject": dataclasses.replace(SUBJECT, clearance="L3")},
        {"subject": dataclasses.replace(SUBJECT, mfa=False)},
        {"subject": dataclasses.replace(SUBJECT, department="risk")},
        {"request": dataclasses.replace(REQUEST, route_template="/api/customers")},
        {"request": dataclasses.replace(REQUEST, purpose="marketing")},
        {"request": dataclasses.replace(REQUEST, network_zone="vpn")},
        {"request": dataclasses.replace(REQUEST, operation="export")},
        {"request": dataclasses.replace(REQUEST, now=NOW + timedelta(hours=1))},
        {"grants": [GRANT]},
        {"revision": "r2"},
    ],
)
def test_every_policy_relevant_change_changes_the_key(change: dict[str, Any]) -> None:
    base, _ = norm()
    other, _ = norm(**change)
    assert other != base
    assert other.digest() != base.digest()


def test_role_order_and_duplicates_do_not_matter() -> None:
    a, _ = norm()
    b, _ = norm(subject=dataclasses.replace(SUBJECT, roles=("auditor", "sales", "sales")))
    assert a == b


def test_time_piece_is_the_local_hour() -> None:
    start, end = time_piece(NOW, [], TZ)
    assert start == datetime(2026, 11, 25, 10, 0, tzinfo=TZ)
    assert end == datetime(2026, 11, 25, 11, 0, tzinfo=TZ)


def test_time_piece_cut_at_boundaries() -> None:
    passed = datetime(2026, 11, 25, 10, 20, 5, 500, tzinfo=TZ)
    coming = datetime(2026, 11, 25, 10, 45, tzinfo=TZ)
    elsewhere = datetime(2026, 11, 26, 10, 45, tzinfo=TZ)
    start, end = time_piece(NOW, [passed, coming, elsewhere], TZ)
    assert start == datetime(2026, 11, 25, 10, 20, 6, tzinfo=TZ)  # strictly after it
    assert end == coming


def test_expired_partner_is_evaluated_after_the_expiry() -> None:
    expired = dataclasses.replace(
        SUBJECT, partner=True, partner_expires=NOW - timedelta(minutes=10)
    )
    n, _ = norm(subject=expired)
    opa = build_opa_input(n, TAXONOMY)
    assert expired.partner_expires is not None
    assert datetime.fromisoformat(opa["request"]["time"]["rfc3339"]) > expired.partner_expires
    current = dataclasses.replace(expired, partner_expires=NOW + timedelta(minutes=10))
    _, end = norm(subject=current)
    assert end == current.partner_expires


def test_grant_expiry_ends_the_piece() -> None:
    soon = {**GRANT, "expires": (NOW + timedelta(minutes=5)).isoformat()}
    _, end = norm(grants=[soon])
    assert end == NOW + timedelta(minutes=5)


def test_opa_input_matches_the_published_schema() -> None:
    schema = json.loads((ROOT / "rego" / "schema" / "input.json").read_text())
    n, _ = norm(grants=[GRANT])
    doc = build_opa_input(n, TAXONOMY)
    jsonschema.validate(doc, schema)
    assert doc["request"]["time"] == {
        "weekday": 3, "hour": 10, "date": "2026-11-25", "rfc3339": "2026-11-25T10:00:00+08:00",
    }  # fmt: skip
    assert doc["request"]["method"] == "GET"
    assert doc["subject"]["roles"] == ["auditor", "sales"]
    assert doc["grants"] == [
        {"id": "g-1", "type": "grade_b", "approved_by": ["security"],
         "expires": "2026-11-26T00:00:00Z", "justification": "ticket 7"}
    ]  # fmt: skip


def test_level_grant_carries_its_level() -> None:
    n, _ = norm(grants=[{**GRANT, "type": "level", "level": "L4"}])
    assert build_opa_input(n, TAXONOMY)["grants"][0]["level"] == "L4"


def test_opa_input_is_a_function_of_the_key() -> None:
    a, _ = norm(grants=[GRANT])
    b, _ = norm(
        request=dataclasses.replace(REQUEST, now=NOW + timedelta(minutes=3)), grants=[GRANT]
    )
    assert a == b
    assert build_opa_input(a, TAXONOMY) == build_opa_input(b, TAXONOMY)


_INPUT_SCHEMA = json.loads((ROOT / "rego" / "schema" / "input.json").read_text())
_instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
_grants = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.text("abcdef0123", min_size=1, max_size=6),
            "type": st.sampled_from(["grade_a", "grade_b", "oncall", "break_glass", "level"]),
            "level": st.sampled_from([None, "L3", "L4"]),
            "approved_by": st.lists(st.sampled_from(["security", "it", "business"]), max_size=2),
            "expires": _instants.map(lambda d: d.isoformat()),
            "justification": st.one_of(st.none(), st.text(max_size=10)),
        }
    ),
    max_size=3,
    unique_by=lambda g: str(g["id"]),
)


@given(
    now=_instants,
    minutes=st.integers(0, 59),
    clearance=st.sampled_from(["L0", "L1", "L2", "L3", "L4", "L5"]),
    roles=st.lists(st.sampled_from(["sales", "auditor", "risk_officer"]), max_size=3),
    zone=st.sampled_from(["internal", "vpn", "external"]),
    purpose=st.one_of(st.none(), st.sampled_from(["sales", "audit"])),
    partner_expires=st.one_of(st.none(), _instants),
    grants=_grants,
)
def test_any_request_gives_a_schema_valid_input_that_only_depends_on_the_key(
    now: datetime,
    minutes: int,
    clearance: str,
    roles: list[str],
    zone: str,
    purpose: str | None,
    partner_expires: datetime | None,
    grants: list[dict[str, Any]],
) -> None:
    subject = dataclasses.replace(
        SUBJECT, clearance=clearance, roles=tuple(roles), partner=partner_expires is not None,
        partner_expires=partner_expires,
    )  # fmt: skip
    request = dataclasses.replace(REQUEST, now=now, network_zone=zone, purpose=purpose)
    a, end = norm(subject=subject, request=request, grants=grants)
    doc = build_opa_input(a, TAXONOMY)
    jsonschema.validate(doc, _INPUT_SCHEMA)
    assert end > now
    start = datetime.fromisoformat(doc["request"]["time"]["rfc3339"])
    assert start <= now + timedelta(seconds=1)
    assert now - start < timedelta(hours=1)
    # Anywhere inside the same piece the key, and so the input, is the same.
    later = now + timedelta(minutes=minutes)
    if later < end:
        b, _ = norm(subject=subject, request=dataclasses.replace(request, now=later), grants=grants)
        assert b == a
        assert build_opa_input(b, TAXONOMY) == doc
