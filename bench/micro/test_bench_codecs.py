"""Body codec throughput: the streaming JSON path and the buffered page path.

Run: .venv/bin/python -m pytest bench/micro/test_bench_codecs.py -q --benchmark-only

- stream_20mb_trivial: a ~20 MB customer list fed in 64 KiB chunks, records
  streamed one by one through a pass-through enforcer (codec cost only).
- stream_20mb_gzip_trivial: the same body gzip-encoded (adds decompression).
- stream_20mb_real_l2: the same body through the production enforcer (sales, L2).
- ndjson_20mb_trivial / csv_9mb_trivial: the other streamed export formats.
- buffered_8kb_page_trivial: one 10-record page (~8 KB), the common case.
MB/s figures are in each result's extra_info (`--benchmark-json`).
"""

from __future__ import annotations

import csv
import gzip
import io
from functools import cache
from typing import Any

import orjson
import pytest

from bench.gen_big_export import customer, page_chunks
from bench.rss_stream import PassThrough, real_enforcer
from gateway.core.codecs import CodecLimits, make_body_rewriter
from gateway.core.rewrite import RecordEnforcer

LIMITS = CodecLimits(max_buffered=8 << 20, max_decompressed=1 << 30, max_ratio=200)
CHUNK = 64 * 1024
SIZE = 20 << 20


@cache
def json_body() -> bytes:
    return b"".join(page_chunks(SIZE))


@cache
def ndjson_body() -> bytes:
    out = bytearray()
    i = 0
    while len(out) < SIZE:
        out += orjson.dumps(customer(i)) + b"\n"
        i += 1
    return bytes(out)


@cache
def csv_body() -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    header = [k for k in customer(0) if k not in ("holdings", "consent")]
    writer.writerow(header)
    i = 0
    while buf.tell() < SIZE // 3:  # tell() counts characters; Chinese makes bytes ~1.3x
        row = customer(i)
        writer.writerow([row[k] for k in header])
        i += 1
    return buf.getvalue().encode()


def _chunks(body: bytes) -> list[bytes]:
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]


def _pump(chunks: list[bytes], ct: str, enc: str | None, enforcer: RecordEnforcer) -> int:
    rw = make_body_rewriter(ct, enc, enforcer, limits=LIMITS, sensitive=True)
    total = sum(len(rw.feed(c)) for c in chunks)
    return total + len(rw.finish())


def _mb_per_s(benchmark: Any, size: int) -> None:
    benchmark.extra_info["input_mb"] = round(size / 1e6, 1)
    benchmark.extra_info["mb_per_s"] = round(size / 1e6 / benchmark.stats.stats.mean, 1)


@pytest.mark.parametrize(
    ("name", "ct", "body", "enc"),
    [
        pytest.param(name, ct, body, enc, id=name)
        for name, ct, body, enc in [
            ("stream_20mb_trivial", "application/json", json_body, None),
            ("stream_20mb_gzip_trivial", "application/json", json_body, "gzip"),
            ("ndjson_20mb_trivial", "application/x-ndjson", ndjson_body, None),
            ("csv_9mb_trivial", "text/csv; charset=utf-8", csv_body, None),
        ]
    ],
)
def test_stream_trivial(benchmark: Any, name: str, ct: str, body: Any, enc: str | None) -> None:
    raw = body()
    chunks = _chunks(gzip.compress(raw, 6) if enc else raw)
    out = benchmark.pedantic(_pump, args=(chunks, ct, enc, PassThrough()), rounds=3, iterations=1)
    assert out > len(raw) * 0.9
    _mb_per_s(benchmark, len(raw))


def test_stream_20mb_real_l2(benchmark: Any) -> None:
    raw = json_body()
    chunks = _chunks(raw)
    _pump(_chunks(b"".join(page_chunks(200_000))), "application/json", None, real_enforcer())
    out = benchmark.pedantic(
        lambda: _pump(chunks, "application/json", None, real_enforcer()), rounds=1, iterations=1
    )
    assert out > len(raw) // 2
    _mb_per_s(benchmark, len(raw))


def test_buffered_8kb_page_trivial(benchmark: Any) -> None:
    page = orjson.dumps(
        {"count": 10, "page": 1, "page_size": 10, "results": [customer(i) for i in range(10)]}
    )
    assert 7_000 < len(page) < 9_000
    out = benchmark(_pump, [page], "application/json; charset=utf-8", None, PassThrough())
    assert out == len(page)
    benchmark.extra_info["input_bytes"] = len(page)
    _mb_per_s(benchmark, len(page))
