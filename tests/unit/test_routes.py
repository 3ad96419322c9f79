"""Route rules and catalog routes on canonical paths: lopsided matching (issue 11)."""

from __future__ import annotations

import pytest

from gateway.core.catalog import Catalog
from gateway.core.paths import PathRejected
from gateway.routes import DEFAULT_RULE, RouteTable
from gateway.settings import REPO_ROOT, RouteSettings

CATALOG = Catalog.load(REPO_ROOT / "config" / "crm" / "demo.yaml")
RULES = [
    RouteSettings(path="/api/health", public=True, sensitive=False),
    RouteSettings(path="/static/secret/*"),  # strict, listed before the relaxed one
    RouteSettings(path="/static/*", sensitive=False),
    RouteSettings(path="/Api/*", sensitive=False),
]


def table(**kw: object) -> RouteTable:
    return RouteTable(RULES, catalog=CATALOG, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/api/health", "/static/app.js", "/static/a/b"])
def test_relaxed_rules_match_their_exact_spelling(path: str) -> None:
    assert table().match("GET", path) is not DEFAULT_RULE


@pytest.mark.parametrize(
    "path",
    ["/API/HEALTH", "/api/Health", "/STATIC/app.js", "/Static/x", "/static/Secret/x",
     "/static/SECRET/x", "/Api/customers/C1", "/Api/Customers/C1"],
)  # fmt: skip
def test_other_spellings_fall_to_a_strict_rule(path: str) -> None:
    rule = table().match("GET", path)
    assert rule.sensitive and not rule.public


@pytest.mark.parametrize(
    "path", ["/API/CUSTOMERS/C1", "/api/Customers/C1", "/Api/customers/c1", "/api/customers/C1"]
)
def test_catalog_routes_match_any_case(path: str) -> None:
    route = table().crm_route("GET", path)
    assert route is not None and route.template == "/api/customers/{id}"
    assert route.params["id"].lower() == "c1"


def test_matrix_parameters_are_refused_or_stripped() -> None:
    with pytest.raises(PathRejected):
        table().match("GET", "/api/customers;jsessionid=1/C1")
    strip = table(matrix_params="strip")
    route = strip.crm_route("GET", "/api/customers;jsessionid=1/C1")
    assert route is not None and dict(route.params) == {"id": "C1"}
    assert strip.match("GET", "/static/app.js;jsessionid=1").sensitive is False
    assert strip.match("GET", "/api/health;jsessionid=1") is DEFAULT_RULE


def test_allowed_rewrite_headers_make_the_stricter_rule_win() -> None:
    t = table(rewrite_allow=["x-original-url"])
    rule, route = t.resolve("GET", "/api/health", [("X-Original-URL", "/api/customers/C1")])
    assert rule is DEFAULT_RULE
    assert route is not None and route.template == "/api/customers/{id}"
    rule, _ = t.resolve("GET", "/api/health", [("X_Original_URL", "/api/customers/C1")])
    assert rule.public  # a twin is not the allowed header (and is dropped before the CRM)
    with pytest.raises(PathRejected):
        t.resolve("GET", "/api/health", [("X-Original-URL", "/static/%c0%ae%c0%ae/x")])
