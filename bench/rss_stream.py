"""Peak RSS while streaming a generated JSON array through make_body_rewriter.

    .venv/bin/python -m bench.rss_stream --mib 1024 [--enforcer real] [--gzip]

The body is generated on the fly (nothing stored); output is counted and
discarded. Prints throughput and peak RSS (getrusage ru_maxrss); the target is
at most 200 MB for a 1 GiB array.
"""

from __future__ import annotations

import argparse
import resource
import time
import zlib
from collections.abc import Iterator
from typing import Any

from bench.gen_big_export import page_chunks
from gateway.core.codecs import CodecLimits, make_body_rewriter
from gateway.core.rewrite import RecordEnforcer

LIMITS = CodecLimits(max_buffered=8 << 20, max_decompressed=4 << 30, max_ratio=200)


class PassThrough:
    """A trivial RecordEnforcer: measures the codec, not the masking."""

    def record_prefixes(self) -> list[str]:
        return ["results.item"]

    def rewrite_document(self, doc: Any) -> Any:
        return doc

    def record_keys(self) -> frozenset[str]:
        return frozenset()

    def rewrite_subtree(self, prefix: str, value: Any) -> Any:
        return value

    def rewrite_record(self, record: dict[str, Any], prefix: str = "") -> dict[str, Any] | None:
        return record

    def rewrite_value(self, path: tuple[str | int, ...], value: Any) -> Any:
        return value

    def rewrite_header(self, header: list[str]) -> list[str]:
        return header

    def rewrite_row(self, header: list[str], row: list[str]) -> list[str] | None:
        return row

    def rewrite_fields(self, fields: Any) -> dict[str, str]:
        return dict(fields)

    def rewrite_text(self, text: str) -> str:
        return text


def real_enforcer() -> RecordEnforcer:
    """The production enforcer for a sales caller (L2) on the customer list route."""
    from pathlib import Path

    from gateway.core.catalog import Catalog
    from gateway.core.enforce import build_enforcer
    from gateway.core.masking import Masker
    from gateway.core.model import Subject
    from gateway.core.static_policy import static_decision
    from gateway.core.taxonomy import Taxonomy

    root = Path(__file__).resolve().parents[1]
    taxonomy = Taxonomy.load(root / "config" / "taxonomy.yaml")
    catalog = Catalog.load(root / "config" / "crm" / "demo.yaml")
    decision = static_decision(taxonomy, Subject(id="u-sales-01", clearance="L2"), method="GET")
    return build_enforcer(
        taxonomy=taxonomy,
        route=catalog.route("customer_list"),
        decision=decision,
        subject_id="u-sales-01",
        masker=Masker(taxonomy, b"bench-key-0123456789abcdef012345"),
    )


def gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = comp.compress(chunk)
        if out:
            yield out
    yield comp.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--enforcer", choices=["trivial", "real"], default="trivial")
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    enforcer: RecordEnforcer = real_enforcer() if args.enforcer == "real" else PassThrough()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rw = make_body_rewriter(
        "application/json; charset=utf-8",
        "gzip" if args.gzip else None,
        enforcer,
        limits=LIMITS,
        sensitive=True,
    )
    chunks: Iterator[bytes] = page_chunks(args.mib << 20)
    if args.gzip:
        chunks = gzipped(chunks)
    start = time.perf_counter()
    size_out = 0
    size_in = 0
    for chunk in chunks:
        size_in += len(chunk)
        size_out += len(rw.feed(chunk))
    size_out += len(rw.finish())
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"enforcer={args.enforcer} gzip={args.gzip} in={size_in / 2**20:.0f} MiB "
        f"out={size_out / 2**20:.0f} MiB time={elapsed:.1f}s "
        f"({args.mib / elapsed:.1f} MiB/s of JSON incl. generation) "
        f"peak_rss={peak / 1024:.0f} MiB (before streaming {before / 1024:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
