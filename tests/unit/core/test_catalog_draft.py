"""`crm-gateway catalog draft`: a catalog drafted from OpenAPI, checked against the
shipped, reviewed BottleCRM catalog (tests/fixtures/bottlecrm-openapi.json.gz is
BottleCRM 1.35.0's own `GET /schema/?format=json`)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.checks import check_config
from gateway.cli import main
from gateway.core.catalog import Catalog
from gateway.core.catalog.draft import DraftError, NameHints, draft_from_openapi, guess_field
from gateway.core.catalog.draft_yaml import render
from gateway.core.taxonomy import Taxonomy
from gateway.settings import REPO_ROOT

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "bottlecrm-openapi.json.gz"
TAXONOMY = REPO_ROOT / "config" / "taxonomy.yaml"
# Measured on the fixture (see catalog_agreement): precision 42/44, recall 42/47.
PRECISION_FLOOR = 0.95
RECALL_FLOOR = 0.89


def _hints() -> tuple[NameHints, Taxonomy]:
    raw = yaml.safe_load(TAXONOMY.read_text(encoding="utf-8"))
    taxonomy = Taxonomy.from_dict(raw)
    return NameHints.from_taxonomy_dict(raw, taxonomy), taxonomy


def _bottlecrm() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    return doc


@pytest.fixture(scope="module")
def drafted() -> dict[str, Any]:
    hints, taxonomy = _hints()
    out: dict[str, Any] = yaml.safe_load(render(draft_from_openapi(_bottlecrm(), hints, taxonomy)))
    return out


def _schema_keys(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "properties" and isinstance(v, dict):
                out.update(v)
            _schema_keys(v, out)
    elif isinstance(node, list):
        for v in node:
            _schema_keys(v, out)
    return out


def _key_rules(rules: list[dict[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in rules:
        if "key" in r and not r.get("walk"):
            out.setdefault(r["key"], "text" if r.get("text") else r["category"])
    return out


def catalog_agreement(draft: dict[str, Any], reviewed: dict[str, Any]) -> tuple[int, int, int]:
    """(agreeing, keys both catalogs name, keys the reviewed one names that the schema has):
    the catalog-wide key rules, category or free text."""
    keys = _schema_keys(_bottlecrm(), set())
    truth = {k: v for k, v in _key_rules(reviewed["fields"]).items() if k in keys}
    guessed = _key_rules(draft["fields"])
    both = [k for k in truth if k in guessed]
    return sum(guessed[k] == truth[k] for k in both), len(both), len(truth)


def test_bottlecrm_draft_is_accepted_by_check_config(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_bytes(gzip.decompress(FIXTURE.read_bytes()))
    out = tmp_path / "draft.yaml"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["catalog", "draft", "--openapi", str(schema)]) == 0
    out.write_text(buf.getvalue(), encoding="utf-8")
    settings = yaml.safe_load((REPO_ROOT / "config" / "bottlecrm-gateway.yaml").read_text())
    settings["classification"]["catalog"] = str(out)
    cfg = REPO_ROOT / "config" / f".draft-check-{tmp_path.name}.yaml"  # config/ paths resolve
    cfg.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    try:
        assert check_config(cfg) == []
    finally:
        cfg.unlink()
    assert len(Catalog.load(out).routes) == len(_bottlecrm()["paths"])


def test_bottlecrm_draft_agrees_with_the_reviewed_catalog(drafted: dict[str, Any]) -> None:
    reviewed = yaml.safe_load((REPO_ROOT / "config" / "crm" / "bottlecrm.yaml").read_text())
    ok, both, truth = catalog_agreement(drafted, reviewed)
    precision, recall = ok / both, ok / truth
    print(f"catalog draft vs reviewed: precision {ok}/{both} = {precision:.3f}, "
          f"recall {ok}/{truth} = {recall:.3f}")  # fmt: skip
    assert precision >= PRECISION_FLOOR
    assert recall >= RECALL_FLOOR


def test_bottlecrm_draft_finds_each_modules_records(drafted: dict[str, Any]) -> None:
    routes = {r["path"]: r for r in drafted["routes"]}
    assert set(routes["/api/contacts/"]["records"]) == {"results.item", "contact_obj_list.item"}
    assert {"open_leads.open_leads.item", "close_leads.close_leads.item"} <= set(
        routes["/api/leads/"]["records"]
    )
    assert "active_accounts.open_accounts.item" in routes["/api/accounts/"]["records"]
    assert routes["/api/invoices/"]["records"] == ["results.item"]
    assert "contact_obj" in routes["/api/contacts/{id}/"]["records"]
    assert drafted["record"]["id"] == "id"
    # staff lists are not records
    assert not any("users" in p for p in routes["/api/accounts/"]["records"])
    # fixed paths come before the templates beside them
    paths = [r["path"] for r in drafted["routes"]]
    assert paths.index("/api/leads/kanban/") < paths.index("/api/leads/{id}/")


def test_uncatalogued_fields_of_the_old_crawl_get_categories(drafted: dict[str, Any]) -> None:
    rules = _key_rules(drafted["fields"])
    assert rules["annual_revenue"] == "income"
    assert rules["invoice_title"] == "name"
    assert rules["phone_e164"] == "mobile"


def _doc(props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Legacy CRM"},
        "paths": {
            "/cust/list.do": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Page"}
                                }
                            }
                        }
                    }
                },
                **extra,
            }
        },
        "components": {
            "schemas": {
                "Page": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "integer"},
                        "data": {
                            "type": "object",
                            "properties": {
                                "rows": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Cust"},
                                }
                            },
                        },
                    },
                },
                "Cust": {"allOf": [{"$ref": "#/components/schemas/Base"}, {"properties": props}]},
                "Base": {"type": "object", "properties": {"khh": {"type": "string"}}},
            }
        },
    }


def test_pinyin_initials_and_nested_envelopes() -> None:
    hints, taxonomy = _hints()
    props = {k: {"type": "string"} for k in ("khxm", "sfzh", "sjhm", "yhkh", "gddm", "zcze")}
    draft = draft_from_openapi(_doc(props), hints, taxonomy)
    out = yaml.safe_load(render(draft))
    assert _key_rules(out["fields"]) == {
        "khh": "customer_no",
        "khxm": "name",
        "sfzh": "id_number",
        "sjhm": "mobile",
        "yhkh": "bank_card",
        "gddm": "securities_account",
        "zcze": "assets",
    }
    assert out["routes"][0]["records"] == ["data.rows.item"]
    assert out["record"]["id"] == "khh"
    text = render(draft)
    assert "{key: \"sfzh\", category: id_number}  # 0.9 name 'sfzh'" in text


def test_titles_descriptions_and_types_count_after_the_name() -> None:
    hints, _ = _hints()
    assert guess_field("f07", {"title": "手机号码"}, hints).category == "mobile"  # type: ignore[union-attr]
    assert guess_field("x", {"description": "客户的身份证号码"}, hints).category == "id_number"  # type: ignore[union-attr]
    assert guess_field("contact", {"format": "email"}, hints).category == "email"  # type: ignore[union-attr]
    assert guess_field("file_name", {}, hints) is None  # `name` alone names a person
    assert guess_field("client_name", {}, hints).category == "name"  # type: ignore[union-attr]
    assert guess_field("month", {"description": "mm"}, hints) is None


def test_write_routes_list_request_fields_the_catalog_wide_rules_miss() -> None:
    hints, taxonomy = _hints()
    post = {
        "post": {
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["xm"],
                            "properties": {"xm": {"type": "string"}, "lxdh": {"type": "string"}},
                        }
                    }
                }
            },
            "responses": {"201": {"description": ""}},
        }
    }
    draft = draft_from_openapi(_doc({"khxm": {"type": "string"}}, **post), hints, taxonomy)
    route = draft.routes[0]
    assert route.methods == ["GET", "POST"]
    assert {f.key: f.guess.category for f in route.writes if f.guess} == {
        "xm": "name",
        "lxdh": "mobile",
    }
    assert route.required == ["xm"]
    assert "# write requires: xm" in render(draft)


def test_bad_input_is_named() -> None:
    hints, taxonomy = _hints()
    with pytest.raises(DraftError, match="paths"):
        draft_from_openapi({"openapi": "3.0.3"}, hints, taxonomy)
    with pytest.raises(DraftError, match="unresolved"):
        draft_from_openapi(
            {"paths": {"/a": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Nope"}}}}}}}}},
            hints, taxonomy,
        )  # fmt: skip
    raw = yaml.safe_load(TAXONOMY.read_text(encoding="utf-8"))
    raw.pop("field_names")
    with pytest.raises(DraftError, match="field_names"):
        NameHints.from_taxonomy_dict(raw, taxonomy)


def test_cli_names_a_missing_schema(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["catalog", "draft", "--openapi", str(tmp_path / "none.json")]) == 2
    assert "none.json" in capsys.readouterr().err
