"""Acceptance (issue 13): observe mode learns BottleCRM's traffic, and
`catalog coverage` lists exactly what the catalog lacks.

The same crawl (lists, details and one route the catalog does not declare) runs
through two gateways in observe mode, alongside enforcement: one with the shipped
catalog, one with a copy that lacks a field rule and a route. The second report
differs from the first by exactly that field's paths and that route. The shared
store is the session's real Redis; nothing in it holds a seeded value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import yaml

from gateway.core.catalog import Catalog
from gateway.core.observe import Coverage, coverage
from gateway.observing import OBSERVATIONS
from tests.e2e.conftest import BottleCRM
from tests.e2e.gateway_bottlecrm import (
    CATALOG,
    fetch,
    secret_values,
    seeded_ids,
    start_bottlecrm_gateway,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CRAWL = (
    "/api/contacts/?limit=20",
    "/api/contacts/{contact}/",
    "/api/leads/?limit=20",
    "/api/leads/{lead}/",
    "/api/accounts/?limit=20",
    "/api/accounts/{account}/",
    "/api/opportunities/?limit=20",
    "/api/opportunities/{opportunity}/",
    "/api/accounts/{account}/duplicates/",  # not declared by the shipped catalog
)
REMOVED_FIELD = {"key": "phone_e164", "category": "mobile"}
REMOVED_ROUTE = "/api/opportunities/{id}/"


def _catalog_without(tmp_path: Path) -> Path:
    doc: dict[str, Any] = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    assert REMOVED_FIELD in doc["fields"]
    doc["fields"].remove(REMOVED_FIELD)
    before = len(doc["routes"])
    doc["routes"] = [r for r in doc["routes"] if r["path"] != REMOVED_ROUTE]
    assert len(doc["routes"]) == before - 1
    out = tmp_path / "bottlecrm-lacking.yaml"
    out.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out


async def _crawl(tmp: Path, crm: BottleCRM, catalog: Path, redis_url: str) -> Coverage:
    gw = await start_bottlecrm_gateway(
        tmp,
        crm,
        engine="managed",
        **{
            "classification.catalog": str(catalog),
            "classification.observe.enabled": True,
            "redis.url": redis_url,
        },
    )
    try:
        ids = seeded_ids(crm)
        async with aiohttp.ClientSession() as session:
            for path in CRAWL:
                await fetch(session, gw, path.format(**ids), token=crm.tokens["admin"])
        store = gw.runner.app[OBSERVATIONS]
        for _ in range(100):  # observations are written in the background
            snapshot = await store.snapshot()
            if sum(o["requests"] for o in snapshot.values()) >= len(CRAWL):
                break
            import asyncio

            await asyncio.sleep(0.05)
        assert store.shared
        return coverage(Catalog.load(catalog), snapshot)
    finally:
        await gw.stop()


def _fields(report: Coverage) -> set[tuple[str, str]]:
    return {(f["template"], f["path"]) for f in report.unnamed_fields}


def _routes(report: Coverage) -> set[str]:
    return {r["template"] for r in report.uncatalogued_routes}


def _stored_observations(redis_url: str) -> str:
    """Every key, field and value the observation store wrote, as one text."""
    client = redis.Redis.from_url(redis_url)
    keys: list[bytes] = list(client.keys("*observed*"))  # type: ignore[arg-type]
    parts: list[bytes] = []
    for key in keys:
        rows: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]
        parts += [key, *(f + v for f, v in rows.items())]
    return b"".join(parts).decode()


async def test_coverage_lists_exactly_what_the_catalog_lacks(
    tmp_path: Path, bottlecrm: BottleCRM, redis_url: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shipped = await _crawl(tmp_path / "a", bottlecrm, CATALOG, redis_url)
    print("shipped catalog:\n" + shipped.text())
    stored = _stored_observations(redis_url)
    for kind, values in secret_values(bottlecrm).items():
        assert not [v for v in values if v in stored], kind  # counts and categories only
    redis.Redis.from_url(redis_url).flushdb()
    lacking = await _crawl(tmp_path / "b", bottlecrm, _catalog_without(tmp_path), redis_url)
    print("catalog without phone_e164 and the deal detail:\n" + lacking.text())

    assert "/api/accounts/{}/duplicates/" in _routes(shipped) or any(
        "duplicates" in t for t in _routes(shipped)
    )
    new_routes = _routes(lacking) - _routes(shipped)
    assert {t.replace("{}", "{id}") for t in new_routes} == {REMOVED_ROUTE}, new_routes
    new_fields = _fields(lacking) - _fields(shipped)
    assert new_fields, "the removed field does not show up"
    assert {path.rsplit(".", 1)[-1] for _, path in new_fields} <= {"phone_e164"} | {
        p.rsplit(".", 1)[-1] for t, p in new_fields if t in new_routes
    }, new_fields
    assert any(path.endswith("phone_e164") for t, path in new_fields if t not in new_routes)
    counts = {f["template"]: f["requests"] for f in lacking.unnamed_fields}
    assert all(n >= 1 for n in counts.values())
    # the removed route is now never matched; the shipped catalog saw every crawled one
    assert REMOVED_ROUTE not in {r["template"] for r in lacking.unseen_routes}
    assert "/api/contacts/" not in {r["template"] for r in shipped.unseen_routes}
