"""Field catalogs: loading, validation messages, route matching, rules, record facts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core.catalog import Catalog, record_facts
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "config" / "crm" / "demo.yaml"


def bottle_like() -> dict[str, Any]:
    return {
        "name": "bottle",
        "record": {"id": "id", "assignees": ["assigned_to"], "consents": {"marketing": "c.m"}},
        "fields": [
            {"key": "first_name", "category": "name"},
            {"path": "address_obj.*", "category": "address"},
            {"pattern": "(?i)phone", "category": "mobile"},
            {"key": "description", "text": True},
            {"key": "custom_fields", "walk": True},
        ],
        "routes": [
            {
                "name": "contacts",
                "path": "/api/contacts/",
                "methods": ["get"],
                "records": ["results.item", "contact_obj_list.item"],
            },
            {"name": "contact", "path": "/api/contacts/{id}/", "records": ["contact_obj"]},
            {
                "name": "export",
                "path": "/api/contacts/export/",
                "csv": {"columns": {"Phone": "mobile"}},
                "fields": [{"key": "first_name", "category": "internal"}],
            },
        ],
    }


def test_demo_catalog_loads_and_names_only_known_categories() -> None:
    catalog = Catalog.load(DEMO)
    taxonomy = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
    assert catalog.name == "demo"
    assert len(catalog.fingerprint) == 16
    unknown = {c for c in catalog.categories() if c not in taxonomy.categories}
    assert unknown == set()
    assert catalog.problems_with(set(taxonomy.categories)) == []
    bad = Catalog.from_dict(bottle_like())
    assert bad.problems_with({"name", "address", "internal"}) == [
        "routes.contact: unknown category 'mobile'",
        "routes.contacts: unknown category 'mobile'",
        "routes.export.csv.columns.Phone: unknown category 'mobile'",
        "routes.export: unknown category 'mobile'",
    ]


@pytest.mark.parametrize(
    ("method", "path", "name", "params"),
    [
        ("GET", "/api/customers", "customer_list", {}),
        ("POST", "/api/customers", "customer_create", {}),
        ("GET", "/api/customers/search", "customer_search", {}),
        ("GET", "/api/customers/export.csv", "customer_export_csv", {}),
        ("get", "/api/customers/C000123", "customer_detail", {"id": "C000123"}),
        ("PATCH", "/api/customers/C000123", "customer_update", {"id": "C000123"}),
        ("GET", "/api/notes/7", "note", {"id": "7"}),
        ("GET", "/api/health", "health", {}),
    ],
)
def test_demo_routes_match(method: str, path: str, name: str, params: dict[str, str]) -> None:
    match = Catalog.load(DEMO).match(method, path)
    assert match is not None
    assert match.route.name == name
    assert dict(match.params) == params
    assert match.template == match.route.template


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/customers/C1"),
        ("GET", "/api/customers/C1/extra"),
        ("GET", "/api/customersX"),
        ("GET", "/other"),
        ("GET", "/api/customers/"),
    ],
)
def test_unmatched(method: str, path: str) -> None:
    assert Catalog.load(DEMO).match(method, path) is None


def test_health_is_not_sensitive_and_export_has_columns() -> None:
    catalog = Catalog.load(DEMO)
    health = catalog.route("health")
    assert health is not None
    assert not health.sensitive
    export = catalog.route("customer_export_csv")
    assert export is not None
    assert export.csv_columns["mobile"] == "mobile"


def test_bottle_like_routes_several_prefixes_and_rules() -> None:
    catalog = Catalog.from_dict(bottle_like())
    m = catalog.match("GET", "/api/contacts/")
    assert m is not None
    route = m.route
    assert route.records == ("results.item", "contact_obj_list.item")
    assert catalog.match("POST", "/api/contacts/") is None  # methods listed: GET only
    rule = route.rule_for("first_name", "first_name")
    assert rule is not None
    assert rule.category == "name"
    rule = route.rule_for("city", "address_obj.city")
    assert rule is not None
    assert rule.category == "address"
    rule = route.rule_for("mobilePhone", "mobilePhone")
    assert rule is not None
    assert rule.category == "mobile"
    rule = route.rule_for("description", "description")
    assert rule is not None
    assert rule.text
    rule = route.rule_for("custom_fields", "custom_fields")
    assert rule is not None
    assert rule.walk
    assert route.rule_for("unknown", "unknown") is None
    detail = catalog.match("GET", "/api/contacts/abc-1/")
    assert detail is not None
    assert detail.params == {"id": "abc-1"}


def test_route_rules_come_before_catalog_rules() -> None:
    export = Catalog.from_dict(bottle_like()).route("export")
    assert export is not None
    rule = export.rule_for("first_name", "first_name")
    assert rule is not None
    assert rule.category == "internal"


def test_errors_name_every_key_path() -> None:
    raw = bottle_like()
    raw["fields"].append({"key": "x"})
    raw["fields"].append({"pattern": "([", "category": "name"})
    raw["routes"][0]["methods"] = ["GET", "FETCH"]
    raw["routes"][1]["path"] = "api/no-slash"
    raw["routes"][2]["csv"] = {"columns": {"Phone": 3}}
    raw["routes"].append({"name": "contacts", "path": "/dup"})
    raw["entry"] = {"formats": {"id_number": "rot13"}}
    raw["bogus"] = 1
    with pytest.raises(ValueError, match="invalid catalog") as info:
        Catalog.from_dict(raw)
    msg = str(info.value)
    for where in (
        "fields[5]: needs exactly one of category",
        "fields[6].pattern",
        "routes[0].methods[1]: unknown method 'FETCH'",
        "routes[1].path",
        "routes[2].csv.columns",
        "routes[3].name: duplicate route name 'contacts'",
        "entry.formats.id_number: unknown format",
        "bogus: unknown key",
    ):
        assert where in msg


@pytest.mark.parametrize("raw", [None, [], {"name": "x"}, {"name": "x", "routes": []}])
def test_empty_or_wrong_shapes_rejected(raw: Any) -> None:
    with pytest.raises(ValueError, match="invalid catalog"):
        Catalog.from_dict(raw)


def test_load_prefixes_file_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nroutes: [{path: nope}]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.yaml: invalid catalog.*routes\[0\]\.path"):
        Catalog.load(bad)


def test_fingerprint_follows_content() -> None:
    a = Catalog.from_dict(bottle_like())
    b = Catalog.from_dict(bottle_like())
    changed = bottle_like()
    changed["fields"].append({"key": "wechat", "category": "mobile"})
    assert a.fingerprint == b.fingerprint
    assert Catalog.from_dict(changed).fingerprint != a.fingerprint


def test_record_facts_read_through_catalog_paths() -> None:
    route = Catalog.load(DEMO).route("customer_list")
    assert route is not None
    facts = record_facts(
        {
            "id": "C1",
            "grade": "A",
            "tier": "VIP",
            "owner": "u-1",
            "consent": {"marketing": True, "sharing": "yes"},
        },
        route.facts,
    )
    assert facts.record_id == "C1"
    assert facts.grade == "A"
    assert facts.tier == "VIP"
    assert facts.assignees == frozenset({"u-1"})
    assert facts.consents == {"marketing": True, "sharing": False}  # only a real true counts
    bottle = Catalog.from_dict(bottle_like()).route("contacts")
    assert bottle is not None
    facts = record_facts({"id": 5, "assigned_to": ["p1", "p2", None]}, bottle.facts)
    assert facts.record_id == "5"
    assert facts.assignees == frozenset({"p1", "p2"})
    assert facts.consents == {"marketing": False}


def test_note_route_overrides_record_id() -> None:
    note = Catalog.load(DEMO).route("note")
    assert note is not None
    assert note.facts.id == "customer_id"
    assert note.facts.grade == "grade"  # inherited
    assert note.records == ("",)


def test_search_declarations() -> None:
    from gateway.core.catalog import Catalog

    raw = {"name": "t", "version": 1, "routes": [
        {"name": "s", "path": "/s", "search": {"q": ["mobile"]}, "search_body": True},
    ]}  # fmt: skip
    route = Catalog.from_dict(raw).routes[0]
    assert route.search == {"q": ("mobile",)} and route.search_body
    bad = {"name": "t", "version": 1, "routes": [
        {"name": "s", "path": "/s", "search": {"q": "mobile"}, "search_body": "yes"},
    ]}  # fmt: skip
    with pytest.raises(ValueError, match=r"search.*search_body|search_body.*search"):
        Catalog.from_dict(bad)
    assert Catalog.from_dict(raw).problems_with({"name"}) == ["routes.s.search.q: unknown category"]


def test_record_id_pattern() -> None:
    routes = [{"name": "r", "path": "/r"}]
    raw = {"name": "t", "version": 1, "routes": routes,
           "record": {"id": "id", "id_pattern": r"C\d{6}"}}  # fmt: skip
    assert Catalog.from_dict(raw).facts.id_pattern == r"C\d{6}"
    for bad in ("C(", "", "x*", 7):
        raw = {"name": "t", "version": 1, "routes": routes,
               "record": {"id": "id", "id_pattern": bad}}  # fmt: skip
        with pytest.raises(ValueError, match="id_pattern"):
            Catalog.from_dict(raw)
