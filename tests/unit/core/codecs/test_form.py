"""application/x-www-form-urlencoded bodies, as flat fields."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from gateway.core.rewrite import RewriteError
from tests.unit.core.codecs.doubles import MaskingEnforcer
from tests.unit.core.codecs.helpers import run

CT = "application/x-www-form-urlencoded"


def test_fields_are_rewritten_in_order_with_repeats() -> None:
    body = (
        b"id=C1&mobile=13812345678&name=%E5%BC%A0%E4%BC%9F"
        b"&mobile=13900000000&query_password=x&n=+a+"
    )
    out = run(body, CT, MaskingEnforcer())
    assert parse_qsl(out.decode(), keep_blank_values=True) == [
        ("id", "C1"),
        ("mobile", "***********"),
        ("name", "**"),
        ("mobile", "***********"),
        ("n", " a "),
    ]


def test_gbk_percent_escapes() -> None:
    body = b"name=%D5%C5%CE%B0&note=%" + "电话13812345678".encode("gbk").hex("%").upper().encode()
    out = run(body, f"{CT}; charset=gbk", MaskingEnforcer())
    assert parse_qsl(out.decode(), encoding="gbk") == [("name", "**"), ("note", "电话138********")]


def test_invalid_percent_escape_bytes_block_on_sensitive_routes() -> None:
    with pytest.raises(RewriteError, match="malformed form"):
        run(b"name=%FF%FE", CT, MaskingEnforcer())
