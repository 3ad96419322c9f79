"""Path normalisation: one canonical spelling, so no trick dodges a route rule."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.paths import PathRejected, has_matrix, normalize_path, strip_matrix
from gateway.errors import ClientError

# A route rule as the handler would apply it: a glob on the normalised path.
ADMIN_RULE = "/admin*"
CUSTOMERS_RULE = "/api/customers*"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/api/customers", "/api/customers"),
        ("//api/../api/customers", "/api/customers"),
        ("/api//customers///", "/api/customers/"),
        ("/api/./customers/.", "/api/customers/"),
        ("/api/%2e%2e/admin", "/admin"),
        ("/api/%2E%2e/%2e/admin", "/admin"),
        ("/api/.%2e/admin", "/admin"),
        ("/../../etc", "/etc"),
        ("/a/..", "/"),
        ("/%41pi/%7Euser", "/Api/~user"),
        ("/a/%c3%a9", "/a/%C3%A9"),
        ("/a/é", "/a/%C3%A9"),
        ("/a b", "/a%20b"),
        ("/a/x%3bv=1/b", "/a/x%3Bv=1/b"),
        ("/100%25", "/100%25"),
        ("/%25é", "/%25%C3%A9"),
        ("/%25%7e", "/%25~"),
        ("/a;x=1/b", "/a;x=1/b"),
    ],
)
def test_canonical_form(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


def test_case_insensitive_lowercases_letters_not_escapes() -> None:
    assert normalize_path("/API/CUSTOMERS", case_insensitive=True) == "/api/customers"
    assert normalize_path("/A/%C3%A9/%41", case_insensitive=True) == "/a/%C3%A9/a"
    assert normalize_path("/API/CUSTOMERS") == "/API/CUSTOMERS"


@pytest.mark.parametrize(
    "raw",
    [
        "/api/customers/%2f..",
        "/api/customers%2F",
        "/api%5cadmin",
        "/api\\admin",
        "/api/%00",
        "/api/\x00",
        "/api/\n",
        "/api/%0d%0a",
        "/api/%7f",
        "/api/%252e%252e/admin",
        "/api/%25%32%65",
        "/api/%25A%31",
        "/api/%2",
        "/api/%zz",
        "/api/..;/admin",
        "/api/.;x/admin",
        "/api/..%3b/admin",
        "api/customers",
        "",
    ],
)
def test_hostile_paths_are_refused(raw: str) -> None:
    with pytest.raises(PathRejected) as info:
        normalize_path(raw)
    assert isinstance(info.value, ClientError)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "raw",
    [
        "//admin",
        "/api/../admin",
        "/api/%2e%2e/admin",
        "/./admin/",
        "/api/customers/../../admin/users",
        "/%61dmin",
        "/ADMIN",
    ],
)
def test_bypass_attempts_still_hit_the_admin_rule(raw: str) -> None:
    assert fnmatchcase(normalize_path(raw, case_insensitive=True), ADMIN_RULE)


@pytest.mark.parametrize(
    "raw", ["//api/../api/customers", "/API/CUSTOMERS", "/api/./customers/%2e/", "/api/%63ustomers"]
)
def test_bypass_attempts_still_hit_the_customers_rule(raw: str) -> None:
    assert fnmatchcase(normalize_path(raw, case_insensitive=True), CUSTOMERS_RULE)


_path_chars = st.sampled_from(
    [
        "/",
        ".",
        "..",
        "a",
        "B",
        "%2e",
        "%2E",
        "%41",
        "%25",
        "%c3%a9",
        ";",
        "~",
        "é",
        " ",
        "%3b",
        "x",
        "%34",
        "1",
        "%",
        "%7e",
        "\\",
        "%2f",
        "%00",
    ]
)
paths = st.lists(_path_chars, max_size=20).map(lambda parts: "/" + "".join(parts))


@given(paths, st.booleans())
def test_normalisation_is_idempotent_and_clean(raw: str, ci: bool) -> None:
    try:
        once = normalize_path(raw, case_insensitive=ci)
    except PathRejected:
        return
    assert normalize_path(once, case_insensitive=ci) == once
    assert once.startswith("/")
    assert "//" not in once
    segments = once.split("/")
    assert ".." not in segments
    assert "." not in segments


@given(st.text(max_size=40), st.booleans())
def test_any_text_is_canonical_or_refused(raw: str, ci: bool) -> None:
    try:
        once = normalize_path("/" + raw, case_insensitive=ci)
    except PathRejected:
        return
    assert normalize_path(once, case_insensitive=ci) == once
    assert "//" not in once
    assert ".." not in once.split("/")
    assert all(0x20 < ord(c) < 0x7F for c in once)


# --- issue 11: what a lenient CRM could read differently is refused ---------------------


@pytest.mark.parametrize(
    "raw",
    [
        "/static/%c0%ae%c0%ae/api",  # overlong "."
        "/static/%C0%AE/api",
        "/a/%c0%af/b",  # overlong "/"
        "/a/%e0%80%ae",  # 3-byte overlong "."
        "/a/%f0%80%80%ae",  # 4-byte overlong "."
        "/a/%c1%9c",  # overlong "\\"
        "/a/%80",  # lone continuation byte
        "/a/x%bfy",
        "/a/%c3",  # truncated sequence
        "/a/%e4%bd",
        "/a/%ed%a0%80",  # UTF-8 encoded surrogate
        "/a/%f4%90%80%80",  # above U+10FFFF
        "/a/%f8%88%80%80%80",  # 5-byte form
        "/a/%fe",
        "/a/\ud800",  # a lone surrogate handed over as text
        "/static/%ef%bc%8e%ef%bc%8e/api",  # fullwidth full stops
        "/a%ef%bc%8fb",  # fullwidth solidus
        "/a/%ef%bc%bc",  # fullwidth reverse solidus
        "/%ef%bd%81pi",  # fullwidth a
        "/a/\uff0e\uff0e/b",  # raw fullwidth dots
        "/a/%e2%80%a4",  # one dot leader
        "/a%c2%a0",  # no-break space
        "/a/%e3%80%80",  # ideographic space
        "/a/b%e2%80%8bc",  # zero-width space
        "/a/%c2%ad",  # soft hyphen
        "/a/%c2%85",  # C1 control
        "/a/%ef%bb%bf",  # BOM
        "/a/\u2044b",  # fraction slash: a Windows best-fit "/"
        "/a/%e2%88%95b",  # division slash
        "/a/%c2%a5b",  # yen sign: "\\" in code page 932
        "/a/%e2%85%a0",  # roman numeral one -> "I"
        "/api/customers./X",
        "/api/customers%2e/X",
        "/api/customers%20/X",
        "/api/customers /X",
        "/api/customers.%20/X",
        "/api/X.",
        "/api/X%20",
        "/api/...",
        "/api/x.;p=1/y",
        "/api/;x/y",
        "/api/%3Bx/y",
        "/api/;/y",
        "/api/%u002e%u002e/x",
        "/api/%U002E/x",
    ],
)
def test_lenient_crm_ambiguities_are_refused(raw: str) -> None:
    with pytest.raises(PathRejected) as info:
        normalize_path(raw)
    assert info.value.status == 400 and info.value.code == "bad_path"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/api/客户/张三", "/api/%E5%AE%A2%E6%88%B7/%E5%BC%A0%E4%B8%89"),
        ("/api/%e5%ae%a2%e6%88%b7", "/api/%E5%AE%A2%E6%88%B7"),
        ("/a/é", "/a/%C3%A9"),
        ("/.well-known/x", "/.well-known/x"),
        ("/a/b.json", "/a/b.json"),
        ("/a/b%20c", "/a/b%20c"),
        ("/a;jsessionid=1/b", "/a;jsessionid=1/b"),
        ("/a/x;/../b", "/a/b"),
    ],
)
def test_ordinary_paths_stay_accepted(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    ("path", "stripped"),
    [
        ("/api/customers;jsessionid=1/C1", "/api/customers/C1"),
        ("/api/customers/C1;jsessionid=1", "/api/customers/C1"),
        ("/api;a=1;b=2/customers%3Bx/C1", "/api/customers/C1"),
        ("/api/c;x/", "/api/c/"),
    ],
)
def test_strip_matrix(path: str, stripped: str) -> None:
    assert has_matrix(path)
    assert strip_matrix(path) == stripped
    assert normalize_path(stripped) == stripped  # canonical too
    assert not has_matrix(stripped) and strip_matrix(stripped) == stripped


_hostile_chars = st.sampled_from(
    ["%c0%ae", "%c0", "%80", "%ef%bc%8e", "%ef%bc%8f", "\uff0e", ".", "..", "%20", ";x",
     "%3b", "/", "a", "B", "%e2%80%8b", "%e5%ae%a2", "客", "%2e", "~", "%c2%a0"]
)  # fmt: skip
hostile_paths = st.lists(_hostile_chars, max_size=16).map(lambda parts: "/" + "".join(parts))


@given(hostile_paths, st.booleans())
def test_accepted_paths_are_canonical_and_unambiguous(raw: str, ci: bool) -> None:
    try:
        once = normalize_path(raw, case_insensitive=ci)
    except PathRejected:
        return
    assert normalize_path(once, case_insensitive=ci) == once
    stripped = strip_matrix(once)
    assert normalize_path(stripped, case_insensitive=ci) == stripped
    for seg in once.split("/")[1:]:
        bare = seg.split(";")[0].split("%3B")[0]
        assert not bare.endswith((".", "%20")) or bare == ""
        assert "%C0" not in seg and "%EF%BC" not in seg
