"""Contract check with the production enforcer: streamed and buffered JSON agree.

The other codec tests use a small enforcer double; this one runs the real
`gateway.core.enforce` enforcer (static decisions, demo catalog) so a change
on either side of the RecordEnforcer seam that breaks the streaming promise
shows up here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.core.catalog import Catalog
from gateway.core.enforce import build_enforcer
from gateway.core.masking import Masker
from gateway.core.model import Subject
from gateway.core.rewrite import RecordEnforcer
from gateway.core.static_policy import static_decision
from gateway.core.taxonomy import Taxonomy
from tests.unit.core.codecs.helpers import LIMITS, STREAM_NOW, run, split_at

ROOT = Path(__file__).resolve().parents[4]
TAXONOMY = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
CATALOG = Catalog.load(ROOT / "config" / "crm" / "demo.yaml")
MASKER = Masker(TAXONOMY, b"codec-test-key-0123456789abcdef0")


def customer(i: int) -> dict[str, Any]:
    return {
        "id": f"C{i:06d}",
        "name": "张伟",
        "id_number": "110105194912310029",
        "mobile": f"138{i:08d}",
        "email": f"user{i}@example.com",
        "address": "北京市海淀区中关村大街1号院3栋201室",
        "bank_card": "6222020200112345678",
        "balance": 120000.55,
        "holdings": [{"code": "600519", "name": "贵州茅台", "quantity": 100}],
        "grade": "ABC"[i % 3],
        "tier": "一般",
        "owner": "u-sales-01" if i % 2 else "u-sales-02",
        "notes": f"客户来电，手机139{i:08d}，请回电",
        "query_password": "******",
    }


def enforcer(clearance: str, route: str) -> RecordEnforcer:
    decision = static_decision(
        TAXONOMY, Subject(id="u-sales-01", clearance=clearance), method="GET"
    )
    return build_enforcer(
        taxonomy=TAXONOMY,
        route=CATALOG.route(route),
        decision=decision,
        subject_id="u-sales-01",
        masker=MASKER,
    )


@pytest.mark.parametrize("clearance", ["L0", "L2", "L4"])
@pytest.mark.parametrize("chunk", [1, 97, 4096])
def test_customer_list_streamed_equals_buffered(clearance: str, chunk: int) -> None:
    doc = {"count": 12, "page": 1, "page_size": 12, "results": [customer(i) for i in range(12)]}
    body = orjson.dumps(doc)
    ct = "application/json; charset=utf-8"
    buffered = run(body, ct, enforcer(clearance, "customer_list"), limits=LIMITS)
    chunks = split_at(body, range(0, len(body), chunk))
    streamed = run(chunks, ct, enforcer(clearance, "customer_list"), limits=STREAM_NOW)
    assert orjson.loads(streamed) == orjson.loads(buffered)
    if clearance == "L0":  # what L2/L4 may see is the policy's business, not the codec's
        assert b"110105194912310029" not in streamed


def test_customer_detail_record_under_a_key() -> None:
    body = orjson.dumps({"customer": customer(1), "meta": {"fetched_at": "2024-03-01"}})
    ct = "application/json"
    buffered = run(body, ct, enforcer("L2", "customer_detail"), limits=LIMITS)
    streamed = run(
        split_at(body, [3, 30, 300]), ct, enforcer("L2", "customer_detail"), limits=STREAM_NOW
    )
    assert orjson.loads(streamed) == orjson.loads(buffered)
