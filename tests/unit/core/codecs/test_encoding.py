"""Content-Encoding: every layer decoded before masking, bombs and truncation refused."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import brotli
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.codecs import BodyTooLarge, CodecLimits, make_body_rewriter
from gateway.core.rewrite import RewriteError
from tests.unit.core.codecs.doubles import MaskingEnforcer
from tests.unit.core.codecs.helpers import run, split_at

CT = "application/json"
DOC = {"results": [{"mobile": "13812345678", "grade": "B", "n": i} for i in range(200)]}
BODY = orjson.dumps(DOC)
LIMITS = CodecLimits(max_buffered=1 << 20, max_decompressed=8 << 20, max_ratio=100)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": lambda d: brotli.compress(d, quality=5),
    "identity": lambda d: d,
}


def expected() -> object:
    return orjson.loads(run(BODY, CT, MaskingEnforcer(["results.item"])))


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_each_encoding_is_decoded_then_masked(name: str) -> None:
    encoded = ENCODERS[name](BODY)
    out = run(
        split_at(encoded, range(0, len(encoded), 100)),
        CT,
        MaskingEnforcer(["results.item"]),
        encoding=name,
        limits=LIMITS,
    )
    assert b"13812345678" not in out
    assert orjson.loads(out) == expected()


def test_raw_deflate_is_accepted_under_the_deflate_label() -> None:
    out = run(raw_deflate(BODY), CT, MaskingEnforcer(), encoding="deflate", limits=LIMITS)
    assert orjson.loads(out) == expected()


def test_stacked_encodings_are_undone_in_reverse_order() -> None:
    encoded = brotli.compress(gzip.compress(BODY))  # "gzip, br": gzip applied first
    out = run(encoded, CT, MaskingEnforcer(), encoding="gzip, br", limits=LIMITS)
    assert orjson.loads(out) == expected()
    with pytest.raises(RewriteError):
        run(encoded, CT, MaskingEnforcer(), encoding="br, gzip", limits=LIMITS)


def test_multi_member_gzip() -> None:
    half = len(BODY) // 2
    encoded = gzip.compress(BODY[:half]) + gzip.compress(BODY[half:])
    out = run(encoded, CT, MaskingEnforcer(), encoding="gzip", limits=LIMITS)
    assert orjson.loads(out) == expected()


@pytest.mark.parametrize("name", ["compress", "zstd", "gzip, snappy"])
def test_unknown_encoding_is_refused_at_the_first_byte(name: str) -> None:
    rw = make_body_rewriter(CT, name, MaskingEnforcer(), limits=LIMITS, sensitive=True)
    with pytest.raises(RewriteError, match="unsupported Content-Encoding"):
        rw.feed(b"\x1f\x8b")
    with pytest.raises(RewriteError, match="unsupported Content-Encoding"):
        rw.finish()


@pytest.mark.parametrize("name", ["gzip", "deflate", "br"])
def test_truncated_stream_is_refused(name: str) -> None:
    encoded = ENCODERS[name](BODY)
    with pytest.raises(RewriteError, match="truncated"):
        run(encoded[: len(encoded) - 9], CT, MaskingEnforcer(), encoding=name, limits=LIMITS)


@pytest.mark.parametrize("name", ["gzip", "deflate", "br"])
def test_corrupt_stream_is_refused(name: str) -> None:
    encoded = bytearray(ENCODERS[name](BODY))
    encoded[len(encoded) // 2] ^= 0xFF
    encoded[len(encoded) // 2 + 1] ^= 0xFF
    with pytest.raises(RewriteError):
        run(bytes(encoded), CT, MaskingEnforcer(), encoding=name, limits=LIMITS)


def test_trailing_garbage_after_deflate_is_refused() -> None:
    with pytest.raises(RewriteError, match="after its end"):
        run(zlib.compress(BODY) + b"junk", CT, MaskingEnforcer(), encoding="deflate", limits=LIMITS)


@pytest.mark.parametrize("name", ["gzip", "deflate", "br"])
def test_decompression_bomb_stops_at_the_size_cap(name: str) -> None:
    bomb = ENCODERS[name](b"\x20" * (16 << 20))  # 16 MiB of spaces, a few KiB compressed
    assert len(bomb) < 50_000
    limits = CodecLimits(max_buffered=1 << 30, max_decompressed=2 << 20, max_ratio=1 << 30)
    with pytest.raises(BodyTooLarge, match="size limit"):
        run(bomb, CT, MaskingEnforcer(), encoding=name, limits=limits)


@pytest.mark.parametrize("name", ["gzip", "br"])
def test_decompression_bomb_stops_at_the_ratio_cap(name: str) -> None:
    bomb = ENCODERS[name](b"\x20" * (16 << 20))
    limits = CodecLimits(max_buffered=1 << 30, max_decompressed=1 << 30, max_ratio=100)
    with pytest.raises(RewriteError, match="ratio"):
        run(bomb, CT, MaskingEnforcer(), encoding=name, limits=limits)


def test_small_compressible_bodies_are_not_mistaken_for_bombs() -> None:
    body = b"[" + b" " * 500_000 + b"]"  # ratio ~ 500, under the ratio floor
    out = run(gzip.compress(body), CT, MaskingEnforcer(), encoding="gzip", limits=LIMITS)
    assert out == b"[]"


def test_stacked_bomb_is_caught_in_the_inner_layer() -> None:
    bomb = gzip.compress(gzip.compress(b"\x20" * (16 << 20)))
    with pytest.raises(RewriteError):
        run(bomb, CT, MaskingEnforcer(), encoding="gzip, gzip", limits=LIMITS)


@given(
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    name=st.sampled_from(["gzip", "deflate", "br"]),
)
def test_chunking_of_the_encoded_stream_does_not_matter(cuts: list[int], name: str) -> None:
    encoded = ENCODERS[name](BODY)
    out = run(
        split_at(encoded, cuts), CT, MaskingEnforcer(["results.item"]), encoding=name, limits=LIMITS
    )
    assert orjson.loads(out) == expected()
