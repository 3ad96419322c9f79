"""The BodyRewriter contract: poisoned after any error, enforcer failures fail closed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.core.codecs import make_body_rewriter
from gateway.core.rewrite import BlockResponse, RewriteError
from tests.unit.core.codecs.doubles import MaskingEnforcer
from tests.unit.core.codecs.helpers import LIMITS, STREAM_NOW


class BrokenEnforcer(MaskingEnforcer):
    def rewrite_record(self, record: dict[str, Any], prefix: str = "") -> dict[str, Any] | None:
        raise KeyError(record.get("mobile"))  # a bug whose message quotes customer data


def test_poisoned_after_a_parse_error() -> None:
    rw = make_body_rewriter(
        "application/json", None, MaskingEnforcer(["item"]), limits=STREAM_NOW, sensitive=True
    )
    with pytest.raises(RewriteError):
        rw.feed(b"[}")
    with pytest.raises(RewriteError, match="poisoned"):
        rw.feed(b"[]")
    with pytest.raises(RewriteError, match="poisoned"):
        rw.finish()


def test_poisoned_after_block_response_which_propagates_unchanged() -> None:
    rw = make_body_rewriter(
        "application/json",
        None,
        MaskingEnforcer(["item"], block_tier="VIP"),
        limits=STREAM_NOW,
        sensitive=True,
    )
    with pytest.raises(BlockResponse):
        rw.feed(orjson.dumps([{"tier": "VIP"}]))
    with pytest.raises(RewriteError, match="poisoned"):
        rw.feed(b"")


def test_unexpected_enforcer_errors_become_rewrite_errors() -> None:
    rw = make_body_rewriter(
        "application/json", None, BrokenEnforcer(["item"]), limits=STREAM_NOW, sensitive=True
    )
    with pytest.raises(RewriteError, match="KeyError") as info:
        rw.feed(b'[{"mobile": "13812345678"}]')
    assert isinstance(info.value.__cause__, KeyError)
    assert "13812345678" not in str(info.value)  # error texts reach audit and clients
    with pytest.raises(RewriteError, match="poisoned"):
        rw.finish()


def test_output_a_kept_charset_cannot_hold_leaves_as_utf8() -> None:
    """A mask may write characters Latin-1 lacks: such bodies leave as UTF-8, declared."""

    class Emoji(MaskingEnforcer):
        def rewrite_text(self, text: str) -> str:
            return "\U0001f600"

    rw = make_body_rewriter(
        "text/plain; charset=latin-1", None, Emoji(), limits=LIMITS, sensitive=True
    )
    out = rw.feed(b"caf\xe9") + rw.finish()
    assert out.decode("utf-8") == "\U0001f600"
    assert rw.content_type == "text/plain; charset=utf-8"


def test_nothing_can_be_fed_after_finish() -> None:
    rw = make_body_rewriter(
        "application/json", None, MaskingEnforcer(), limits=LIMITS, sensitive=True
    )
    rw.feed(b"{}")
    assert rw.finish() == b"{}"
    with pytest.raises(RewriteError, match="finished"):
        rw.feed(b"{}")


@pytest.mark.parametrize(
    ("ct", "encoding"),
    [
        ("application/json", None),
        ("application/json", "gzip"),
        ("application/json", "br"),
        ("application/json", "deflate"),
        ("application/xml", None),
        ("application/x-www-form-urlencoded", None),
        ("text/csv", None),
        ("text/plain", None),
        ("application/x-ndjson", None),
    ],
)
def test_an_empty_body_stays_empty(ct: str, encoding: str | None) -> None:
    rw = make_body_rewriter(ct, encoding, MaskingEnforcer(), limits=LIMITS, sensitive=True)
    assert rw.feed(b"") == b""
    assert rw.finish() == b""


def test_deeply_nested_envelope_is_refused() -> None:
    rw = make_body_rewriter(
        "application/json", None, MaskingEnforcer(["item"]), limits=STREAM_NOW, sensitive=True
    )
    with pytest.raises(RewriteError, match="nested too deeply"):
        rw.feed(b"[" * 10_000)
