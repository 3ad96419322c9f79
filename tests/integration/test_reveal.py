"""Issue 17 item 5, reveal with reason (查看明文), end to end: real gateways, real OPA on
the repository's policy, real Redis, the demo CRM. Each flow asserts the value
that comes back (the CRM's own, nothing else), every refusal's stable code, and
what the tamper-evident audit chain holds (never the value).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.access.handles import Handle, HandleCodec, credential_fingerprint
from gateway.audit.verify import verify_stream
from gateway.stages import STAGES
from tests.conftest import ROOT, OpaProcess
from tests.integration.console_harness import CSRF, alerts, governance_events, pick, until
from tests.integration.gateway_harness import Gateway, start_gateway, write_key_directory
from tests.integration.policy_http_harness import (
    ALWAYS_OPEN,
    DemoCrm,
    audit_events,
    policy_copy,
    start_demo_crm,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PEOPLE: dict[str, dict[str, Any]] = {
    "cs": {"roles": ["customer_service"], "department": "customer_service", "clearance": "L2"},
    "cs2": {"roles": ["customer_service"], "department": "customer_service", "clearance": "L2"},
    "rm": {
        "roles": ["relationship_manager"],
        "department": "wealth",
        "clearance": "L3",
        "mfa": True,
    },
    "sec1": {"roles": ["approver"], "department": "security", "clearance": "L1"},
    "it1": {"roles": ["approver"], "department": "it", "clearance": "L1"},
    "secadmin": {
        "roles": ["security_admin"],
        "department": "security",
        "clearance": "L1",
        "mfa": True,
    },
    "partner": {
        "roles": ["customer_service"],
        "department": "customer_service",
        "clearance": "L2",
        "partner": True,
        "partner_expires": "2099-01-01",
    },
}
CS_LIMIT = 4  # reveals per hour for customer service in this test's policy
REASON = "客户来电核实收入 (customer called to verify)"


def key_of(name: str) -> str:
    return f"reveal-key-{name}-0123456789"


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    base = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
    reveal = base["reveal"]
    roles = {**reveal["roles"]}
    roles["customer_service"] = {**roles["customer_service"], "limit": CS_LIMIT}
    dest = tmp_path_factory.mktemp("reveal") / "rego"
    server = OpaProcess(
        [
            policy_copy(
                dest,
                ROOT,
                time_place={**base["time_place"], "hours": ALWAYS_OPEN, "holidays": []},
                reveal={**reveal, "roles": roles},
            )
        ]
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def crm() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=120)
    yield c
    await c.stop()


def overrides(tmp_path: Path, opa: OpaProcess, redis_url: str, **extra: Any) -> dict[str, Any]:
    people = [({"id": f"u-{n}", **e}, f"k-{n}", key_of(n)) for n, e in PEOPLE.items()]
    values: dict[str, Any] = {
        "identity.directory": str(write_key_directory(tmp_path / "people.yaml", people)),
        "policy.engine": "external",
        "policy.url": opa.url,
        "policy.timeout": 2.0,
        "policy.rego_dir": str(opa.bundle_dirs[0]),
        "policy.output_schema": str(ROOT / "rego" / "schema" / "output.json"),
        "redis.url": redis_url,
    }
    values.update(extra)
    return values


@pytest.fixture
async def gw(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> AsyncIterator[Gateway]:
    g = await start_gateway(tmp_path, crm.url, **overrides(tmp_path, opa, redis_url))
    yield g
    await g.stop()


async def get(
    gw: Gateway | str, path: str, who: str, *, opt_in: bool = True, **extra: Any
) -> tuple[int, dict[str, str], bytes]:
    base = gw if isinstance(gw, str) else gw.url
    sent = {"X-API-Key": key_of(who), **{k.replace("_", "-"): v for k, v in extra.items()}}
    if opt_in:
        sent["X-Gateway-Reveal"] = "handles"
    async with aiohttp.ClientSession() as s, s.get(base + path, headers=sent) as r:
        return r.status, dict(r.headers), await r.read()


async def handles(gw: Gateway | str, rec: dict[str, Any], who: str, **extra: Any) -> dict[str, str]:
    """field -> handle for one customer, as the gateway offers them to `who`."""
    status, headers, body = await get(gw, f"/api/customers/{rec['id']}", who, **extra)
    assert status == 200, body
    raw = headers.get("X-Gateway-Reveal-Handles")
    if raw is None:
        return {}
    doc = orjson.loads(raw)
    assert raw.isascii() and doc["truncated"] is False
    assert {h["record"] for h in doc["handles"]} <= {rec["id"]}
    return {h["field"]: h["handle"] for h in doc["handles"]}


async def reveal(
    gw: Gateway | str, who: str | None, body: Any, *, csrf: bool = True, **extra: Any
) -> tuple[int, dict[str, str], Any]:
    base = gw if isinstance(gw, str) else gw.url
    sent = {**(CSRF if csrf else {}), **{k.replace("_", "-"): v for k, v in extra.items()}}
    if who is not None:
        sent["X-API-Key"] = key_of(who)
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{base}/_gateway/reveal", json=body, headers=sent) as r,
    ):
        raw = await r.read()
        return r.status, dict(r.headers), orjson.loads(raw) if raw else None


def reveals(gw: Gateway) -> list[dict[str, Any]]:
    return [e for e in governance_events(gw) if e["action"] in ("field_revealed", "reveal_refused")]


async def grant(gw: Gateway, who: str, grant_type: str, approvers: list[str], **scope: Any) -> str:
    body = {
        "purpose": "complaint 2026-118",
        "justification": "customer complaint review",
        "scope": {"grant_type": grant_type, **scope},
        "duration_hours": 2,
    }
    status, out = await _api(gw, who, "POST", "/requests", body)
    assert status == 201, out
    for approver in approvers:
        status, out = await _api(gw, approver, "POST", f"/requests/{out['id']}/approve", {})
        assert status == 200, out
    assert out["status"] == "active", out
    return str(out["id"])


async def _api(gw: Gateway, who: str, method: str, path: str, body: Any = None) -> Any:
    sent = {**CSRF, "X-API-Key": key_of(who)}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, f"{gw.url}/_gateway/admin{path}", json=body, headers=sent) as r,
    ):
        raw = await r.read()
        return r.status, orjson.loads(raw) if raw else None


# --- without the opt-in nothing changes -----------------------------------------------


async def test_without_the_opt_in_the_response_is_unchanged(gw: Gateway, crm: DemoCrm) -> None:
    c = pick(crm, grade="C", tier="一般")
    path = f"/api/customers/{c['id']}"
    plain = await get(gw, path, "cs", opt_in=False)
    other = await get(gw, path, "cs", opt_in=False, X_Gateway_Reveal="no thanks")
    offered = await get(gw, path, "cs")

    def comparable(resp: tuple[int, dict[str, str], bytes]) -> tuple[Any, ...]:
        status, headers, body = resp
        skip = {"date", "x-request-id", "x-gateway-reveal-handles"}
        kept = sorted((k, v) for k, v in headers.items() if k.lower() not in skip)
        # the demo CRM stamps each answer (`"fetched_at":"...+08:00"`): its clock aside,
        # the bytes are compared as they are
        return status, kept, re.sub(rb'"fetched_at":"[^"]*"', b"", body)

    assert "X-Gateway-Reveal-Handles" not in plain[1]
    assert "X-Gateway-Reveal-Handles" not in other[1]
    assert "X-Gateway-Reveal-Handles" in offered[1]
    # the same bytes and the same headers, handles or not: the body is never reshaped
    assert comparable(plain) == comparable(other) == comparable(offered)
    masked = orjson.loads(plain[2])["customer"]
    assert masked["annual_income"] != c["annual_income"]  # still masked, opt-in or not
    offered_n = len(orjson.loads(offered[1]["X-Gateway-Reveal-Handles"])["handles"])

    def handed_out() -> list[int]:
        return [
            e["unmapped"]["crm"]["reveal_handles"]
            for e in audit_events(gw)
            if e.get("class_uid") == 6003
            and e["unmapped"]["crm"]["status"] == 200
            and e["unmapped"]["crm"]["phase"] == "final"  # not the before-release copy
        ]

    await until(lambda: _true(len(handed_out()) >= 3), what="access events")
    assert sorted(handed_out()) == [0, 0, offered_n]  # the access event counts the handles


# --- C: customer service reveals an L3 value of a grade C customer ----------------------


async def test_customer_service_reveals_an_l3_value_with_a_reason(
    gw: Gateway, crm: DemoCrm
) -> None:
    c = pick(crm, grade="C", tier="一般")
    offered = await handles(gw, c, "cs")
    # L3 values masked for an L2 caller; nothing at L4 without a grant; never L5;
    # nothing the caller already sees in clear
    assert {"annual_income", "total_assets", "risk_level"} <= set(offered)
    assert not {"bank_card", "balance", "securities_account", "query_password"} & set(offered)
    assert not {"name", "mobile", "id_number"} & set(offered)

    status, headers, out = await reveal(
        gw, "cs", {"handle": offered["annual_income"], "reason": REASON}
    )
    assert status == 200, out
    assert out["value"] == c["annual_income"]  # the CRM's own value, fetched again
    assert (out["record_id"], out["field"], out["category"], out["level"]) == (
        c["id"],
        "annual_income",
        "income",
        "L3",
    )
    assert set(out) == {"record_id", "field", "category", "level", "value", "request_id"}
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"].startswith("application/json")

    # A handle names one field: asking it for another is refused, and so is another record.
    status, _, out = await reveal(
        gw, "cs", {"handle": offered["total_assets"], "field": "annual_income", "reason": REASON}
    )
    assert (status, out["error"]) == (403, "reveal_handle_invalid")
    status, _, out = await reveal(
        gw, "cs", {"handle": offered["total_assets"], "record": "C000001", "reason": REASON}
    )
    assert (status, out["error"]) == (403, "reveal_handle_invalid")

    await until(lambda: _true(any(e["action"] == "field_revealed" for e in reveals(gw))))
    event = next(e for e in reveals(gw) if e["action"] == "field_revealed")
    assert event["actor"] == event["subject"] == "u-cs"
    assert event["reason"] == REASON
    details = event["details"]
    assert details["record_id"] == c["id"] and details["field"] == "annual_income"
    assert (details["category"], details["level"]) == ("income", "L3")
    assert details["route"] == "/api/customers/{id}" and details["decision"] == "allowed"
    raw = orjson.dumps(
        [e for e in audit_events(gw) if "governance" in (e.get("unmapped") or {})]
    ).decode()
    assert str(c["annual_income"]) not in raw  # never the value


async def test_refusals_before_anything_is_revealed(gw: Gateway, crm: DemoCrm) -> None:
    c = pick(crm, grade="C", tier="一般")
    h = (await handles(gw, c, "cs"))["annual_income"]
    cases: list[tuple[str | None, Any, dict[str, Any], tuple[int, str]]] = [
        ("cs", {"handle": h}, {}, (400, "reveal_reason_required")),
        ("cs", {"handle": h, "reason": "   "}, {}, (400, "reveal_reason_required")),
        ("cs", {"handle": h, "reason": "......!!"}, {}, (400, "reveal_reason_required")),
        ("cs", {"handle": h, "reason": "查看"}, {}, (400, "reveal_reason_required")),
        ("cs2", {"handle": h, "reason": REASON}, {}, (403, "reveal_not_yours")),
        ("rm", {"handle": h, "reason": REASON}, {}, (403, "reveal_not_yours")),
        ("cs", {"handle": h[:-2] + ("AA" if h[-2:] != "AA" else "BB"), "reason": REASON}, {},
         (403, "reveal_handle_invalid")),
        ("cs", {"handle": h[: len(h) // 2], "reason": REASON}, {}, (403, "reveal_handle_invalid")),
        ("cs", {"handle": "", "reason": REASON}, {}, (403, "reveal_handle_invalid")),
        ("cs", {"reason": REASON}, {}, (403, "reveal_handle_invalid")),
        ("cs", {"handle": h, "reason": REASON}, {"csrf": False}, (403, "csrf_header_required")),
        (None, {"handle": h, "reason": REASON}, {}, (401, "unauthenticated")),
    ]  # fmt: skip
    for who, body, extra, expected in cases:
        status, _, out = await reveal(gw, who, body, **extra)
        assert (status, out["error"]) == expected, (who, body, out)
    # not JSON: refused like any state-changing admin call
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{gw.url}/_gateway/reveal",
            data=f"handle={h}&reason=x",
            headers={**CSRF, "X-API-Key": key_of("cs"),
                     "Content-Type": "application/x-www-form-urlencoded"},
        ) as r,
    ):  # fmt: skip
        assert r.status == 415
    # Every refusal is in the chain with its code; the handle still works for its owner.
    await until(lambda: _true(len(reveals(gw)) >= len(cases) + 1), what="refusals audited")
    codes = [e["details"]["code"] for e in reveals(gw) if e["action"] == "reveal_refused"]
    assert sorted(set(codes)) == sorted(
        {"reveal_reason_required", "reveal_not_yours", "reveal_handle_invalid",
         "csrf_header_required", "unauthenticated", "unsupported_media_type"}
    )  # fmt: skip
    status, _, out = await reveal(gw, "cs", {"handle": h, "reason": REASON})
    assert status == 200 and out["value"] == c["annual_income"]


async def test_expired_foreign_and_never_revealable_handles(gw: Gateway, crm: DemoCrm) -> None:
    """Handles the gateway never issued in this form, sealed with its own key (a real
    codec, as a client holding an old or forged one would send)."""
    c = pick(crm, grade="C", tier="一般")
    stages = gw.runner.app[STAGES]
    assert stages.reveal is not None
    codec = stages.reveal._codec
    subject = stages.identity.directory.current().get("u-cs")
    assert subject is not None
    fp = credential_fingerprint(subject.subject_for("api_key", mfa=False, credential_id="k-cs"))

    def sealed(**over: Any) -> str:
        fields: dict[str, Any] = {
            "subject": "u-cs",
            "fingerprint": fp,
            "route": "customer_detail",
            "record_id": c["id"],
            "field": "annual_income",
            "category": "income",
            "level": "L3",
            "expires": int(time.time()) + 60,
            "issued_by_request": "test",
            **over,
        }
        return codec.seal(Handle(**fields))

    status, _, out = await reveal(gw, "cs", {"handle": sealed(), "reason": REASON})
    assert status == 200 and out["value"] == c["annual_income"]  # the reference case
    cases = [
        (sealed(expires=int(time.time()) - 1), (403, "reveal_handle_expired")),
        (sealed(field="query_password", category="credentials", level="L5"),
         (403, "reveal_not_allowed")),  # L5 is never revealed
        (sealed(field="bank_card", category="bank_card", level="L4"),
         (403, "reveal_not_allowed")),  # L4 without a reveal grant
        (sealed(field="mobile", category="income"), (403, "reveal_handle_invalid")),
        (sealed(route="customer_list"), (403, "reveal_handle_invalid")),
        (sealed(route="no_such_route"), (403, "reveal_handle_invalid")),
        (sealed(fingerprint="0" * 16), (403, "reveal_not_yours")),
        (HandleCodec(b"another gateway's key material").seal(
            Handle("u-cs", fp, "customer_detail", c["id"], "annual_income", "income", "L3",
                   int(time.time()) + 60, "x")), (403, "reveal_handle_invalid")),
    ]  # fmt: skip
    for token, expected in cases:
        status, _, out = await reveal(gw, "cs", {"handle": token, "reason": REASON})
        assert (status, out["error"]) == expected, (expected, out)


# --- contact data raised by a tier rule (VIP), partners ---------------------------------


async def test_vip_contact_data_is_revealable_partners_get_no_handles(
    gw: Gateway, crm: DemoCrm
) -> None:
    vip = pick(crm, grade="C", tier="VIP")
    offered = await handles(gw, vip, "cs")
    assert "mobile" in offered  # L2, masked for VIP customers: revealable with a reason
    status, _, out = await reveal(gw, "cs", {"handle": offered["mobile"], "reason": REASON})
    assert status == 200 and out["value"] == vip["mobile"]
    status, headers, _ = await get(gw, f"/api/customers/{vip['id']}", "partner")
    # a customer the partner's agency is not assigned answers like a missing one (404)
    assert status in (200, 404) and "X-Gateway-Reveal-Handles" not in headers


# --- B and A: L4 values need a reveal grant; the record rules still hold ---------------


async def test_l4_reveal_with_a_reveal_grant_on_grade_b_and_a_records(
    gw: Gateway, crm: DemoCrm
) -> None:
    b = pick(crm, grade="B", tier="一般")
    a = pick(crm, grade="A", tier="一般")
    advisory: dict[str, Any] = {"X_Purpose": "advisory"}
    status, headers, _ = await get(gw, f"/api/customers/{b['id']}", "rm", **advisory)
    assert status == 404 and "X-Gateway-Reveal-Handles" not in headers  # grade B: withheld

    await grant(gw, "rm", "grade_b", ["sec1"])
    shown = await handles(gw, b, "rm", **advisory)
    assert "bank_card" not in shown  # L4 needs a reveal grant
    reveal_id = await grant(gw, "rm", "reveal", ["sec1"], operations=["reveal"])
    shown = await until_handles(gw, b, "rm", "bank_card", **advisory)
    status, _, out = await reveal(gw, "rm", {"handle": shown["bank_card"], "reason": REASON})
    assert (status, out.get("error")) == (403, "reveal_not_allowed")  # no purpose: no reveal
    status, _, out = await reveal(
        gw, "rm", {"handle": shown["bank_card"], "reason": REASON}, X_Purpose="advisory"
    )
    assert status == 200 and out["value"] == b["bank_card"], out
    # the grant did not unmask anything by itself
    _, _, body = await get(gw, f"/api/customers/{b['id']}", "rm", opt_in=False, **advisory)
    assert orjson.loads(body)["customer"]["bank_card"] != b["bank_card"]

    # Grade A: security and IT approve; then the grade A grant is revoked and a handle
    # issued before is refused, the record no longer being visible.
    grade_a = await grant(gw, "rm", "grade_a", ["sec1", "it1"])
    shown_a = await until_handles(gw, a, "rm", "bank_card", **advisory)
    status, _, out = await reveal(
        gw, "rm", {"handle": shown_a["securities_account"], "reason": REASON}, **advisory
    )
    assert status == 200 and out["value"] == a["securities_account"], out
    status, out = await _api(gw, "secadmin", "POST", f"/grants/{grade_a}/revoke",
                             {"reason": "review done"})  # fmt: skip
    assert status == 200, out
    status, _, out = await reveal_soon(
        gw, "rm", shown_a["bank_card"], "record_not_visible", **advisory
    )
    assert (status, out["error"]) == (403, "record_not_visible")
    # and revoking the reveal grant stops the L4 reveal of the grade B customer too
    status, out = await _api(gw, "secadmin", "POST", f"/grants/{reveal_id}/revoke",
                             {"reason": "done"})  # fmt: skip
    assert status == 200, out
    status, _, out = await reveal_soon(
        gw, "rm", shown["bank_card"], "reveal_not_allowed", **advisory
    )
    assert (status, out["error"]) == (403, "reveal_not_allowed")


async def until_handles(
    gw: Gateway, rec: dict[str, Any], who: str, field: str, **extra: Any
) -> dict[str, str]:
    found: dict[str, str] = {}

    async def offered() -> bool:
        found.update(await handles(gw, rec, who, **extra))
        return field in found

    await until(offered, what=f"a handle for {field}")
    return found


async def reveal_soon(
    gw: Gateway, who: str, handle: str, code: str, **extra: Any
) -> tuple[int, dict[str, str], Any]:
    """The reveal, retried until refused with `code` (a revocation reaches every
    replica within a second; the decision cache may hold the last answer until then)."""
    last: list[Any] = []

    async def refused() -> bool:
        last[:] = await reveal(gw, who, {"handle": handle, "reason": REASON}, **extra)
        return isinstance(last[2], dict) and last[2].get("error") == code

    await until(refused, within=3.0, what=code)
    return last[0], last[1], last[2]


# --- rate limit (shared by replicas), lockdown, revocation on another process ----------


async def test_rate_limit_is_shared_and_alerts_once(
    tmp_path: Path, gw: Gateway, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    (tmp_path / "b").mkdir()
    other = await start_gateway(tmp_path / "b", crm.url, **overrides(tmp_path, opa, redis_url))
    try:
        c = pick(crm, grade="C", tier="一般")
        offered = await handles(gw, c, "cs")
        fields = ["annual_income", "total_assets", "risk_level"]
        for i in range(CS_LIMIT):  # alternately on each replica: one shared count
            target = gw if i % 2 else other
            status, _, out = await reveal(
                target, "cs", {"handle": offered[fields[i % 3]], "reason": REASON}
            )
            assert status == 200, out
        for target in (gw, other):
            status, headers, out = await reveal(
                target, "cs", {"handle": offered["annual_income"], "reason": REASON}
            )
            assert (status, out["error"]) == (429, "rate_limited")
            assert int(headers["Retry-After"]) >= 1
        # another caller has a count of their own
        own = await handles(gw, c, "cs2")
        status, _, _ = await reveal(gw, "cs2", {"handle": own["annual_income"], "reason": REASON})
        assert status == 200
    finally:
        await other.stop()

    def limit_alerts() -> list[dict[str, Any]]:
        found = alerts(gw)
        return [a for a in found if a["finding_info"]["types"] == ["reveal_rate_limit"]]

    await until(lambda: _true(bool(limit_alerts())), what="rate limit alert")
    assert len(limit_alerts()) == 1  # two refusals, one alert (across both replicas)
    assert limit_alerts()[0]["unmapped"]["governance"]["subject"] == "u-cs"


async def test_lockdown_stops_reveals(gw: Gateway, crm: DemoCrm) -> None:
    c = pick(crm, grade="C", tier="一般")
    h = (await handles(gw, c, "cs"))["annual_income"]
    status, out = await _api(gw, "secadmin", "POST", "/lockdown", {"reason": "drill"})
    assert status == 200, out
    status, _, out = await reveal_soon(gw, "cs", h, "reveal_not_allowed")
    assert (status, out["error"]) == (403, "reveal_not_allowed")
    assert await handles(gw, c, "cs") == {}  # nor are handles offered meanwhile
    await _api(gw, "secadmin", "POST", "/lockdown/lift", {"reason": "drill over"})


async def test_subject_revoked_on_another_process(
    gw: Gateway, crm: DemoCrm, redis_url: str, tmp_path: Path
) -> None:
    c = pick(crm, grade="C", tier="一般")
    h = (await handles(gw, c, "cs"))["total_assets"]
    config = tmp_path / "cli.yaml"
    config.write_text(f"redis:\n  url: {redis_url}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = str(Path(sys.executable).parent / "crm-gateway")
    proc = await asyncio.create_subprocess_exec(
        cli, "users", "revoke", "u-cs", "--reason", "left the bank", "--by", "u-secadmin",
        "--config", str(config), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    status, _, out = await reveal_soon(gw, "cs", h, "subject_revoked")
    assert (status, out["error"]) == (403, "subject_revoked")


# --- the chain ---------------------------------------------------------------------------


async def test_audit_verify_passes_with_reveal_events(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    gw = await start_gateway(tmp_path, crm.url, **overrides(tmp_path, opa, redis_url))
    try:
        c = pick(crm, grade="C", tier="一般")
        offered = await handles(gw, c, "cs")
        status, _, _ = await reveal(gw, "cs", {"handle": offered["annual_income"],
                                               "reason": REASON})  # fmt: skip
        assert status == 200
        status, _, _ = await reveal(gw, "cs2", {"handle": offered["total_assets"],
                                                "reason": REASON})  # fmt: skip
        assert status == 403
    finally:
        await gw.stop()
    report = await verify_stream(gw.settings, require_closed=True)
    assert report.exit_code == 0, report.summary()
    actions = [e["action"] for e in governance_events(gw)]
    assert "field_revealed" in actions and "reveal_refused" in actions


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value


# --- bounds: a long list, a body streamed past the hold limit -------------------------


async def test_handles_are_bounded_and_say_so(
    tmp_path: Path, gw: Gateway, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> None:
    path = "/api/customers?page_size=100"
    status, headers, body = await get(gw, path, "cs")
    assert status == 200
    doc = orjson.loads(headers["X-Gateway-Reveal-Handles"])
    assert len(doc["handles"]) == 20 and doc["truncated"] is True  # reveal.max_handles
    records = {r["id"] for r in orjson.loads(body)["results"]}
    assert {h["record"] for h in doc["handles"]} <= records

    # A body larger than the hold limit is streamed as it is rewritten: the header
    # carries the handles found before the first bytes left and says more may follow;
    # the body is the same bytes as without the opt-in.
    (tmp_path / "small").mkdir()
    small = await start_gateway(
        tmp_path / "small",
        crm.url,
        **overrides(tmp_path, opa, redis_url, **{"limits.max_response_body": 2048}),
    )
    try:
        status, headers, streamed = await get(small, path, "cs")
        _, plain_headers, plain = await get(small, path, "cs", opt_in=False)
    finally:
        await small.stop()
    assert status == 200
    doc = orjson.loads(headers["X-Gateway-Reveal-Handles"])
    assert doc["truncated"] is True and len(doc["handles"]) <= 20
    assert "Content-Length" not in headers  # streamed
    drop = re.compile(rb'"fetched_at":"[^"]*"')
    assert drop.sub(b"", streamed) == drop.sub(b"", plain)
    assert "X-Gateway-Reveal-Handles" not in plain_headers
