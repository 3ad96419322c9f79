"""The filter check (gateway.core.query_guard): every spelling of "filter, sort or
search by a field" is read, judged against a decision, and refused without the value."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from gateway.core.catalog import Catalog
from gateway.core.model import (
    ALLOW,
    Action,
    Decision,
    DecisionError,
    Lookup,
    Obligations,
    RecordRule,
    RecordVerb,
    Verb,
)
from gateway.core.query_guard import (
    FilterTerm,
    check_request,
    check_terms,
    cookie_query,
    is_clear,
    query_terms,
    safe_param,
)
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ProtectedFilter
from gateway.settings import Settings

MOBILE = "15129806175"
MASK = Action(Verb.MASK, "standard")
STRICT = Action(Verb.MASK, "strict")


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    s = Settings()
    return Taxonomy.load(s.path(s.classification.taxonomy))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    s = Settings()
    return Catalog.load(s.path(s.classification.catalog))


def decision(
    taxonomy: Taxonomy,
    clear_up_to: str = "L2",
    lookup: frozenset[str] = frozenset(),
    records: tuple[RecordRule, ...] = (),
) -> Decision:
    """Clear up to a level, masked above (a cs/sales-like table)."""
    codes = [lv.code for lv in taxonomy.levels]
    limit = codes.index(clear_up_to)
    fields = {
        name: ALLOW if codes.index(cat.level) <= limit else STRICT
        for name, cat in taxonomy.categories.items()
    }
    return Decision(
        allow=True,
        reason="allowed",
        revision="t",
        fields=fields,
        levels={c: ALLOW if i <= limit else STRICT for i, c in enumerate(codes)},
        records=records,
        obligations=Obligations(lookup=Lookup(lookup, 3 if lookup else 0, 60.0)),
    )


VIP = RecordRule(
    when={"tier": ["VIP"]}, record=RecordVerb.SHOW, fields={"mobile": MASK, "name": MASK}
)


def terms(path_qs: str, catalog: Catalog, taxonomy: Taxonomy) -> set[tuple[str, str, bool]]:
    path, _, query = path_qs.partition("?")
    m = catalog.match("GET", path)
    found = query_terms(path, query, route=m.route if m else None, taxonomy=taxonomy)
    return {(t.category, t.use, t.exact) for t in found}


@pytest.mark.parametrize(
    ("path_qs", "want"),
    [
        (f"/api/customers?phone={MOBILE}", ("mobile", "filter", True)),
        (f"/api/customers?mobile={MOBILE}", ("mobile", "filter", True)),
        ("/api/customers?mobile=1512980", ("mobile", "filter", False)),
        ("/api/customers?mobile__startswith=151", ("mobile", "filter", False)),
        ("/api/customers?customer__mobile__icontains=151", ("mobile", "filter", False)),
        ("/api/customers?mobile=151*", ("mobile", "filter", False)),
        (f"/api/customers?mobile__in={MOBILE},{MOBILE}", ("mobile", "filter", False)),
        ("/api/customers?annual_income__gte=500000", ("income", "filter", False)),
        ("/api/customers?sjhm=151", ("mobile", "filter", False)),
        ("/api/customers?" + quote("手机号") + "=151", ("mobile", "filter", False)),
        ("/api/customers?" + quote("ｍｏｂｉｌｅ") + "=151", ("mobile", "filter", False)),
        ("/api/customers?%256dobile=151", ("mobile", "filter", False)),
        ("/api/customers?filter[mobile]=151", ("mobile", "filter", False)),
        ("/api/customers?filter%5Bmobile%5D=151", ("mobile", "filter", False)),
        ("/api/customers?q%5Bmobile_cont%5D=151", ("mobile", "filter", False)),
        ("/api/customers?page=1;mobile=151", ("mobile", "filter", False)),
        ("/api/customers?yhkh=6216", ("bank_card", "filter", False)),
        ("/api/customers?ordering=bank_card", ("bank_card", "sort", False)),
        ("/api/customers?sort=-annual_income", ("income", "sort", False)),
        ("/api/customers?order_by=mobile%20desc", ("mobile", "sort", False)),
        ("/api/customers?sort=name,-mobile", ("mobile", "sort", False)),
        ("/api/customers?sort%5Bmobile%5D=asc", ("mobile", "sort", False)),
        ("/api/customers?$orderby=bank_card%20desc", ("bank_card", "sort", False)),
        (f"/api/customers/search?q={MOBILE}", ("mobile", "search", True)),
        ("/api/customers/search?q=1512980", ("mobile", "search", False)),
        ("/api/customers/search?q=" + quote("黄俊杰"), ("name", "search", True)),
        (f"/api/customers?search={MOBILE}", ("mobile", "search", True)),
        ("/api/customers?keyword=15129", ("mobile", "search", False)),
        ("/api/customers?keyword=1-5-1-2", ("mobile", "search", False)),
        (f"/api/customers?x={MOBILE}", ("mobile", "search", True)),
        (f"/api/customers?q=%2531%2535{MOBILE[2:]}", ("mobile", "search", True)),
        ("/api/customers?where=" + quote(f'{{"mobile": "{MOBILE}"}}'), ("mobile", "filter", True)),
        ("/api/customers?where=" + quote('{"mobile": {"$regex": "^151"}}'),
         ("mobile", "filter", False)),
        ("/api/customers?where=" + quote(f'{{"mobile": {{"$eq": "{MOBILE}"}}}}'),
         ("mobile", "filter", True)),
        ("/api/customers?where=" + quote('{"$or": [{"mobile": "151"}]}'),
         ("mobile", "filter", False)),
        ("/api/customers?where=" + quote('{"sort": "-bank_card"}'), ("bank_card", "sort", False)),
        ("/api/customers?$filter=" + quote("mobile eq '151'"), ("mobile", "filter", False)),
        ("/api/customers?$filter=" + quote("contains(mobile,'151')"), ("mobile", "filter", False)),
        ("/api/customers?filter=" + quote("mobile==151*"), ("mobile", "filter", False)),
        ("/api/customers?q=" + quote("mobile:151*"), ("mobile", "filter", False)),
        (f"/api/customers/{MOBILE}", ("mobile", "search", True)),
        ("/api/customers;mobile=151", ("mobile", "filter", False)),
        ("/api/customers/by-mobile/1512980", ("mobile", "filter", False)),
        ("/api/customers/findByPhone/1512980", ("mobile", "filter", False)),
        ("/api/customers/search/phone/1512980", ("mobile", "filter", False)),
        ("/api/customers?query=" + quote('{customers(mobile: "151"){id}}'),
         ("mobile", "filter", False)),
    ],
)  # fmt: skip
def test_every_spelling_is_read(
    path_qs: str, want: tuple[str, str, bool], catalog: Catalog, taxonomy: Taxonomy
) -> None:
    assert want in terms(path_qs, catalog, taxonomy)


@pytest.mark.parametrize(
    "path_qs",
    [
        "/api/customers?page=2&page_size=20",
        "/api/customers?fields=mobile,bank_card&include=holdings",
        "/api/customers?mobile=",
        "/api/customers?mobile",
        "/api/customers/search?q=" + quote("理财"),  # no digit: not a number; text: name only
        "/api/customers?format=json&callback=cb&_=1700000000000",
        "/api/customers/C000027",
        "/api/customers/C000027/transactions/12345",  # a sub-resource, not a search
        "/api/customers/mobile/12345",
    ],
)
def test_no_protected_term_where_there_is_none(
    path_qs: str, catalog: Catalog, taxonomy: Taxonomy
) -> None:
    found = terms(path_qs, catalog, taxonomy)
    assert not {c for c, _, _ in found} - {"name", "customer_no"}, found


def test_clear_means_allowed_by_the_table_and_every_showing_record_rule(
    taxonomy: Taxonomy,
) -> None:
    d = decision(taxonomy, "L2")
    assert is_clear(d, "mobile", "L2")
    assert not is_clear(d, "income", "L3")
    assert not is_clear(decision(taxonomy, "L2", records=(VIP,)), "mobile", "L2")
    dropped = RecordRule(when={"grade": ["A"]}, record=RecordVerb.DROP, fields={"mobile": MASK})
    assert is_clear(decision(taxonomy, "L2", records=(dropped,)), "mobile", "L2")
    assert not is_clear(d, "no_such_category", "L5")


def test_refusal_names_parameter_and_category_never_the_value(
    catalog: Catalog, taxonomy: Taxonomy
) -> None:
    d = decision(taxonomy, "L2", records=(VIP,))
    route = catalog.match("GET", "/api/customers").route  # type: ignore[union-attr]
    verdict = check_request("/api/customers", f"mobile={MOBILE}&sort=-bank_card", d, taxonomy,
                            route=route)  # fmt: skip
    assert not verdict.allowed
    err = verdict.error()
    assert isinstance(err, ProtectedFilter)
    assert (err.status, err.code) == (403, "protected_field_filter")
    assert "mobile" in err.message and "'mobile'" in err.message and "bank_card" in err.message
    assert MOBILE not in str(err.to_body("r"))
    assert {p["category"] for p in err.details["parameters"]} == {"mobile", "bank_card"}
    assert {p["use"] for p in err.details["parameters"]} >= {"sort"}


def test_a_value_smuggled_into_a_key_is_not_echoed(taxonomy: Taxonomy) -> None:
    d = decision(taxonomy, "L1")
    verdict = check_request("/x", f"filter[{MOBILE}][mobile]=1", d, taxonomy)
    assert not verdict.allowed
    assert MOBILE not in str(verdict.error().to_body("r"))
    assert safe_param(f"a{MOBILE}b") == "a#b"


def test_lookup_allows_exact_values_of_its_categories_only(
    catalog: Catalog, taxonomy: Taxonomy
) -> None:
    d = decision(taxonomy, "L2", lookup=frozenset({"mobile", "name"}), records=(VIP,))
    route = catalog.match("GET", "/api/customers/search").route  # type: ignore[union-attr]

    def judge(query: str) -> tuple[bool, int]:
        v = check_request("/api/customers/search", query, d, taxonomy, route=route)
        return v.allowed, len(v.lookups)

    assert judge(f"q={MOBILE}") == (True, 1)
    assert judge("q=" + quote("黄俊杰")) == (True, 1)
    assert judge("q=1512980") == (False, 0)  # a prefix is a probe, not a lookup
    assert judge("mobile__startswith=151") == (False, 0)
    assert judge(f"mobile={MOBILE}*") == (False, 0)
    assert judge("sort=mobile") == (False, 0)  # ordering is never a lookup
    assert judge("q=6216613227799367887")[0] is False  # bank card: not a lookup category
    assert judge("page=2") == (True, 0)


def test_check_terms_directly(taxonomy: Taxonomy) -> None:
    d = decision(taxonomy, "L2", lookup=frozenset({"mobile"}), records=(VIP,))
    t = FilterTerm("p", "mobile", "filter", True, MOBILE)
    v = check_terms([t, FilterTerm("s", "mobile", "sort", False)], d, taxonomy)
    assert v.lookups == (t,) and [x.use for x in v.refused] == ["sort"]
    assert MOBILE not in repr(t)


def test_deep_json_filters_are_refused_as_uninspectable(taxonomy: Taxonomy) -> None:
    doc = "[" * 12 + "1" + "]" * 12
    found = query_terms("/x", "where=" + quote(doc), taxonomy=taxonomy)
    assert {t.category for t in found} == set(taxonomy.categories)


def test_search_bodies_are_read_like_queries(taxonomy: Taxonomy) -> None:
    found = query_terms("/x", "", taxonomy=taxonomy, body={"mobile": MOBILE, "sort": "bank_card",
                        "where": {"annual_income": {"gte": 1}}, "page": 2})  # fmt: skip
    got = {(t.param, t.category, t.use) for t in found}
    assert ("body.mobile", "mobile", "filter") in got
    assert ("body.sort", "bank_card", "sort") in got
    assert ("body.where", "income", "filter") in got


def test_lookup_obligation_parsing() -> None:
    ob = Obligations.from_json(
        {"lookup": {"categories": ["mobile"], "limit": 5, "period_seconds": 60}}
    )
    assert ob.lookup == Lookup(frozenset({"mobile"}), 5, 60.0)
    assert Obligations.from_json({}).lookup == Lookup()
    # No rate limit, no lookup.
    assert (
        Obligations.from_json(
            {"lookup": {"categories": ["mobile"], "limit": 0, "period_seconds": 60}}
        ).lookup.categories
        == frozenset()
    )
    bad: object
    for bad in (
        [],
        {"categories": "mobile", "limit": 1, "period_seconds": 1},
        {"categories": [], "limit": -1, "period_seconds": 1},
        {"categories": [], "limit": True, "period_seconds": 1},
        {"categories": [], "limit": 1, "period_seconds": 0},
    ):
        with pytest.raises(DecisionError):
            Obligations.from_json({"lookup": bad})


def test_audit_path_keeps_no_value() -> None:
    from gateway.core.query_guard import audit_path

    assert audit_path("/api/customers/by-mobile/1391234") == "/api/customers/by-mobile/{}"
    assert audit_path("/api/customers;mobile=139/x") == "/api/customers;{}/x"
    assert audit_path("/api/by-name/" + quote("黄俊杰")) == "/api/by-name/{}"
    assert audit_path("/api/customers/search/a@b.cn") == "/api/customers/search/{}"
    assert audit_path("/api/customers/export.csv") == "/api/customers/export.csv"


def test_body_criteria_are_the_criteria_keys_or_a_search_body() -> None:
    from gateway.core.catalog import Catalog
    from gateway.core.query_guard import body_criteria

    assert body_criteria({"sort": "-x", "notes": "y", "Where": "a=1"}, None) == {
        "sort": "-x",
        "Where": "a=1",
    }
    assert body_criteria({"notes": "y"}, None) is None
    assert body_criteria(["sort"], None) is None
    cat = Catalog.from_dict(
        {"name": "t", "version": 1, "routes": [
            {"name": "s", "path": "/s", "methods": ["POST"], "search": {"q": ["mobile"]},
             "search_body": True}]}
    )  # fmt: skip
    route = cat.route("s")
    assert body_criteria({"mobile": "1", "notes": "y"}, route) == {"mobile": "1", "notes": "y"}


def test_a_graphql_mutation_is_no_criterion() -> None:
    from gateway.core.query_guard import body_criteria

    assert body_criteria({"query": 'mutation { u(mobile: "1") }'}, None) is None
    assert body_criteria({"query": '{ customers(mobile: "1") { id } }'}, None) is not None


def test_cookies_named_like_parameters_are_read_as_the_query() -> None:
    """Only cookies a lenient CRM could read as a filter, sort or search: a session or
    CSRF cookie is left out, and the pairs come back encoded as a query."""
    cookies = [
        "sessionid=13912345678abc; csrftoken=x1; mobile=139%2A; ordering=-bank_card",
        "sjhm=139 1234; JSESSIONID=ABCDEF0123456789; q=1391",
    ]
    assert cookie_query(cookies, None) == (
        "mobile=139%252A&ordering=-bank_card&sjhm=139%201234&q=1391"
    )
    assert cookie_query(["sid=1; theme=dark"], None) == ""
    assert cookie_query([], None) == ""
