"""Enforcement cost of one 20-record JSON page (~8 KB decoded), warm catalog.

Run: .venv/bin/python -m pytest bench/micro -q --benchmark-only

Scenarios:
- l2_sales: a sales caller (clearance L2) under the static table: L2 clear,
  L3 banded, L4 strict, L5 dropped, notes scanned. The common case.
- l2_sales_8k: l2_sales on a list page of the usual columns, 8.2 KB of JSON
  (the size the issue's 150 us target names; l2_sales records are 15 KB).
- l0_mask_all: clearance L0, every customer field masked.
- unknown_keys: the same page through a route the catalog does not know
  (every field classified by key name or value).
- l2_no_notes: l2_sales without the free-text notes (isolates the detectors).
- l4_no_notes: clearance L4, no notes: only the L5 field is touched, so this
  is the enforcer's own bookkeeping (facts, plans, copies, report).
- *_fresh: the same shapes, but every round a different page whose strings
  (names, addresses, ids, cards, notes) were never seen before: the cost
  without the value memos (detect, classify_value, masking operators). The
  scenarios above repeat one page, so after the warm-up their memos always hit.
Each round builds a fresh enforcer (as the handler does per response); the
decision object is reused, as the policy stage's decision cache does.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.core.catalog import Catalog
from gateway.core.detectors.checks import luhn_ok
from gateway.core.enforce import build_enforcer
from gateway.core.masking import Masker
from gateway.core.model import Subject
from gateway.core.static_policy import static_decision
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[2]
TAXONOMY = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
CATALOG = Catalog.load(ROOT / "config" / "crm" / "demo.yaml")
MASKER = Masker(TAXONOMY, b"bench-key-0123456789abcdef012345")
_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _id(i: int) -> str:
    body = f"110105{1950 + i % 50:04d}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _W, strict=True)) % 11]


def _card(i: int) -> str:
    stem = f"622202{i:012d}"
    return next(stem + d for d in "0123456789" if luhn_ok(stem + d))


def _customer(i: int) -> dict[str, Any]:
    return {
        "id": f"C{i:06d}",
        "name": "张伟",
        "gender": "男",
        "id_number": _id(i),
        "mobile": f"138{i:08d}",
        "landline": "010-62345678",
        "email": f"user{i}@example.com",
        "address": "北京市海淀区中关村大街1号院3栋201室",
        "employer": "华信科技有限公司",
        "birth_date": "1980-05-17",
        "annual_income": 350000 + i,
        "total_assets": 2500000.0,
        "balance": 120000.55,
        "bank_card": _card(i),
        "securities_account": "A123456789",
        "holdings": [{"code": "600519", "name": "贵州茅台", "quantity": 100, "market_value": 1.0}],
        "risk_level": "C3",
        "grade": "ABC"[i % 3],
        "tier": "一般",
        "owner": "u-sales-01",
        "department": "retail",
        "consent": {"marketing": True, "sharing": False},
        "notes": "客户来电咨询理财产品" if i % 4 else f"客户来电，手机139{i:08d}，请回电",
        "query_password": "******",
        "created_at": "2024-03-01T10:00:00+08:00",
    }


PAGE = {"count": 20, "page": 1, "page_size": 20, "results": [_customer(i) for i in range(20)]}
PAGE_NO_NOTES = {
    **PAGE,
    "results": [{k: v for k, v in r.items() if k != "notes"} for r in PAGE["results"]],
}
# The reference page: 20 records in about 8 KB of JSON, i.e. a list view
# with the usual columns (identity, contact, income, card, grade, notes) rather
# than the 25-field detail records above (15 KB).
_LIST_COLUMNS = (
    "id", "name", "gender", "id_number", "mobile", "email", "address", "annual_income",
    "bank_card", "grade", "tier", "owner", "department", "notes", "created_at",
)  # fmt: skip
PAGE_8K = {**PAGE, "results": [{k: r[k] for k in _LIST_COLUMNS} for r in PAGE["results"]]}


_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"


def _fresh_customer(i: int) -> dict[str, Any]:
    """A customer whose strings all differ from record to record (no memo hits)."""
    rec = _customer(i)
    rec["name"] = _SURNAMES[i % 20] + _GIVEN[(i // 20) % 20] + _GIVEN[(i // 400) % 20]
    rec["address"] = f"北京市海淀区中关村大街{i % 997}号院{i % 31}栋{i % 29}01室"
    rec["employer"] = f"华信科技{i}有限公司"
    rec["securities_account"] = f"A{i:09d}"
    rec["landline"] = f"010-6{i % 10_000_000:07d}"
    rec["notes"] = f"客户第{i}次来电咨询理财产品" if i % 4 else f"客户来电，手机139{i:08d}，请回电"
    return rec


# 600 pages x 20 records of distinct values: more than the value memos hold, so
# the fresh scenario measures the cost of a page the gateway has not seen.
FRESH_PAGES = [
    {
        "count": 20,
        "page": p,
        "page_size": 20,
        "results": [_fresh_customer(p * 20 + i) for i in range(20)],
    }
    for p in range(600)
]


FRESH_8K = [
    {**page, "results": [{k: r[k] for k in _LIST_COLUMNS} for r in page["results"]]}
    for page in FRESH_PAGES
]


def _run(decision_clearance: str, route_name: str | None, page: Any = PAGE) -> Any:
    decision = static_decision(
        TAXONOMY, Subject(id="u-sales-01", clearance=decision_clearance), method="GET"
    )
    route = CATALOG.route(route_name) if route_name else None

    pages = itertools.cycle(page) if isinstance(page, list) else itertools.repeat(page)

    def once() -> Any:
        enforcer = build_enforcer(
            taxonomy=TAXONOMY, route=route, decision=decision, subject_id="u", masker=MASKER
        )
        out = enforcer.rewrite_document(next(pages))
        enforcer.report.to_audit()
        return out

    once()  # warm the shared plans, as a live gateway is
    return once


def test_page_size() -> None:
    size = len(orjson.dumps(PAGE))
    assert 6_000 < size < 16_000, size
    assert 7_500 < len(orjson.dumps(PAGE_8K)) < 8_800


@pytest.mark.parametrize(
    ("clearance", "route", "page"),
    [
        ("L2", "customer_list", PAGE),
        ("L2", "customer_list", PAGE_8K),
        ("L0", "customer_list", PAGE),
        ("L2", None, PAGE),
        ("L2", "customer_list", PAGE_NO_NOTES),
        ("L4", "customer_list", PAGE_NO_NOTES),
        ("L2", "customer_list", FRESH_PAGES),
        ("L2", "customer_list", FRESH_8K),
        ("L0", "customer_list", FRESH_PAGES),
        ("L2", None, FRESH_PAGES),
    ],
    ids=[
        "l2_sales",
        "l2_sales_8k",
        "l0_mask_all",
        "unknown_keys",
        "l2_no_notes",
        "l4_no_notes",
        "l2_sales_fresh",
        "l2_sales_8k_fresh",
        "l0_mask_all_fresh",
        "unknown_keys_fresh",
    ],
)
def test_enforce_page(benchmark: Any, clearance: str, route: str | None, page: Any) -> None:
    out = benchmark(_run(clearance, route, page))
    assert len(out["results"]) == 20
