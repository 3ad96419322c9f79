"""Issue 4, item 2 end to end: the demo CRM behind the gateway with a real OPA.

Every rule of the policy is shown through HTTP: the test calls the gateway with
an API key, the gateway asks an OPA process (the repository's rego/, copied so
working hours do not depend on when the suite runs) and rewrites the demo CRM's
answer. Grants go through the same Redis store the gateway reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.access.grants import GrantService
from gateway.state.client import connect
from gateway.state.grants import RedisGrantStore
from tests.conftest import ROOT, OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import (
    ALWAYS_OPEN,
    DemoCrm,
    headers,
    policy_copy,
    start_demo_crm,
    start_policy_gateway,
    wait_event,
)
from tests.security.records_harness import serve

pytestmark = pytest.mark.integration

BASE = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
OPEN_HOURS = {**BASE["time_place"], "hours": ALWAYS_OPEN, "holidays": []}


def _opa(dest: Path, **config: Any) -> Iterator[OpaProcess]:
    opa = OpaProcess([policy_copy(dest, ROOT, **config)])
    opa.start()
    try:
        yield opa
    finally:  # also when a test iterating over it fails (the generator is closed)
        opa.stop()


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from _opa(tmp_path_factory.mktemp("rego") / "open", time_place=OPEN_HOURS)


@pytest.fixture
async def crm() -> AsyncIterator[DemoCrm]:
    c = await start_demo_crm(count=120)
    yield c
    await c.stop()


@pytest.fixture
async def gw(tmp_path: Path, crm: DemoCrm, opa: OpaProcess) -> AsyncIterator[Gateway]:
    g = await start_policy_gateway(
        tmp_path, crm, **{"policy.engine": "external", "policy.url": opa.url}
    )
    yield g
    await g.stop()


def pick(crm: DemoCrm, **want: Any) -> dict[str, Any]:
    for r in crm.records:
        if all(r[k] == v for k, v in want.items()):
            return r
    raise AssertionError(f"no demo record with {want}")


async def get(gw: Gateway, path: str, who: str, **extra: str) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url + path, headers=headers(who, **extra)) as r,
    ):
        return r.status, await r.text(), dict(r.headers)


async def customer(gw: Gateway, rec: dict[str, Any], who: str, **extra: str) -> dict[str, Any]:
    status, body, _ = await get(gw, f"/api/customers/{rec['id']}", who, **extra)
    assert status == 200, body
    out: dict[str, Any] = orjson.loads(body)["customer"]
    return out


def plain(crm: DemoCrm) -> dict[str, Any]:
    return pick(crm, grade="C", tier="一般")


# --- least privilege by level ---------------------------------------------------------


async def test_levels_clear_standard_strict_and_top_level_removed(
    gw: Gateway, crm: DemoCrm
) -> None:
    rec = plain(crm)
    rm = await customer(gw, rec, "rm", X_Purpose="advisory")  # L3 clearance
    assert rm["mobile"] == rec["mobile"]  # L2: clear
    assert rm["annual_income"] == rec["annual_income"]  # L3: clear
    card = rec["bank_card"]  # L4: one above -> standard mask (keeps 6 + 4)
    assert rm["bank_card"] != card
    assert rm["bank_card"][:6] == card[:6] and rm["bank_card"][-4:] == card[-4:]
    assert "query_password" not in rm  # L5: always removed
    sales = await customer(gw, rec, "sales")  # L2 clearance
    assert sales["mobile"] == rec["mobile"]
    assert sales["annual_income"] != rec["annual_income"]  # L3: standard
    assert sales["bank_card"] == "*" * (len(card) - 4) + card[-4:]  # L4: strict
    assert "query_password" not in sales
    rm4 = await customer(gw, rec, "rm4", X_Purpose="advisory")  # L4 but role views to L3
    assert rm4["bank_card"] != card


# --- operations scoped per role ---------------------------------------------------------


async def test_export_follows_the_roles_export_level(gw: Gateway, crm: DemoCrm) -> None:
    status, cs_csv, _ = await get(gw, "/api/customers/export.csv", "cs")  # export L0
    assert status == 200
    status, rm_csv, _ = await get(gw, "/api/customers/export.csv", "rm")  # export L2
    assert status == 200
    shown = [r for r in crm.records if r["mobile"] in rm_csv]
    assert shown, "the relationship manager's export shows L2 contact data in clear"
    for r in crm.records:
        assert r["mobile"] not in cs_csv and r["id_number"] not in cs_csv
        assert r["bank_card"] not in rm_csv and r["bank_card"] not in cs_csv


async def test_write_above_the_write_level_is_refused(gw: Gateway, crm: DemoCrm) -> None:
    rec = plain(crm)
    url = f"{gw.url}/api/customers/{rec['id']}"
    async with aiohttp.ClientSession() as s:
        async with s.patch(
            url, headers=headers("sales"), json={"bank_card": "6222020200112345678"}
        ) as r:
            assert r.status == 403
            assert "bank_card" in await r.text()
        async with s.patch(url, headers=headers("sales"), json={"mobile": "13812345678"}) as r:
            assert r.status == 200
        async with s.patch(url, headers=headers("risk"), json={"mobile": "13812345678"}) as r:
            assert r.status == 403  # risk officers have no modify permission at all


# --- step-up, disabled, partners ---------------------------------------------------------


async def test_missing_mfa_where_required_asks_for_step_up(gw: Gateway, crm: DemoCrm) -> None:
    status, body, hdrs = await get(
        gw, f"/api/customers/{plain(crm)['id']}", "risk_nomfa", X_Purpose="risk_review"
    )
    assert status == 401, body
    assert 'error="insufficient_user_authentication"' in hdrs["WWW-Authenticate"]
    assert hdrs["WWW-Authenticate"].startswith("Bearer")


async def test_disabled_subject_is_refused(gw: Gateway, crm: DemoCrm) -> None:
    status, body, _ = await get(gw, f"/api/customers/{plain(crm)['id']}", "departed")
    assert status == 403
    assert plain(crm)["name"] not in body


async def test_partners_strict_assigned_consented_unexpired_allowed_network(
    gw: Gateway, crm: DemoCrm
) -> None:
    status, body, _ = await get(gw, "/api/customers?page_size=120", "partner-01")
    assert status == 200
    results = orjson.loads(body)["results"]
    eligible = {
        x["id"] for x in crm.records
        if x["owner"] == "u-partner-01" and x["consent"]["sharing"] and x["grade"] == "C"
        and x["tier"] in ("一般", "VIP", "重要")
    }  # fmt: skip
    assert eligible and {r["id"] for r in results} == eligible
    for r in results:  # strict masks even for levels the partner's clearance covers
        src = next(x for x in crm.records if x["id"] == r["id"])
        assert r["annual_income"] != src["annual_income"]
        assert r["bank_card"] == "*" * (len(src["bank_card"]) - 4) + src["bank_card"][-4:]
    unassigned = pick(crm, grade="C", tier="一般", owner="u-sales-01")
    status, body, _ = await get(gw, f"/api/customers/{unassigned['id']}", "partner-01")
    assert unassigned["name"] not in body
    for who in ("partner_old", "partner_far"):  # expired; outside the IP allow-list
        status, body, _ = await get(gw, "/api/customers?page_size=5", who)
        assert status == 403, (who, body)


# --- record grades and tiers ----------------------------------------------------------


async def test_tiers_vip_stricter_and_lapsed_limited_to_roles(gw: Gateway, crm: DemoCrm) -> None:
    vip = pick(crm, grade="C", tier="VIP")
    assert (await customer(gw, vip, "sales"))["mobile"] != vip["mobile"]  # L2 -> L3
    assert (await customer(gw, plain(crm), "sales"))["mobile"] == plain(crm)["mobile"]
    lost = pick(crm, grade="C", tier="流失")
    status, body, _ = await get(gw, f"/api/customers/{lost['id']}", "sales")
    assert status == 404 and orjson.loads(body)["error"] == "not_found"  # as if absent
    kept = await customer(gw, lost, "retention", X_Purpose="retention")
    assert kept["name"] == lost["name"]


async def test_grade_c_by_department(gw: Gateway, crm: DemoCrm) -> None:
    rec = plain(crm)
    assert (await customer(gw, rec, "cs"))["name"] == rec["name"]  # customer_service listed
    status, body, _ = await get(gw, f"/api/customers/{rec['id']}", "admin")  # dept "it"
    assert status == 404 and orjson.loads(body)["error"] == "not_found"  # as if absent


# --- purpose and marketing consent ----------------------------------------------------


async def test_purpose_header_and_marketing_consent(gw: Gateway, crm: DemoCrm) -> None:
    rec = plain(crm)
    assert (await customer(gw, rec, "rm"))["annual_income"] != rec["annual_income"]
    assert (await customer(gw, rec, "rm", X_Purpose="advisory"))["annual_income"] == rec[
        "annual_income"
    ]
    # a purpose the role may not declare is refused, naming those it may, not ignored
    for undeclarable in ("marketing", "made-up", "ADVISORY"):
        status, body, _ = await get(gw, f"/api/customers/{rec['id']}", "rm",
                                    X_Purpose=undeclarable)  # fmt: skip
        refusal = orjson.loads(body)
        assert status == 403 and refusal["error"] == "purpose_not_declarable", body
        assert refusal["details"]["declarable"] == ["advisory", "loan_application", "service"]
        assert "advisory, loan_application, service" in refusal["message"]
        assert refusal["request_id"] and str(rec["annual_income"]) not in body
    refused = await wait_event(gw, lambda crm: b"purpose_not_declarable" in orjson.dumps(crm))
    assert refused["purpose"] == "ADVISORY"  # the refusal is audited with what was declared
    no = pick(crm, grade="C", tier="一般", consent={"marketing": False, "sharing": False})
    yes = pick(crm, grade="C", tier="一般", consent={"marketing": True, "sharing": False})
    masked = await customer(gw, no, "mkt", X_Purpose="marketing")
    assert masked["mobile"] != no["mobile"] and masked["name"] != no["name"]
    assert (await customer(gw, yes, "mkt", X_Purpose="marketing"))["mobile"] == yes["mobile"]


# --- time and place ---------------------------------------------------------------------


async def test_external_zone_masks_l3(tmp_path: Path, crm: DemoCrm, opa: OpaProcess) -> None:
    gw = await start_policy_gateway(
        tmp_path, crm, **{"policy.engine": "external", "policy.url": opa.url,
                          "guard.network_zones": {"internal": [], "vpn": []}}
    )  # fmt: skip
    try:
        rec = plain(crm)
        out = await customer(gw, rec, "rm", X_Purpose="advisory")
        assert out["mobile"] == rec["mobile"] and out["annual_income"] != rec["annual_income"]
    finally:
        await gw.stop()


async def test_outside_working_hours_masks_l3_unless_on_call(
    tmp_path: Path, crm: DemoCrm, redis_url: str
) -> None:
    closed = {**BASE["time_place"], "hours": {}, "holidays": []}  # no working hours at all
    for opa in _opa(tmp_path / "closed", time_place=closed):
        gw = await start_policy_gateway(
            tmp_path, crm,
            **{"policy.engine": "external", "policy.url": opa.url, "redis.url": redis_url},
        )  # fmt: skip
        svc = GrantService(await RedisGrantStore.open(connect(redis_url), owns_client=True))
        try:
            rec = plain(crm)
            out = await customer(gw, rec, "rm", X_Purpose="advisory")
            assert out["mobile"] == rec["mobile"] and out["annual_income"] != rec["annual_income"]
            await grant(svc, "u-rm", "wealth", "oncall", "security", justification="rota")
            started = time.monotonic()
            while (await customer(gw, rec, "rm", X_Purpose="advisory"))["annual_income"] != rec[
                "annual_income"
            ]:
                assert time.monotonic() - started < 5.0, "on-call grant never applied"
                await asyncio.sleep(0.1)
        finally:
            await svc.close()
            await close_gateway(gw)


# --- bulk --------------------------------------------------------------------------------


async def test_bulk_clear_records_beyond_n_are_masked(tmp_path: Path, crm: DemoCrm) -> None:
    for opa in _opa(tmp_path / "bulk", time_place=OPEN_HOURS,
                    bulk={"max_clear_records": {"L2": 3, "L3": 3, "L4": 3}}):  # fmt: skip
        gw = await start_policy_gateway(
            tmp_path, crm, **{"policy.engine": "external", "policy.url": opa.url}
        )
        try:
            status, body, _ = await get(gw, "/api/customers?page_size=120", "cs")
            assert status == 200
            results = orjson.loads(body)["results"]
            assert len(results) > 3
            src = {r["id"]: r for r in crm.records}
            clear = [r for r in results if r["id_number"] == src[r["id"]]["id_number"]]
            assert len(clear) == 3
            # An export past the limit is refused whole (bulk_action: block).
            status, body, _ = await get(gw, "/api/customers/export.csv", "rm")
            assert status == 403 and orjson.loads(body)["error"] == "blocked_by_policy"
            assert all(r["mobile"] not in body for r in crm.records)
        finally:
            await gw.stop()


async def _row_by_row(crm: DemoCrm) -> tuple[web.AppRunner, str]:
    """The demo CRM's CSV export relayed one row per chunk, each flushed on its own,
    as a CRM that streams its exports sends it."""

    async def export(request: web.Request) -> web.StreamResponse:
        async with (
            aiohttp.ClientSession() as s,
            s.get(crm.url + "/api/customers/export.csv") as r,
        ):
            body = await r.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for line in body.splitlines(keepends=True):
            await resp.write(line)
            await asyncio.sleep(0.002)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/api/customers/export.csv", export)
    return await serve(app)


async def test_a_streamed_export_past_a_blocking_bulk_limit_is_refused_before_release(
    tmp_path: Path, crm: DemoCrm
) -> None:
    """Row by row from the CRM, the quota is used up many chunks in: the rows already
    rewritten are held, so the caller gets a clean 403 rather than a cut connection."""
    runner, url = await _row_by_row(crm)
    streamed = DemoCrm(runner, url, crm.records)
    for opa in _opa(tmp_path / "bulk", time_place=OPEN_HOURS,
                    bulk={"max_clear_records": {"L2": 3, "L3": 3, "L4": 3}}):  # fmt: skip
        gw = await start_policy_gateway(
            tmp_path, streamed, **{"policy.engine": "external", "policy.url": opa.url}
        )
        try:
            for _ in range(3):
                status, body, _ = await get(gw, "/api/customers/export.csv", "rm")
                assert status == 403 and orjson.loads(body)["error"] == "blocked_by_policy"
                assert all(r["mobile"] not in body for r in crm.records)
        finally:
            await gw.stop()
            await runner.cleanup()


# --- grants in Redis: grades, break-glass ---------------------------------------------


@pytest.fixture
async def redis_gw(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess, redis_url: str
) -> AsyncIterator[tuple[Gateway, GrantService]]:
    g = await start_policy_gateway(
        tmp_path, crm,
        **{"policy.engine": "external", "policy.url": opa.url, "redis.url": redis_url},
    )  # fmt: skip
    svc = GrantService(await RedisGrantStore.open(connect(redis_url), owns_client=True))
    yield g, svc
    await svc.close()
    await close_gateway(g)


async def close_gateway(gw: Gateway) -> None:
    """Stop the gateway (its grant store owns and closes its Redis client)."""
    await gw.stop()


async def eventually_visible(gw: Gateway, rec: dict[str, Any], who: str, **extra: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 5.0:
        status, body, _ = await get(gw, f"/api/customers/{rec['id']}", who, **extra)
        if status == 200 and rec["name"] in body:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError("record never became visible")


APPROVERS = {"security": "u-sec", "it": "u-it"}


async def grant(
    svc: GrantService,
    subject: str,
    department: str,
    grant_type: str,
    *approved_by: str,
    justification: str,
    requested_by: str = "u-lead",
    level: str | None = None,
) -> dict[str, Any]:
    """Request a grant, then approve it by each department named (u-sec, u-it)."""
    g = await svc.create(
        subject_id=subject,
        subject_department=department,
        grant_type=grant_type,
        justification=justification,
        requested_by=requested_by,
        level=level,
    )
    await approve(svc, g, *approved_by)
    return g


async def approve(svc: GrantService, g: dict[str, Any], *departments: str) -> None:
    for dept in departments:
        await svc.approve(str(g["id"]), approver_id=APPROVERS[dept], approver_department=dept)


async def test_grade_a_needs_security_and_it_approval(
    redis_gw: tuple[Gateway, GrantService], crm: DemoCrm
) -> None:
    gw, svc = redis_gw
    a = pick(crm, grade="A", tier="一般")
    b = pick(crm, grade="B", tier="一般")
    for rec in (a, b):
        _, body, _ = await get(gw, f"/api/customers/{rec['id']}", "rm", X_Purpose="advisory")
        assert rec["name"] not in body
    g = await grant(svc, "u-rm", "wealth", "grade_a", "security", justification="case 4")
    await asyncio.sleep(0.5)  # half a chain: still hidden
    _, body, _ = await get(gw, f"/api/customers/{a['id']}", "rm", X_Purpose="advisory")
    assert a["name"] not in body
    await approve(svc, g, "it")
    await eventually_visible(gw, a, "rm", X_Purpose="advisory")
    await eventually_visible(gw, b, "rm", X_Purpose="advisory")  # grade_a covers B too
    # The same fully approved grant does not count without MFA.
    await grant(svc, "u-rm_nomfa", "wealth", "grade_a", "security", "it", justification="case 4")
    await asyncio.sleep(0.5)
    status, body, _ = await get(gw, f"/api/customers/{a['id']}", "rm_nomfa", X_Purpose="advisory")
    assert status == 401 and a["name"] not in body  # step-up asked for, nothing shown
    assert orjson.loads(body)["error"] == "insufficient_user_authentication"


async def test_grade_b_grant(redis_gw: tuple[Gateway, GrantService], crm: DemoCrm) -> None:
    gw, svc = redis_gw
    b = pick(crm, grade="B", tier="一般")
    await grant(svc, "u-sales", "retail", "grade_b", "security", justification="case 5")
    await eventually_visible(gw, b, "sales")


async def test_break_glass_with_justification_is_critical(
    redis_gw: tuple[Gateway, GrantService], crm: DemoCrm
) -> None:
    gw, svc = redis_gw
    rec = plain(crm)
    await grant(
        svc,
        "u-rm",
        "wealth",
        "break_glass",
        justification="outage 9",
        requested_by="u-rm",
        level="L4",
    )
    await asyncio.sleep(0.5)
    status, body, _ = await get(gw, f"/api/customers/{rec['id']}", "rm", X_Purpose="advisory")
    assert status == 403 and "X-Justification" in body  # break-glass needs the reason
    assert rec["bank_card"] not in body
    out = await customer(gw, rec, "rm", X_Purpose="advisory", X_Justification="INC-9 fraud")
    assert out["bank_card"] == rec["bank_card"]
    ev = await wait_event(gw, lambda c: c["justification_given"] is True)
    assert ev["decision"]["audit_level"] == "critical"
    assert (await customer(gw, rec, "rm4", X_Purpose="advisory"))["bank_card"] != rec["bank_card"]


# --- report-only and hot reload ---------------------------------------------------------


async def test_report_only_passes_the_body_and_audits(
    tmp_path: Path, crm: DemoCrm, opa: OpaProcess
) -> None:
    gw = await start_policy_gateway(
        tmp_path, crm,
        **{"policy.engine": "external", "policy.url": opa.url, "policy.report_only": True},
    )  # fmt: skip
    try:
        rec = plain(crm)
        out = await customer(gw, rec, "sales")
        assert out["bank_card"] == rec["bank_card"]
        crm_ev = await wait_event(gw, lambda c: c["decision"]["report_only"] is True)
        assert crm_ev["decision"]["report_only"] is True
        # What enforcement would have done, though the body passed unchanged.
        assert crm_ev["fields"]["masked"]["L4"]["bank_card"] == 1
        assert crm_ev["fields"]["dropped"]["L5"]["credentials"] == 1
        status, body, _ = await get(gw, "/_gateway/health", "sales")
        assert status == 200 and orjson.loads(body)["report_only"] is True
    finally:
        await gw.stop()


async def test_hot_reload_changes_revision_without_restart(tmp_path: Path, crm: DemoCrm) -> None:
    rego = policy_copy(tmp_path / "hot", ROOT, time_place=OPEN_HOURS)
    gw = await start_policy_gateway(
        tmp_path, crm, **{"policy.engine": "managed", "policy.rego_dir": str(rego),
                          "policy.revision_poll": 0.25,
                          "policy.output_schema": str(ROOT / "rego/schema/output.json")}
    )  # fmt: skip
    try:
        rec = plain(crm)
        assert (await customer(gw, rec, "sales"))["mobile"] == rec["mobile"]
        data = orjson.loads((rego / "data.json").read_bytes())
        data["crm"]["config"]["revision"] = "hot-2"
        data["crm"]["config"]["roles"]["sales"]["view"] = "L1"  # a rule change
        (rego / "data.json").write_bytes(orjson.dumps(data))
        started = time.monotonic()
        while time.monotonic() - started < 8.0:
            out = await customer(gw, rec, "sales")
            ev = await wait_event(gw, lambda c: True)
            if "hot-2" in str(ev["decision"]["revision"]):
                assert out["mobile"] != rec["mobile"]
                return
            await asyncio.sleep(0.2)
        raise AssertionError("new revision not seen within 8 s")
    finally:
        await gw.stop()


# The grants CLI (bound to directory entries and the OS user) is tested with two
# gateway processes in tests/integration/test_access_multiprocess.py.
