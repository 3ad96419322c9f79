"""Routes told apart by a query parameter (catalog `query:`): which one a request reaches."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.catalog import AmbiguousDispatch, Catalog, check_body
from gateway.core.visibility import dispatched_read


def _catalog(*extra: dict[str, Any], plain: bool = True) -> Catalog:
    routes: list[dict[str, Any]] = [
        {"name": "do_list", "path": "/legacy/customer.do", "query": {"method": "list"},
         "records": ["rows.item"]},
        {"name": "do_detail", "path": "/legacy/customer.do", "query": {"method": "detail"},
         "records": ["data"]},
        {"name": "do_export", "path": "/legacy/customer.do", "query": {"method": "export"},
         "export": True, "response_types": ["text/csv"]},
        {"name": "do_one", "path": "/legacy/{kind}.do", "query": {"action": "view"}},
        *extra,
    ]  # fmt: skip
    if plain:
        routes.append({"name": "do_home", "path": "/legacy/customer.do"})
    return Catalog.from_dict({"name": "t", "version": 1, "routes": routes})


def _name(catalog: Catalog, query: str, path: str = "/legacy/customer.do") -> str | None:
    found = catalog.match("GET", path, query)
    return found.route.name if found else None


def test_the_parameter_chooses_the_route_and_names_it() -> None:
    c = _catalog()
    assert _name(c, "method=list&limit=5") == "do_list"
    assert _name(c, "id=C1&method=detail") == "do_detail"
    assert _name(c, "method=export") == "do_export"
    assert _name(c, "") == "do_home" and _name(c, "id=C1") == "do_home"
    found = c.match("GET", "/legacy/customer.do", "method=detail&id=C1")
    assert found is not None and found.template == "/legacy/customer.do?method=detail"
    assert found.route.label == found.template
    # percent-encoding and `+` are read as the CRM reads them
    assert _name(c, "m%65thod=d%65tail") == "do_detail"
    assert _name(c, "action=view", "/legacy/account.do") == "do_one"


@pytest.mark.parametrize(
    "query",
    [
        "method=detail&method=list",  # first or last wins, depending on the CRM
        "method=list&method=list",
        "Method=detail",  # ASP.NET reads names in any case
        "METHOD=detail",
        "method[]=detail",  # PHP
        "method%00=detail",  # a C parser stops at the NUL
        "%20method=detail",
        "method%09=detail",
        "m%2565thod=detail",  # decoded twice by some CRMs
        "method=DETAIL",  # differs in case only
        "method=Detail&id=1",
    ],
)
def test_a_parameter_the_crm_could_read_otherwise_is_refused(query: str) -> None:
    with pytest.raises(AmbiguousDispatch) as caught:
        _catalog().match("GET", "/legacy/customer.do", query)
    assert caught.value.status == 400 and caught.value.code == "ambiguous_dispatch"


def test_an_undeclared_value_or_a_missing_parameter_is_uncatalogued() -> None:
    c = _catalog()
    assert _name(c, "method=exportAll") is None
    assert _name(c, "method=") is None
    assert _name(c, "method=detail%20") is None  # not the declared value, not its case
    assert _name(_catalog(plain=False), "id=C1") is None  # no plain route in the family
    assert _name(c, "", "/legacy/account.do") is None


def test_other_families_and_routes_without_query_are_untouched() -> None:
    c = _catalog({"name": "plain", "path": "/api/customers/{id}"})
    found = c.match("GET", "/api/customers/C1", "method=detail&method=x")
    assert (
        found is not None and found.route.name == "plain" and found.template == found.route.template
    )


def test_the_loader_checks_query_and_reveal_targets() -> None:
    bad = {"name": "t", "version": 1, "routes": [
        {"name": "a", "path": "/x.do", "query": {"method": ""}},
        {"name": "b", "path": "/y.do", "query": ["method", "list"]},
        {"name": "c", "path": "/c/{id}", "records": [""], "query": {"m": "d"}},
        {"name": "d", "path": "/d", "reveal_route": "c"},
    ]}  # fmt: skip
    with pytest.raises(ValueError) as caught:
        Catalog.from_dict(bad)
    text = str(caught.value)
    assert "routes[0].query: must map parameter names" in text
    assert "routes[1].query: must map parameter names" in text
    assert "nor a query-dispatched route" in text


@given(st.lists(st.tuples(st.sampled_from(["method", "id", "x", "Method", "method[]"]),
                          st.sampled_from(["list", "detail", "export", "LIST", "", "zz"])),
                max_size=4))  # fmt: skip
def test_a_match_is_only_ever_the_one_route_the_crm_would_serve(
    pairs: list[tuple[str, str]],
) -> None:
    """Whatever the query, the gateway either refuses it, treats it as uncatalogued, or
    picks the route whose value the one `method` parameter carries exactly."""
    query = "&".join(f"{k}={v}" for k, v in pairs)
    try:
        found = _catalog().match("GET", "/legacy/customer.do", query)
    except AmbiguousDispatch:
        return
    methods = [v for k, v in pairs if k == "method"]
    if found is None:
        assert methods and methods[0] not in ("list", "detail", "export")
    elif found.route.name == "do_home":
        assert not methods
    else:
        assert methods == [found.route.query["method"]]


def test_a_request_with_a_body_names_its_page_in_the_query() -> None:
    c = _catalog({"name": "do_save", "path": "/legacy/customer.do", "methods": ["POST"],
                  "query": {"method": "save"}})  # fmt: skip
    found = c.match("POST", "/legacy/customer.do", "method=save")
    assert found is not None and found.route.name == "do_save"
    # without it the CRM may take the page from the form body: not the plain route's
    assert c.match("POST", "/legacy/customer.do", "") is None
    assert c.match("GET", "/legacy/customer.do", "").route.name == "do_home"  # type: ignore[union-attr]
    assert c.dispatch_params("/legacy/customer.do") == {"method"}
    assert c.dispatch_params("/api/customers") == frozenset()


@pytest.mark.parametrize("field", ["method", "Method", "method[]", " method"])
def test_a_body_naming_a_dispatch_parameter_is_refused(field: str) -> None:
    with pytest.raises(AmbiguousDispatch, match="name it in the query string only"):
        check_body(["name", field], {"method"})
    check_body(["name", "methods", "id"], {"method"})
    check_body(["method"], set())


def test_absent_is_the_crms_own_answer_for_a_missing_record() -> None:
    c = Catalog.from_dict({"name": "t", "version": 1, "routes": [
        {"name": "a", "path": "/a/{id}", "absent": {"body": {"code": 1001, "msg": "记录不存在"}}},
        {"name": "b", "path": "/b/{id}", "absent": {"status": 404, "body": "no such record\n"}},
    ]})  # fmt: skip
    a, b = (c.route(n) for n in ("a", "b"))
    assert a is not None and a.absent is not None and b is not None and b.absent is not None
    assert (a.absent.status, a.absent.body) == (200, '{"code":1001,"msg":"记录不存在"}'.encode())
    assert (b.absent.status, b.absent.body) == (404, b"no such record\n")
    bad = {"name": "t", "version": 1, "routes": [
        {"name": "x", "path": "/x", "absent": {"status": 99, "body": "x"}},
        {"name": "y", "path": "/y", "absent": {"status": 200}},
        {"name": "z", "path": "/z", "absent": {"body": 5, "type": "x"}},
    ]}  # fmt: skip
    with pytest.raises(ValueError) as caught:
        Catalog.from_dict(bad)
    text = str(caught.value)
    assert "routes[0].absent.status: must be an HTTP status" in text
    assert "routes[1].absent: must be {status, body}" in text
    assert "routes[2].absent.body: must be the exact text or a JSON value" in text
    assert "routes[2].absent.type: unknown key" in text


def _with_reads(**update: Any) -> dict[str, Any]:
    routes = [
        {"name": "detail", "path": "/c.do", "methods": ["GET"], "query": {"method": "detail"},
         "records": ["data"]},
        {"name": "update", "path": "/c.do", "methods": ["POST"], "query": {"method": "update"},
         "reads": "detail"},
    ]  # fmt: skip
    routes[1].update(update)
    return {"name": "x", "routes": routes}


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        ({"reads": "nope"}, "no route named 'nope'"),
        ({"reads": 3}, "reads: must be the name of a route"),
        ({"reads": "update"}, "must be a GET page of the same path"),
        ({"query": {}}, "only a query-dispatched route reads its record so"),
    ],
)
def test_reads_names_a_dispatched_read_page_of_the_same_path(
    update: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match="invalid catalog") as err:
        Catalog.from_dict(_with_reads(**update))
    assert problem in str(err.value)


def test_the_read_request_keeps_the_write_s_other_parameters() -> None:
    catalog = Catalog.from_dict(_with_reads())
    write = catalog.match("POST", "/c.do", "method=update&id=C000001&x=1")
    assert write is not None and write.route.name == "update"
    found = dispatched_read(catalog, "/c.do", "method=update&id=C000001&x=1", write)
    assert found is not None
    path_qs, read = found
    assert path_qs == "/c.do?method=detail&id=C000001&x=1" and read.route.name == "detail"
