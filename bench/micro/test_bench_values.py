"""Micro benchmarks of the value-level engine (detect, classify, mask).

Run: .venv/bin/pytest bench/micro -q --benchmark-only

Budget (issue 3): classify + mask of a 20-record JSON page (~8 KB) <= 150 us median.
The page walk here is the minimal one an enforcer does per field: key rule
(memoised), else free-text scan, else whole-value classification, then one
`Masker.apply` with the action for the category's level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.core.detectors import category_for_key, classify_value, detect, is_free_text_key
from gateway.core.masking import DROPPED, Masker
from gateway.core.model import Action, Verb
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[2]
TAX = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
MASKER = Masker(TAX, b"benchmark-pseudonym-key-32-bytes")
BY_LEVEL = {
    "L0": Action(Verb.ALLOW),
    "L1": Action(Verb.ALLOW),
    "L2": Action(Verb.MASK, "standard"),
    "L3": Action(Verb.GENERALISE),
    "L4": Action(Verb.MASK, "strict"),
    "L5": Action(Verb.DROP),
}
ACTION = {name: BY_LEVEL[cat.level] for name, cat in TAX.categories.items()}

NOTE = (
    "客户张伟于2024年3月1日来电，要求修改预留手机号为13812345678，原号码+86 139-0000-1234 已停用。"
    "核实身份证号 110105 19491231 002X 与户名一致，银行卡号 6222 6002 6000 1072 444 绑定正常。"
    "客户称家住北京市海淀区中关村大街1号院3栋201室，邮箱zhangwei@example.com，车牌京A12345。"
    "已告知客户不要向任何人透露查询密码，本次通话录音编号 20240301100512，客服热线 400-800-1234。"
)


def _record(i: int) -> dict[str, Any]:
    return {
        "id": f"C{i:06d}",
        "name": ["张伟", "王芳", "欧阳娜娜", "李强"][i % 4],
        "gender": "男" if i % 2 else "女",
        "id_number": "11010519491231002X",
        "mobile": f"138{i:08d}",
        "landline": "010-62345678",
        "email": f"user{i}@example.com",
        "address": "北京市海淀区中关村大街1号院3栋201室",
        "employer": "华信科技有限公司",
        "birth_date": "1949-12-31",
        "annual_income": 350000 + i,
        "total_assets": 2500000.0,
        "balance": 120000.55,
        "bank_card": "6222600260001072444",
        "securities_account": "A123456789",
        "holdings": [
            {"code": "600519", "name": "贵州茅台", "quantity": 100, "market_value": 168000.0}
        ],
        "risk_level": "C3",
        "grade": "ABC"[i % 3],
        "tier": ["VIP", "重要", "一般", "潜在", "流失"][i % 5],
        "owner": "u-sales-01",
        "department": "retail",
        "consent": {"marketing": True, "sharing": False},
        "notes": "客户张伟来电，手机13812345678" if i % 4 == 0 else "",
        "query_password": "******",
        "created_at": "2024-03-01T10:00:00+08:00",
    }


PAGE = {"count": 20, "page": 1, "page_size": 20, "results": [_record(i) for i in range(20)]}


def _mask_record(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        cat = category_for_key(key)
        if cat is not None:
            new = MASKER.apply(value, cat, ACTION[cat])
        elif isinstance(value, str) and is_free_text_key(key):
            new = MASKER.mask_text(value, detect(value), lambda h: ACTION[h.category])
        elif isinstance(value, str):
            hit = classify_value(value, key)
            new = value if hit is None else MASKER.apply(value, hit.category, ACTION[hit.category])
        else:
            new = value
        if new is not DROPPED:
            out[key] = new
    return out


def mask_page(page: dict[str, Any]) -> dict[str, Any]:
    return {**page, "results": [_mask_record(r) for r in page["results"]]}


# The same walk with the action table compiled once per request (Masker.compile).
COMPILED = {name: MASKER.compile(name, action) for name, action in ACTION.items()}


def _mask_record_compiled(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        cat = category_for_key(key)
        if cat is not None:
            new = COMPILED[cat](value)
        elif value.__class__ is not str:
            new = value
        elif is_free_text_key(key):
            new = MASKER.mask_text(value, detect(value), lambda h: ACTION[h.category])
        else:
            hit = classify_value(value, key)
            new = value if hit is None else COMPILED[hit.category](value)
        if new is not DROPPED:
            out[key] = new
    return out


def mask_page_compiled(page: dict[str, Any]) -> dict[str, Any]:
    return {**page, "results": [_mask_record_compiled(r) for r in page["results"]]}


def test_page_is_about_8_kb() -> None:
    assert 6_000 <= len(orjson.dumps(PAGE)) <= 10_000
    masked = mask_page(PAGE)
    assert "13800000001" not in orjson.dumps(masked).decode()
    assert "query_password" not in masked["results"][0]


@pytest.mark.benchmark(group="values")
def test_bench_detect_note(benchmark: Any) -> None:
    assert 250 <= len(NOTE) <= 320
    hits = benchmark(detect, NOTE)
    assert {h.category for h in hits} >= {"mobile", "id_number", "bank_card", "address", "email"}


@pytest.mark.benchmark(group="values")
def test_bench_classify_and_mask_page(benchmark: Any) -> None:
    out = benchmark(mask_page, PAGE)
    assert out["results"][0]["mobile"] == "138****0000"


@pytest.mark.benchmark(group="values")
def test_bench_classify_and_mask_page_compiled(benchmark: Any) -> None:
    out = benchmark(mask_page_compiled, PAGE)
    assert out == mask_page(PAGE)


@pytest.mark.benchmark(group="values")
def test_bench_classify_value_unknown_fields(benchmark: Any) -> None:
    values = [str(v) for r in PAGE["results"] for v in r.values() if isinstance(v, str)]

    def run() -> int:
        return sum(classify_value(v) is not None for v in values)

    assert benchmark(run) > 0
