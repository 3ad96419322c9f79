"""Issue 11, class 7: search and filter oracles, against real servers.

The demo CRM (behind a recorder, `oracle_upstream.py`) sits behind a real gateway
asking a real OPA (the repository's rego/, open hours so the clock does not
matter, the customer-service lookup limited to 3 per hour so the limit is
reachable). Low-clearance callers (`cs`, `sales`, `partner-01`, and an L1
customer-service agent for ID numbers) filter, sort and search by fields they
see masked, in every spelling the attack used: each is refused with 403
`protected_field_filter`, the probed value appears neither in the response nor
in the audit event, and the CRM never received the request. The policy's lookup
(customer service finding a customer by the exact number the customer gave)
works within its rate limit, is refused beyond it (also across two replicas
sharing Redis), and repeated probing raises a `filter_probe` alert.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from yarl import URL

from tests.conftest import ROOT, OpaProcess
from tests.integration.gateway_harness import Gateway, write_key_directory
from tests.integration.policy_http_harness import (
    ALWAYS_OPEN,
    STAFF,
    audit_events,
    headers,
    key_of,
    policy_copy,
    start_policy_gateway,
)
from tests.security.oracle_upstream import RecordingCrm, start_recording_crm

pytestmark = pytest.mark.integration

BASE = orjson.loads((ROOT / "rego" / "data.json").read_bytes())["crm"]["config"]
OPEN_HOURS = {**BASE["time_place"], "hours": ALWAYS_OPEN, "holidays": []}
LOOKUP_LIMIT = 3
LOOKUP = {
    "customer_service": {
        "categories": ["id_number", "mobile", "name"],
        "limit": LOOKUP_LIMIT,
        "period_seconds": 3600,
    }
}
# STAFF plus an L1 customer-service agent, for whom ID numbers (L2) are masked.
SUBJECTS = {
    **STAFF,
    "cs_l1": {"roles": ["customer_service"], "department": "customer_service", "clearance": "L1"},
}
LOW = ("cs", "sales", "partner-01")


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    dest = tmp_path_factory.mktemp("rego") / "oracles"
    proc = OpaProcess([policy_copy(dest, ROOT, time_place=OPEN_HOURS, lookup=LOOKUP)])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
async def crm() -> AsyncIterator[RecordingCrm]:
    c = await start_recording_crm(count=60)
    yield c
    await c.stop()


async def _gateway(tmp_path: Path, crm: RecordingCrm, opa: OpaProcess, **extra: Any) -> Gateway:
    tmp_path.mkdir(parents=True, exist_ok=True)
    directory = write_key_directory(
        tmp_path / "subjects.yaml",
        [({"id": f"u-{n}", **e}, f"k-{n}", key_of(n)) for n, e in SUBJECTS.items()],
    )
    return await start_policy_gateway(
        tmp_path,
        crm.crm,
        **{
            "policy.engine": "external",
            "policy.url": opa.url,
            "identity.directory": str(directory),
            **extra,
        },
    )


@pytest.fixture
async def gw(tmp_path: Path, crm: RecordingCrm, opa: OpaProcess) -> AsyncIterator[Gateway]:
    g = await _gateway(tmp_path, crm, opa)
    yield g
    await g.stop()


def vip(crm: RecordingCrm) -> dict[str, Any]:
    """A VIP customer of grade C: visible to cs, sales and partner-01 (its owner), its
    contact data masked for all three (VIP raises contact data one level)."""
    for r in crm.records:
        if r["tier"] == "VIP" and r["grade"] == "C" and r["owner"] == "u-partner-01":
            return r
    raise AssertionError("no VIP grade C customer in the demo data")


async def call(
    gw: Gateway, raw: str, who: str, method: str = "GET", **extra: str
) -> tuple[int, bytes, dict[str, str]]:
    """Send `raw` (path and query) exactly as written: no client-side re-encoding."""
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, URL(gw.url + raw, encoded=True), headers=headers(who, **extra)) as r,
    ):
        return r.status, await r.read(), {k.lower(): v for k, v in r.headers.items()}


async def event_for(gw: Gateway, request_id: str, within: float = 5.0) -> dict[str, Any]:
    started = time.monotonic()
    while time.monotonic() - started < within:
        for event in audit_events(gw):
            if event.get("http_request", {}).get("uid") == request_id:
                return event
        await asyncio.sleep(0.05)
    raise AssertionError(f"no audit event for request {request_id}")


def q(text: str) -> str:
    return quote(text, safe="")


# Spellings with a partial value (a prefix of the VIP's mobile, or a range/sort):
# refused for every low-clearance caller, lookups or not (a lookup is exact).
# {p}: 7-digit prefix of the mobile; {m}: the whole mobile; {c}: bank-card prefix.
PARTIAL = {
    "phone": "/api/customers?phone={p}",
    "mobile_exact_key_partial": "/api/customers?mobile={p}",
    "django_startswith": "/api/customers?mobile__startswith={p}",
    "django_related": "/api/customers?customer__mobile__icontains={p}",
    "wildcard": "/api/customers?mobile={p}*",
    "sql_wildcard": "/api/customers?mobile={p}%25",
    "search_route_q": "/api/customers/search?q={p}",
    "list_q": "/api/customers?q={p}",
    "search_param": "/api/customers?search={p}",
    "keyword": "/api/customers?keyword={p}",
    "ordering_bank_card": "/api/customers?ordering=bank_card",
    "sort_desc_income": "/api/customers?sort=-annual_income",
    "order_by_mobile_desc": "/api/customers?order_by=mobile%20desc",
    "sort_bracket": "/api/customers?sort%5Bmobile%5D=asc",
    "jsonapi_filter": "/api/customers?filter[mobile]={p}",
    "jsonapi_filter_encoded": "/api/customers?filter%5Bmobile%5D={p}",
    "where_json_regex": "/api/customers?where=" + q('{"mobile": {"$regex": "^'),
    "where_json_partial": "/api/customers?where=" + q('{"mobile": "'),
    "income_gte": "/api/customers?annual_income__gte=500000",
    "income_range": "/api/customers?annual_income__range=500000,600000",
    "pinyin_sjhm": "/api/customers?sjhm={p}",
    "chinese_key": "/api/customers?" + q("手机号") + "={p}",
    "fullwidth_key": "/api/customers?" + q("ｍｏｂｉｌｅ") + "={p}",
    "double_encoded_key": "/api/customers?%256dobile={p}",
    "odata_filter": "/api/customers?$filter=" + q("mobile eq '") + "{p}" + q("'"),
    "rsql_filter": "/api/customers?filter=" + q("mobile==") + "{p}*",
    "ransack": "/api/customers?q%5Bmobile_cont%5D={p}",
    "semicolon_separator": "/api/customers?page=1;mobile={p}",
    "bank_card_prefix": "/api/customers?bank_card={c}",
    "pinyin_card": "/api/customers?yhkh={c}",
    "mobile_in_list": "/api/customers?mobile__in={m},{m2}",
    "graphql_query": "/api/customers?query=" + q('{customers(mobile: "') + "{p}" + q('"){id}}'),
    "matrix_param": "/api/customers;mobile={p}",
    "path_by_field": "/api/customers/by-mobile/{p}",
    "path_search_field": "/api/customers/search/phone/{p}",
}
# A path normaliser may refuse matrix parameters outright (400 bad_path): also fine.
ALSO_ACCEPTED = {"matrix_param": "bad_path"}
# The same JSON documents, completed after the value.
JSON_TAILS = {"where_json_regex": q('"}}'), "where_json_partial": q('"}')}
# Whole values: refused for sales and partner-01; for cs these are exact lookups.
WHOLE = {
    "mobile_key": "/api/customers?mobile={m}",
    "search_route_q": "/api/customers/search?q={m}",
    "unknown_key_value": "/api/customers?x={m}",
    "where_json": "/api/customers?where=" + q('{"mobile": "') + "{m}" + q('"}'),
    "path_segment": "/api/customers/{m}",
    "name_search": "/api/customers/search?q={name}",
}


def _fill(template: str, who: dict[str, Any], other: dict[str, Any], case: str) -> str:
    raw = template.format(
        p=who["mobile"][:7],
        m=who["mobile"],
        m2=other["mobile"],
        c=who["bank_card"][:8],
        name=q(who["name"]),
    )
    return raw + JSON_TAILS.get(case, "")


async def _assert_refused(
    gw: Gateway,
    crm: RecordingCrm,
    raw: str,
    who: str,
    secrets: list[str],
    also: str = "",
    **extra: str,
) -> dict[str, Any]:
    before = len(crm.recorder.seen)
    status, body, hdrs = await call(gw, raw, who, **extra)
    doc: dict[str, Any] = orjson.loads(body)
    assert doc["request_id"] == hdrs["x-request-id"]
    if also and doc["error"] == also:
        assert status == 400 and len(crm.recorder.seen) == before
        return {"details": {"parameters": [{"category": "mobile"}]}}
    assert status == 403, (raw, who, status, body[:300])
    assert doc["error"] == "protected_field_filter"
    assert "parameters" in doc["details"] and doc["details"]["parameters"]
    for secret in secrets:
        assert secret not in body.decode(), f"{raw}: the value was echoed"
    assert len(crm.recorder.seen) == before, f"{raw}: the CRM received the request"
    for secret in secrets:
        assert not crm.recorder.mentioning(secret), f"{raw}: the value reached the CRM"
    event = await event_for(gw, doc["request_id"])
    dumped = orjson.dumps(event).decode()
    for secret in secrets:
        assert secret not in dumped, f"{raw}: the value is in the audit event"
    assert event["http_response"]["code"] == 403
    assert "protected_field_filter" in event["unmapped"]["crm"]["decision"]["reason"]
    return doc


@pytest.mark.parametrize("who", LOW)
@pytest.mark.parametrize("case", sorted(PARTIAL))
async def test_partial_and_range_filters_are_refused(
    gw: Gateway, crm: RecordingCrm, case: str, who: str
) -> None:
    target = vip(crm)
    other = next(r for r in crm.records if r["id"] != target["id"])
    raw = _fill(PARTIAL[case], target, other, case)
    secrets = [target["mobile"][:7], target["bank_card"][:8], other["mobile"]]
    doc = await _assert_refused(gw, crm, raw, who, secrets, ALSO_ACCEPTED.get(case, ""))
    cats = {p["category"] for p in doc["details"]["parameters"]}
    assert cats & {"mobile", "income", "bank_card"}, doc


@pytest.mark.parametrize("who", ["sales", "partner-01"])
@pytest.mark.parametrize("case", sorted(WHOLE))
async def test_whole_values_are_refused_without_a_lookup(
    gw: Gateway, crm: RecordingCrm, case: str, who: str
) -> None:
    target = vip(crm)
    raw = _fill(WHOLE[case], target, target, case)
    await _assert_refused(gw, crm, raw, who, [target["mobile"], target["name"]])


@pytest.mark.parametrize(
    "raw",
    [
        "/api/customers?id_number={i}",
        "/api/customers?zjhm={i}",
        "/api/customers?id_number__startswith={ip}",
        "/api/customers/search?q={ip}",
    ],
)
async def test_id_number_filters_refused_below_its_level(
    gw: Gateway, crm: RecordingCrm, raw: str
) -> None:
    """An L1 agent sees ID numbers masked: a partial ID is refused even though the
    role may look customers up by their exact ID number."""
    target = vip(crm)
    partial = target["id_number"][:10]
    path = raw.format(i=partial, ip=partial)
    await _assert_refused(gw, crm, path, "cs_l1", [partial])


@pytest.mark.parametrize(
    "cookie",
    ["mobile={mp}", "sjhm={mp}", "sid=abc; mobile__startswith={mp}", "q={mp}",
     "sort=-annual_income", "filter%5Bmobile%5D={mp}"],
)  # fmt: skip
async def test_a_filter_in_a_cookie_is_refused_like_one_in_the_query(
    gw: Gateway, crm: RecordingCrm, cookie: str
) -> None:
    """ASP.NET's Request["mobile"] (and PHP's $_REQUEST with cookies in request_order)
    reads a cookie when the query has no such parameter: the same oracle."""
    target = vip(crm)
    partial = target["mobile"][:7]
    await _assert_refused(
        gw, crm, "/api/customers", "sales", [partial], Cookie=cookie.format(mp=partial)
    )


async def test_session_cookies_are_no_filters(gw: Gateway, crm: RecordingCrm) -> None:
    status, body, _ = await call(
        gw, "/api/customers", "sales", Cookie="sessionid=13912345678abc; csrftoken=x1"
    )
    assert status == 200, body[:300]


# -- what must still work -----------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "raw", "extra"),
    [
        ("cs", "/api/customers?page=2&page_size=5", {}),
        ("cs", "/api/customers?grade=C&tier=VIP", {}),
        ("sales", "/api/customers?page=1&fields=mobile", {}),
        ("sales", "/api/customers?name=", {}),
        ("rm", "/api/customers?mobile={m}", {"X_Purpose": "service"}),
        ("rm", "/api/customers?sort=-annual_income", {"X_Purpose": "service"}),
    ],
)
async def test_filters_within_clearance_pass(
    gw: Gateway, crm: RecordingCrm, who: str, raw: str, extra: dict[str, str]
) -> None:
    """No over-blocking: paging, clear categories, empty filters, and a relationship
    manager (L3 with a declared purpose) filtering by what he sees in clear."""
    target = vip(crm)
    path = raw.format(m=target["mobile"])
    status, body, _ = await call(gw, path, who, **extra)
    assert status == 200, (path, body[:300])
    assert crm.recorder.seen[-1].raw_path == path


async def test_lookup_works_within_its_limit_and_is_refused_beyond(
    gw: Gateway, crm: RecordingCrm
) -> None:
    target = vip(crm)
    mobile = target["mobile"]
    for _ in range(LOOKUP_LIMIT):
        status, body, _ = await call(gw, f"/api/customers/search?q={mobile}", "cs")
        assert status == 200, body[:300]
        results = orjson.loads(body)["results"]
        assert [r["id"] for r in results] == [target["id"]]
        assert results[0]["mobile"] != mobile  # the VIP's number stays masked for cs
        assert crm.recorder.seen[-1].raw_path == f"/api/customers/search?q={mobile}"
    before = len(crm.recorder.seen)
    status, body, hdrs = await call(gw, f"/api/customers?mobile={mobile}", "cs")
    assert status == 429, body[:300]
    doc = orjson.loads(body)
    assert doc["error"] == "rate_limited" and "lookup" in doc["message"]
    assert mobile not in body.decode()
    assert int(hdrs["retry-after"]) >= 1
    assert len(crm.recorder.seen) == before
    event = await event_for(gw, doc["request_id"])
    assert mobile not in orjson.dumps(event).decode()


async def test_name_lookup_counts_too(gw: Gateway, crm: RecordingCrm) -> None:
    target = vip(crm)
    path = f"/api/customers/search?q={q(target['name'])}"
    for _ in range(LOOKUP_LIMIT):
        status, body, _ = await call(gw, path, "cs")
        assert status == 200, body[:300]
        assert target["id"] in {r["id"] for r in orjson.loads(body)["results"]}
    status, _, _ = await call(gw, path, "cs")
    assert status == 429


async def test_lookup_limit_is_shared_by_replicas(
    tmp_path: Path, crm: RecordingCrm, opa: OpaProcess, redis_url: str
) -> None:
    """Two gateways on one Redis: the lookup limit holds across them."""
    a = await _gateway(tmp_path / "a", crm, opa, **{"redis.url": redis_url})
    b = await _gateway(tmp_path / "b", crm, opa, **{"redis.url": redis_url})
    try:
        mobile = vip(crm)["mobile"]
        path = f"/api/customers/search?q={mobile}"
        for i in range(LOOKUP_LIMIT):
            status, body, _ = await call(a if i % 2 else b, path, "cs")
            assert status == 200, body[:300]
        before = len(crm.recorder.seen)
        assert (await call(a, path, "cs"))[0] == 429
        assert (await call(b, path, "cs"))[0] == 429
        assert len(crm.recorder.seen) == before
    finally:
        await a.stop()
        await b.stop()


async def test_repeated_probing_raises_an_alert(
    tmp_path: Path, crm: RecordingCrm, opa: OpaProcess
) -> None:
    """Guessing numbers one by one (refused) and looking many up (allowed) are both
    counted as distinct protected values per subject: the alert fires at the threshold
    and names no value."""
    # A week-long window: four probes do not straddle a window boundary in practice.
    monitor = {
        "monitor.enabled": True,
        "monitor.filter_probes": 4,
        "monitor.window_seconds": 604800,
    }
    g = await _gateway(tmp_path, crm, opa, **monitor)
    try:
        prefix = vip(crm)["mobile"][:6]
        guesses = [f"{prefix}{d}" for d in "0123"]
        for guess in guesses[:3]:
            assert (await call(g, f"/api/customers?mobile__startswith={guess}", "sales"))[0] == 403
        await asyncio.sleep(0.3)
        assert not _alerts(g, "u-sales")
        assert (await call(g, f"/api/customers?q={guesses[3]}", "sales"))[0] == 403
        alert = await _wait_alert(g, "u-sales")
        dumped = orjson.dumps(alert).decode()
        assert all(guess not in dumped for guess in guesses)
        assert "4 distinct protected values" in alert["message"]
        # Customer service: three allowed lookups of other customers, then one refusal.
        others = [str(r["mobile"]) for r in crm.records if r["tier"] == "VIP"][:3]
        for mobile in others:
            assert (await call(g, f"/api/customers/search?q={mobile}", "cs"))[0] == 200
        assert (await call(g, "/api/customers?sort=-bank_card", "cs"))[0] == 403
        dumped = orjson.dumps(await _wait_alert(g, "u-cs")).decode()
        assert all(mobile not in dumped for mobile in others)
    finally:
        await g.stop()


def _alerts(gw: Gateway, subject: str) -> list[dict[str, Any]]:
    return [
        e
        for e in audit_events(gw)
        if e.get("class_uid") == 2004
        and "filter_probe" in e.get("finding_info", {}).get("types", [])
        and subject in orjson.dumps(e).decode()
    ]


async def _wait_alert(gw: Gateway, subject: str, within: float = 5.0) -> dict[str, Any]:
    started = time.monotonic()
    while time.monotonic() - started < within:
        found = _alerts(gw, subject)
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError("no filter_probe alert")
