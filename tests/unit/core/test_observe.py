"""Observe mode: what the enforcer hands the observer, and the coverage report."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from gateway.core.catalog import Catalog
from gateway.core.enforce import build_enforcer
from gateway.core.masking import Masker
from gateway.core.model import Subject
from gateway.core.observe import Observer, coverage, shape
from gateway.core.static_policy import static_decision
from gateway.core.taxonomy import Taxonomy
from gateway.settings import REPO_ROOT
from gateway.state.observations import ObservationStore

TAXONOMY = Taxonomy.load(REPO_ROOT / "config" / "taxonomy.yaml")
CATALOG = Catalog.from_dict(
    {
        "name": "t",
        "version": 1,
        "record": {"id": "id"},
        "fields": [{"key": "id", "category": "customer_no"}, {"key": "name", "category": "name"}],
        "routes": [{"name": "list", "path": "/api/customers", "records": ["rows.item"]}],
    }
)
BODY = {
    "total": 2,
    "rows": [
        {
            "id": "C000001",
            "name": "欧阳伟",
            "mobile_no": "13812345678",
            "memo": "身份证110101199003074514",
        },
        {"id": "C000002", "name": "吴海涛", "mobile_no": "13912345679", "memo": "ok"},
    ],
}
SECRETS = ("欧阳伟", "吴海涛", "13812345678", "13912345679", "110101199003074514", "C000001")


def _observed(body: Any, template: str = "/api/customers") -> Observer:
    match = CATALOG.match("GET", template)
    route = match.route if match else CATALOG.fallback_route()
    enforcer = build_enforcer(
        taxonomy=TAXONOMY,
        route=route,
        decision=static_decision(TAXONOMY, Subject(id="u1", clearance="L1"), method="GET"),
        subject_id="u1",
        masker=Masker(TAXONOMY, b"observe-test-pseudonym-key"),
    )
    observer = Observer(template, match.route if match else None)
    enforcer.observer = observer
    enforcer.rewrite_document(body)
    return observer


def test_paths_shapes_and_detector_categories_per_path() -> None:
    obs = _observed(BODY).to_dict()
    paths = obs["paths"]
    assert paths["rows.item.mobile_no"]["shapes"] == {"digits:11": 2}
    assert paths["rows.item.mobile_no"]["hits"] == {"mobile": 2}
    assert paths["rows.item.mobile_no"]["named"] is False
    assert paths["rows.item.name"]["named"] is True
    assert paths["rows.item.name"]["shapes"] == {"cjk:2-4": 2}
    assert paths["rows.item.memo"]["hits"] == {"id_number": 1}
    assert paths["total"]["shapes"] == {"int": 1}
    assert obs["catalogued"] is True


def test_no_value_reaches_the_observation() -> None:
    store = ObservationStore(None)
    asyncio.run(store.record(_observed(BODY).to_dict()))
    dumped = orjson.dumps(asyncio.run(store.snapshot())).decode()
    assert not [s for s in SECRETS if s in dumped]
    assert "mobile" in dumped


def test_shapes_say_type_class_and_length_only() -> None:
    assert shape("13812345678") == "digits:11"
    assert shape("+8613812345678") == "digits:14"
    assert shape("张三") == "cjk:2-4"
    assert shape("a@b.c") == "str:1-8"
    assert shape("年收入约60万元") == "text:1-8"
    assert shape(None) == "null"
    assert shape(True) == "bool"
    assert shape(3) == "int"


def test_leaves_per_response_are_bounded() -> None:
    observer = Observer("/x", None, max_leaves=3)
    observer.document("", {"a": "1", "b": "2", "c": "3", "d": "4"})
    assert observer.truncated
    assert sum(s.n for s in observer.paths.values()) == 3


def test_coverage_lists_uncatalogued_routes_unnamed_hits_and_unseen_entries() -> None:
    store = ObservationStore(None)
    asyncio.run(store.record(_observed(BODY).to_dict()))
    asyncio.run(store.record(_observed(BODY).to_dict()))
    stray = Observer("/api/export/{}", None)
    stray.document("", {"cell": "13812345678"})
    asyncio.run(store.record(stray.to_dict()))
    report = coverage(CATALOG, asyncio.run(store.snapshot()))
    assert report.uncatalogued_routes == [{"template": "/api/export/{}", "requests": 1}]
    unnamed = {(f["template"], f["path"]): f for f in report.unnamed_fields}
    assert set(unnamed) == {
        ("/api/customers", "rows.item.mobile_no"),
        ("/api/customers", "rows.item.memo"),
        ("/api/export/{}", "cell"),
    }
    assert unnamed[("/api/customers", "rows.item.mobile_no")]["hits"] == {"mobile": 4}
    assert unnamed[("/api/customers", "rows.item.mobile_no")]["requests"] == 2
    assert report.unseen_routes == []
    text = report.text()
    assert "rows.item.mobile_no  mobile x4  (2 requests)" in text


def test_the_store_is_bounded() -> None:
    store = ObservationStore(None, max_routes=1, max_fields=2)
    one = Observer("/a", None)
    one.document("", {"x": "1", "y": "2", "z": "3"})
    asyncio.run(store.record(one.to_dict()))
    other = Observer("/b", None)
    other.document("", {"x": "1"})
    asyncio.run(store.record(other.to_dict()))
    snap = asyncio.run(store.snapshot())
    assert list(snap) == ["/a"]
    assert sum(len(p["shapes"]) + 1 for p in snap["/a"]["paths"].values()) <= 2
