"""Content negotiation on sensitive routes: Accept narrowed, format overrides dropped,
undeclared response types refused."""

from __future__ import annotations

import pytest

from gateway.core.catalog import Catalog
from gateway.core.negotiation import (
    DEFAULT_RESPONSE_TYPES,
    check_response_type,
    declares,
    narrow_accept,
    strip_format_params,
)
from gateway.errors import NotAcceptable, UndeclaredResponseType

JSON = ("application/json",)


@pytest.mark.parametrize(
    ("accept", "declared", "sent"),
    [
        (None, JSON, "application/json"),
        ("", JSON, "application/json"),
        ("*/*", JSON, "application/json"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", JSON, "application/json"),
        ("application/*", JSON, "application/json"),
        (
            "text/csv, application/json;q=0.5",
            ("application/json", "text/csv"),
            "text/csv, application/json",
        ),
        ("application/json; indent=4", JSON, "application/json"),
    ],
)
def test_accept_is_narrowed_to_declared_types(
    accept: str | None, declared: tuple[str, ...], sent: str
) -> None:
    assert narrow_accept(accept, declared) == sent


@pytest.mark.parametrize(
    "accept", ["text/html", "text/html, application/xhtml+xml", "application/json;q=0", "text/*"]
)
def test_nothing_acceptable_is_406(accept: str) -> None:
    with pytest.raises(NotAcceptable):
        narrow_accept(accept, JSON)


def test_any_type_route_keeps_the_clients_accept() -> None:
    assert narrow_accept("text/html", ("*/*",)) is None


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("format=api", ""),
        ("limit=5&format=api&offset=10", "limit=5&offset=10"),
        ("FORMAT=api&%66ormat=json&_format=x&output=html&q=format", "q=format"),
        ("formats=1", "formats=1"),
        ("", ""),
    ],
)
def test_format_params_are_dropped(query: str, kept: str) -> None:
    assert strip_format_params(query, ("format", "_format", "output")) == kept


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json; charset=utf-8", True),
        ("APPLICATION/JSON", True),
        ("application/problem+json", True),
        ("text/html; charset=utf-8", False),
        ("text/plain", False),
        (None, False),
        ("", False),
        ("json", False),
    ],
)
def test_response_types(content_type: str | None, ok: bool) -> None:
    declared = ("application/json", "application/*+json")
    assert declares(declared, (content_type or "").split(";")[0].strip().lower()) is ok
    if ok:
        check_response_type(declared, content_type, "/api/x")
    else:
        with pytest.raises(UndeclaredResponseType) as exc:
            check_response_type(declared, content_type, "/api/x")
        assert exc.value.code == "undeclared_response_type" and exc.value.status == 502


def test_default_types_never_include_html() -> None:
    assert not declares(DEFAULT_RESPONSE_TYPES, "text/html")
    assert not declares(DEFAULT_RESPONSE_TYPES, "text/plain")
    assert declares(DEFAULT_RESPONSE_TYPES, "text/csv")


def _catalog(**extra: object) -> dict[str, object]:
    return {
        "name": "t",
        "routes": [{"name": "a", "path": "/a"}, {"name": "b", "path": "/b", **extra}],
    }


def test_catalog_response_types_default_and_per_route() -> None:
    raw = _catalog(response_types=["text/csv"])
    raw["response_types"] = ["application/json"]
    raw["format_params"] = ["format", "callback"]
    cat = Catalog.from_dict(raw)
    assert cat.response_types == ("application/json",)
    assert cat.format_params == ("format", "callback")
    assert cat.route("a").response_types == ("application/json",)  # type: ignore[union-attr]
    assert cat.route("b").response_types == ("text/csv",)  # type: ignore[union-attr]


def test_catalog_without_the_keys_uses_the_structured_defaults() -> None:
    cat = Catalog.from_dict(_catalog())
    assert cat.response_types == DEFAULT_RESPONSE_TYPES
    assert cat.route("b").response_types == DEFAULT_RESPONSE_TYPES  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("top", "route", "message"),
    [
        ({"response_types": "application/json"}, {}, "response_types: must be a non-empty list"),
        ({"response_types": ["html"]}, {}, "response_types[0]"),
        ({}, {"response_types": []}, "routes[1].response_types"),
        ({"format_params": [1]}, {}, "format_params"),
    ],
)
def test_catalog_errors_name_the_key(
    top: dict[str, object], route: dict[str, object], message: str
) -> None:
    raw = _catalog(**route)
    raw.update(top)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Catalog.from_dict(raw)


def test_an_undeclared_type_is_echoed_only_when_it_cannot_carry_data() -> None:
    import pytest

    from gateway.core.negotiation import check_response_type
    from gateway.errors import UndeclaredResponseType

    with pytest.raises(UndeclaredResponseType) as plain:
        check_response_type(["application/json"], "text/html; charset=utf-8", "/x")
    assert "text/html" in plain.value.message
    for hostile in ("application/x-6222600260001072444", "text/张三", "a/" + "b" * 80):
        with pytest.raises(UndeclaredResponseType) as got:
            check_response_type(["application/json"], hostile, "/x")
        assert hostile not in got.value.message and hostile not in str(got.value.details)
