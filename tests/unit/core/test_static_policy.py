"""The static action table: least privilege by level, same Decision type as OPA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.core.model import Action, Decision, Subject, Verb
from gateway.core.static_policy import static_decision, synthetic_subject
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.load(ROOT / "config" / "taxonomy.yaml")


def test_clear_at_or_below_clearance_standard_one_above_strict_further(
    taxonomy: Taxonomy,
) -> None:
    d = static_decision(taxonomy, Subject(id="u1", clearance="L2"), method="GET")
    assert isinstance(d, Decision)
    assert d.allow
    assert d.field_action("name", "L2") == Action(Verb.ALLOW)
    assert d.field_action("customer_no", "L1") == Action(Verb.ALLOW)
    assert d.field_action("income", "L3") == Action(Verb.MASK, "standard")
    assert d.field_action("bank_card", "L4") == Action(Verb.MASK, "strict")
    assert d.levels["L3"] == Action(Verb.MASK, "standard")


def test_top_level_dropped_even_for_highest_clearance(taxonomy: Taxonomy) -> None:
    d = static_decision(taxonomy, Subject(id="root", clearance="L5"), method="GET")
    assert d.field_action("credentials", "L5") == Action(Verb.DROP)
    assert d.levels["L5"] == Action(Verb.DROP)
    assert d.field_action("bank_card", "L4") == Action(Verb.ALLOW)


def test_partner_never_gets_standard_profile(taxonomy: Taxonomy) -> None:
    until = datetime.now(UTC) + timedelta(days=1)
    partner = Subject(id="p", clearance="L2", partner=True, partner_expires=until)
    d = static_decision(taxonomy, partner, method="GET")
    assert d.field_action("name", "L2") == Action(Verb.ALLOW)
    assert d.field_action("income", "L3") == Action(Verb.MASK, "strict")
    assert d.obligations.audit_level == "detailed"


def test_expired_partner_and_disabled_subject_denied(taxonomy: Taxonomy) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    expired = Subject(id="p", clearance="L4", partner=True, partner_expires=now - timedelta(1))
    assert not static_decision(taxonomy, expired, method="GET", now=now).allow
    live = Subject(id="p", clearance="L4", partner=True, partner_expires=now + timedelta(1))
    assert static_decision(taxonomy, live, method="GET", now=now).allow
    disabled = static_decision(
        taxonomy, Subject(id="x", clearance="L4", disabled=True), method="GET"
    )
    assert not disabled.allow
    assert disabled.reason == "subject_disabled"
    assert disabled.field_action("name", "L2") == Action(Verb.BLOCK)
    # As the policy says: a partner's access needs an expiry that has not passed.
    unbounded = Subject(id="p", clearance="L2", partner=True)
    assert static_decision(taxonomy, unbounded, method="GET").reason == "partner_access_expired"


def test_unknown_clearance_denied(taxonomy: Taxonomy) -> None:
    assert not static_decision(taxonomy, Subject(id="x", clearance="L9"), method="GET").allow


def test_write_only_within_clearance(taxonomy: Taxonomy) -> None:
    d = static_decision(taxonomy, Subject(id="u", clearance="L2"), method="PUT")
    assert d.may_write("mobile")
    assert d.may_write("gender")
    assert not d.may_write("income")
    assert not d.may_write("bank_card")
    top = static_decision(taxonomy, Subject(id="u", clearance="L5"), method="POST")
    assert not top.may_write("credentials")
    assert top.may_write("bank_card")
    # Like the policy, the write flags do not depend on the method that asks.
    read = static_decision(taxonomy, Subject(id="u", clearance="L2"), method="GET")
    assert read.write == d.write


def test_every_category_named_and_round_trips_through_json(taxonomy: Taxonomy) -> None:
    d = static_decision(taxonomy, synthetic_subject("L3"), method="GET", revision="r1")
    assert set(d.fields) == set(taxonomy.categories)
    assert d.revision == "r1"
    assert d.explain["income"] == "allow: L3 within clear limit L3 (clearance L3)"
    assert d.explain["bank_card"] == "mask standard: L4 above clear limit L3 (clearance L3)"
    again = Decision.from_json(
        {
            "allow": d.allow,
            "reason": d.reason,
            "revision": d.revision,
            "fields": {k: v.to_json() for k, v in d.fields.items()},
            "levels": {k: v.to_json() for k, v in d.levels.items()},
            "write": dict(d.write),
            "explain": dict(d.explain),
        }
    )
    assert again == d


def test_with_the_policy_rules_roles_purpose_time_place_and_mfa_cap_the_limit(
    taxonomy: Taxonomy,
) -> None:
    import json

    from gateway.core.static_policy import RequestFacts, StaticRules

    config = json.loads((ROOT / "rego" / "data.json").read_text(encoding="utf-8"))
    rules = StaticRules.from_config(config["crm"]["config"])
    rm = Subject(id="rm", roles=("relationship_manager",), clearance="L4", mfa=True)
    weekday = datetime(2026, 11, 25, 10, tzinfo=UTC)  # a Wednesday, 10:00

    def limit(subject: Subject = rm, **facts: object) -> str:
        req = RequestFacts(**{"purpose": "service", "at": weekday, **facts})  # type: ignore[arg-type]
        d = static_decision(taxonomy, subject, method="GET", request=req, rules=rules)
        assert d.allow, d.reason
        clear = [code for code, a in d.levels.items() if a == Action(Verb.ALLOW)]
        return clear[-1] if clear else "none"

    assert limit() == "L3"  # the role's view scope, below the clearance
    assert limit(purpose=None) == "L2"  # purpose required from L3
    assert limit(at=datetime(2026, 11, 25, 22, tzinfo=UTC)) == "L2"  # after hours
    assert limit(at=datetime(2026, 10, 1, 10, tzinfo=UTC)) == "L2"  # a holiday
    assert limit(network_zone="external") == "L2"
    compliance = Subject(id="c", roles=("compliance",), clearance="L4", mfa=False)
    assert limit(compliance, purpose="audit") == "L3"  # MFA required from L4
    refused = static_decision(
        taxonomy, rm, method="DELETE", request=RequestFacts(operation="delete"), rules=rules
    )
    assert refused.reason == "operation_not_permitted: no role permits delete"
