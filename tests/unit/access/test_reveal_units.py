"""Reveal with reason, the parts without I/O: handle sealing, which masked fields
the enforcer offers, the catalog's reveal routes, the obligation, lockdown, grant
scopes, reasons and the header's bounds. The flows run in
tests/integration/test_reveal.py."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.access.errors import (
    RevealHandleExpired,
    RevealHandleInvalid,
    RevealNotAllowed,
    RevealNotYours,
    RevealReasonRequired,
)
from gateway.access.handles import Handle, HandleCodec, credential_fingerprint, handle_key, owned
from gateway.access.lockdown import overlay
from gateway.access.reveal import RevealService, lifted
from gateway.core.catalog import Catalog
from gateway.core.enforce import build_enforcer
from gateway.core.masking import Masker
from gateway.core.model import ALLOW, Action, Decision, DecisionError, Obligations, Reveal, Subject
from gateway.core.reveal import RevealTargets
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ConfigError
from gateway.settings import load_settings
from gateway.state.grants import in_scope
from gateway.state.ratelimit import MemoryRateLimiter

ROOT = Path(__file__).resolve().parents[3]
TAXONOMY = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
CATALOG = Catalog.load(ROOT / "config" / "crm" / "demo.yaml")
MASK = Action.from_json({"action": "mask", "style": "standard"})
CS = Subject("u-cs", roles=("customer_service",), auth_method="api_key",
             attributes={"credential_id": "k-cs"})  # fmt: skip


def codec() -> HandleCodec:
    return HandleCodec(b"k" * 32)


def handle(**over: Any) -> Handle:
    fields: dict[str, Any] = {
        "subject": "u-cs",
        "fingerprint": credential_fingerprint(CS),
        "route": "customer_detail",
        "record_id": "C000026",
        "field": "annual_income",
        "category": "income",
        "level": "L3",
        "expires": int(time.time()) + 60,
        "issued_by_request": "r1",
        **over,
    }
    return Handle(**fields)


# --- handles --------------------------------------------------------------------------


def test_a_handle_round_trips_and_says_nothing_in_clear() -> None:
    token = codec().seal(handle())
    assert token.isascii() and len(token) < 400
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for secret in (b"C000026", b"annual_income", b"income", b"u-cs", b"customer_detail"):
        assert secret not in raw
    assert owned(codec().unseal(token), CS) == handle()
    assert codec().seal(handle()) != token  # a fresh nonce each time


def test_every_changed_byte_is_refused() -> None:
    token = codec().seal(handle())
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        forged = base64.urlsafe_b64encode(bytes(bad)).rstrip(b"=").decode()
        with pytest.raises(RevealHandleInvalid):
            codec().unseal(forged)


@pytest.mark.parametrize("token", ["", "x", "A" * 2000, 42, None, ["a"], "not base64 !!", "QUJD"])
def test_malformed_handles_are_invalid(token: Any) -> None:
    with pytest.raises(RevealHandleInvalid):
        codec().unseal(token)


def test_another_key_or_version_is_invalid() -> None:
    with pytest.raises(RevealHandleInvalid):
        HandleCodec(b"other key material").unseal(codec().seal(handle()))


def test_expired_and_foreign_handles() -> None:
    with pytest.raises(RevealHandleExpired):
        codec().unseal(codec().seal(handle(expires=int(time.time()) - 1)))
    token = codec().seal(handle())
    other = Subject("u-cs2", auth_method="api_key", attributes={"credential_id": "k-cs2"})
    with pytest.raises(RevealNotYours):
        owned(codec().unseal(token), other)
    # the same subject on another credential (another key, another session)
    rekeyed = Subject("u-cs", auth_method="api_key", attributes={"credential_id": "k-cs-new"})
    with pytest.raises(RevealNotYours):
        owned(codec().unseal(token), rekeyed)


def test_handle_key_from_the_environment() -> None:
    assert handle_key("K", b"fallback", environ={}) == b"fallback"
    assert handle_key("K", b"fallback", environ={"K": "ab" * 32}) == bytes.fromhex("ab" * 32)
    with pytest.raises(ConfigError, match="K"):
        handle_key("K", b"fallback", environ={"K": "not hex"})
    with pytest.raises(ConfigError, match="32 bytes"):
        handle_key("K", b"fallback", environ={"K": "abcd"})


# --- the obligation, lockdown, grant scopes -----------------------------------------------


def test_reveal_obligation_parses_and_fails_closed() -> None:
    parsed = Obligations.from_json(
        {"reveal": {"categories": ["income"], "limit": 3, "period_seconds": 60}}
    )
    assert parsed.reveal == Reveal(frozenset({"income"}), 3, 60.0)
    assert Obligations.from_json({}).reveal.categories == frozenset()
    # a limit of 0 reveals nothing
    assert Reveal.from_json({"categories": ["income"], "limit": 0}, "reveal").categories == set()
    with pytest.raises(DecisionError, match=r"obligations\.reveal"):
        Obligations.from_json({"reveal": {"categories": "income", "limit": 1}})


def _decision(**reveal: Any) -> Decision:
    return Decision.from_json(
        {
            "allow": True,
            "fields": {"income": MASK.to_json(), "mobile": {"action": "allow"}},
            "levels": {},
            "obligations": {"reveal": {"limit": 5, "period_seconds": 60, **reveal}},
        }
    )


def test_lockdown_leaves_nothing_above_its_level_revealable() -> None:
    decision = _decision(categories=["income", "customer_no"])
    locked = overlay(decision, {"max_clear_level": "L1"}, TAXONOMY, "view")
    assert locked.obligations.reveal.categories == {"customer_no"}  # L1: clear anyway


def test_view_and_reveal_grant_scopes() -> None:
    view = {"id": "g1", "type": "grade_a", "scope": {"operations": ["view"]}}
    rev = {"id": "g2", "type": "reveal", "scope": {"operations": ["reveal"]}}
    odd = {"id": "g3", "type": "grade_a", "scope": {"operations": ["reveal"]}}
    export = {"id": "g4", "type": "bulk_export", "scope": {"operations": ["export"]}}
    grants = [view, rev, odd, export]
    assert [g["id"] for g in in_scope(grants, "reveal", "/x")] == ["g1", "g2", "g3"]
    # a view decision learns of reveal grants (to offer handles), of no other reveal-scoped one
    assert [g["id"] for g in in_scope(grants, "view", "/x")] == ["g1", "g2"]
    assert [g["id"] for g in in_scope(grants, "export", "/x")] == ["g4"]


def test_lifted_opens_one_category_everywhere() -> None:
    decision = Decision.from_json(
        {
            "allow": True,
            "fields": {"mobile": MASK.to_json(), "income": MASK.to_json()},
            "levels": {},
            "records": [
                {"when": {"tier": ["VIP"]}, "fields": {"mobile": "drop", "income": "drop"}}
            ],
        }
    )
    out = lifted(decision, "mobile")
    assert out.fields["mobile"] == ALLOW and out.fields["income"] == MASK
    assert dict(out.records[0].fields) == {"income": Action.from_json("drop")}


# --- what the enforcer offers -----------------------------------------------------------------


def _targets(categories: set[str], limit: int = 20) -> RevealTargets:
    return RevealTargets(
        categories=frozenset(categories),
        levels={n: c.level for n, c in TAXONOMY.categories.items()},
        never=frozenset({"L5"}),
        id_key="id",
        limit=limit,
    )


def _customer(i: int, **over: Any) -> dict[str, Any]:
    return {
        "id": f"C{i:06d}",
        "name": "张三",
        "mobile": "13812345678",
        "annual_income": 87000,
        "total_assets": None,
        "query_password": "123456",
        "grade": "C",
        "tier": "一般",
        **over,
    }


def _enforce(decision: Decision, doc: Any, targets: RevealTargets) -> Any:
    route = CATALOG.route("customer_list")
    enforcer = build_enforcer(
        taxonomy=TAXONOMY,
        route=route,
        decision=decision,
        subject_id="u-cs",
        masker=Masker(TAXONOMY, b"k" * 32),
    )
    enforcer.reveal = targets
    return enforcer.rewrite_document(doc)


def _masked_table(**fields: Any) -> Decision:
    base = {c: {"action": "allow"} for c in TAXONOMY.categories}
    base.update({"income": MASK.to_json(), "assets": MASK.to_json(),
                 "credentials": {"action": "drop"}, **fields})  # fmt: skip
    return Decision.from_json({"allow": True, "fields": base, "levels": {}})


def test_only_masked_revealable_non_null_fields_of_identified_records() -> None:
    targets = _targets({"income", "assets", "mobile", "credentials"})
    doc = {"results": [_customer(1), _customer(2, annual_income=None)]}
    out = _enforce(_masked_table(), doc, targets)
    assert [(t.record_id, t.field, t.category, t.level) for t in targets.items] == [
        ("C000001", "annual_income", "income", "L3")
    ]  # mobile is clear, total_assets null, query_password dropped (and L5)
    assert out["results"][0]["annual_income"] != 87000  # the body is masked as ever


def test_no_handles_when_the_record_id_is_not_clear() -> None:
    targets = _targets({"income"})
    _enforce(_masked_table(customer_no=MASK.to_json()), {"results": [_customer(1)]}, targets)
    assert targets.items == []


def test_the_bound_is_kept_and_said() -> None:
    targets = _targets({"income"}, limit=2)
    _enforce(_masked_table(), {"results": [_customer(i) for i in range(5)]}, targets)
    assert len(targets.items) == 2 and targets.truncated


def test_top_level_never_offered_even_if_the_policy_lists_it() -> None:
    targets = _targets({"credentials"})
    table = _masked_table(credentials=MASK.to_json())
    _enforce(table, {"results": [_customer(1)]}, targets)
    assert targets.items == []


# --- the catalog --------------------------------------------------------------------------------


def _catalog(**route: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "version": 1,
        "record": {"id": "id"},
        "routes": [
            {"name": "detail", "path": "/c/{id}", "methods": ["GET"], "records": ["c"]},
            {"name": "list", "path": "/c", "methods": ["GET"], "records": ["items.item"], **route},
        ],
    }


def test_reveal_routes_are_validated() -> None:
    Catalog.from_dict(_catalog(reveal_route="detail"))
    for bad, msg in (("nope", "no route named"), ("list", "exactly one"), ("", "name of a route")):
        with pytest.raises(ValueError, match=msg):
            Catalog.from_dict(_catalog(reveal_route=bad))


def test_reveal_path_is_one_segment_of_the_read_route() -> None:
    detail = CATALOG.route("customer_detail")
    assert detail is not None
    assert CATALOG.reveal_path(detail, "C000026") == "/api/customers/C000026"
    assert CATALOG.reveal_path(detail, "a/b") == "/api/customers/a%2Fb"
    assert CATALOG.reveal_path(detail, "search") is None  # a fixed path wins: not this route
    assert CATALOG.reveal_path(detail, "") is None


# --- reasons and the header -----------------------------------------------------------------


def _service(**reveal: Any) -> RevealService:
    settings = load_settings(None, environ={}).with_overrides(
        **{f"reveal.{k}": v for k, v in reveal.items()}
    )
    return RevealService(
        settings, catalog=CATALOG, taxonomy=TAXONOMY, codec=codec(), limiter=MemoryRateLimiter()
    )


@pytest.mark.parametrize(
    "reason", [None, 5, "", "      ", "abc", "......!!", "aaaaaaaa", "12345678", "查看"]
)
def test_trivial_reasons_are_refused(reason: Any) -> None:
    with pytest.raises(RevealReasonRequired):
        _service().check_reason(reason)


def test_reasons_are_normalised_and_capped() -> None:
    svc = _service(max_reason=16)
    assert svc.check_reason("  客户来电核实手机号  ") == "客户来电核实手机号"
    assert svc.check_reason("ＣＵＳＴＯＭＥＲ　ＣＡＬＬ") == "CUSTOMER CALL"  # NFKC
    assert len(svc.check_reason("customer called " * 10)) == 16


def test_the_header_is_ascii_json_within_its_byte_bound() -> None:
    svc = _service(max_header_bytes=1024)
    targets = _targets({"income", "name"})
    for i in range(10):
        targets.offer(f"C{i:06d}", "annual_income", "income")
        targets.offer(f"客户{i}", "名字", "name")
    route = CATALOG.match("GET", "/api/customers")
    assert route is not None
    value, carried = svc.header(targets, CS, route, "r1")
    assert value.isascii() and len(value) <= 1024
    doc = orjson.loads(value)
    assert doc["truncated"] is True and 0 < len(doc["handles"]) == carried < 20
    assert doc["handles"][1]["record"] == "客户0"  # escaped on the wire, exact when parsed
    first = codec().unseal(doc["handles"][0]["handle"])
    assert (first.route, first.record_id, first.field) == ("customer_detail", "C000000",
                                                           "annual_income")  # fmt: skip


def test_check_decision_refuses_the_top_level_and_unlisted_categories() -> None:
    svc = _service()
    decision = _decision(categories=["income", "credentials"])
    svc.check_decision(decision, handle())
    for bad in (
        handle(field="query_password", category="credentials", level="L5"),
        handle(field="bank_card", category="bank_card", level="L4"),
        handle(category="income", level="L4"),  # the handle's level is not the taxonomy's
    ):
        with pytest.raises(RevealNotAllowed):
            svc.check_decision(decision, bad)
