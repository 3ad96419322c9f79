"""Links to the CRM rewritten to the public base; response headers scanned."""

from __future__ import annotations

import pytest

from gateway.core.detectors import detect
from gateway.core.links import link_map, public_base
from gateway.core.outbound_headers import FoldedHeader, rewrite_links, scan_headers

UP = "http://127.0.0.1:8800"
GW = "https://crm.example.com"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (f"{UP}/api/x/?offset=5", f"{GW}/api/x/?offset=5"),
        ("https://localhost:8800/a", f"{GW}/a"),
        ("//127.0.0.1:8800/a", f"{GW}/a"),
        ("http:\\/\\/127.0.0.1:8800\\/a", "https:\\/\\/crm.example.com\\/a"),
        ("http://[::1]:8800/a", f"{GW}/a"),
        ("HTTP://127.0.0.1:8800/a", f"{GW}/a"),
        ("http://127.0.0.1:88001/a", "http://127.0.0.1:88001/a"),  # another port
        ("http://127.0.0.1:8800.evil.example/a", "http://127.0.0.1:8800.evil.example/a"),
        ("http://crm.internal/a http://crm.internal:80/b", f"{GW}/a {GW}/b"),
        ("http://crm.internal.evil/a", "http://crm.internal.evil/a"),
    ],
)
def test_links_to_the_crm(text: str, want: str) -> None:
    links = link_map(UP, ["http://crm.internal"], GW)
    assert links is not None
    assert links.rewrite(text) == want


def test_public_base() -> None:
    assert public_base("https://x.example/", "http", "h") == "https://x.example"
    assert public_base("", "https", "gw.example:8443") == "https://gw.example:8443"
    assert public_base("", "http", 'evil/"><') == ""
    assert public_base("", "ftp", "h") == ""


def test_split_keeps_the_base_apart() -> None:
    links = link_map(UP, [], "http://127.0.0.1:9000")
    assert links is not None
    assert links.split("a http://127.0.0.1:9000/x b") == ["a ", "http://127.0.0.1:9000", "/x b"]
    assert links.is_base("http:\\/\\/127.0.0.1:9000")


def _mask(text: str) -> str:
    out, pos = [], 0
    for hit in detect(text):
        out += [text[pos : hit.start], "*" * (hit.end - hit.start)]
        pos = hit.end
    return "".join(out) + text[pos:]


ID = "110105198211222842"


def test_scan_headers() -> None:
    raw_name = f"张三_{ID}.csv".encode().decode("latin-1")  # as aiohttp hands it over
    headers = [
        ("Content-Length", "12"),
        ("Content-Disposition", f'attachment; filename="{raw_name}"'),
        ("Set-Cookie", f"last={ID}; Path=/c/{ID}; HttpOnly"),
        ("Location", f"{UP}/x?id={ID}"),
        (f"X-{ID}", "1"),
        ("X-Plain", "nothing here"),
    ]
    links = link_map(UP, [], GW)
    out = dict(scan_headers(headers, _mask, links))
    assert out["Content-Length"] == "12"
    assert out["Content-Disposition"] == 'attachment; filename="张三_' + "*" * 18 + '.csv"'
    assert out["Set-Cookie"] == f"last={'*' * 18}; Path=/c/{'*' * 18}; HttpOnly"
    assert out["Location"] == f"{GW}/x?id={'*' * 18}"
    assert f"X-{ID}" not in out
    assert out["X-Plain"] == "nothing here"


def test_encoded_words_are_scanned() -> None:
    import base64

    word = base64.b64encode(f"身份证{ID}".encode()).decode()
    out = scan_headers([("X-Note", f"=?UTF-8?B?{word}?=")], _mask, None)
    assert out == [("X-Note", "身份证" + "*" * 18)]


@pytest.mark.parametrize("value", ["a\r\n b", "a\nb", "a\x00b"])
def test_line_breaks_are_refused(value: str) -> None:
    with pytest.raises(FoldedHeader):
        scan_headers([("X-A", value)], _mask, None)
    with pytest.raises(FoldedHeader):
        rewrite_links([("X-A", value)], None)


def test_headers_that_count_records_are_recognised_by_name() -> None:
    from gateway.core.outbound_headers import counts_records, scan_headers

    for name in ("X-Total-Count", "X-Total", "X-Pagination-Total-Entries", "Total_Count",
                 "X-Result-Count", "Content-Range", "X-Hits"):  # fmt: skip
        assert counts_records(name), name
    for name in ("Content-Length", "X-Request-Id", "X-Accounting-Unit", "Set-Cookie"):
        assert not counts_records(name), name
    kept = scan_headers([("X-Total-Count", "60"), ("X-Api", "2")], str, None, counts=True)
    assert kept == [("X-Api", "2")]
    assert scan_headers([("X-Total-Count", "60")], str, None) == [("X-Total-Count", "60")]
