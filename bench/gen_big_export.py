"""Generate a large customer-list JSON body on the fly, in chunks (never held whole).

Used by the codec benchmarks and by `python -m bench.rss_stream`. As a script it
writes a file for manual tests:

    .venv/bin/python -m bench.gen_big_export --mib 1024 --out /tmp/big.json
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import orjson


def customer(i: int) -> dict[str, Any]:
    """A demo-CRM-shaped customer; values vary with i so nothing is cached by accident."""
    return {
        "id": f"C{i:06d}",
        "name": "张伟" if i % 2 else "李娜",
        "gender": "男" if i % 2 else "女",
        "id_number": f"1101051949{i % 10**8:08d}",
        "mobile": f"138{i % 10**8:08d}",
        "landline": "010-62345678",
        "email": f"user{i}@example.com",
        "address": "北京市海淀区中关村大街1号院3栋201室",
        "employer": "华信科技有限公司",
        "birth_date": "1949-12-31",
        "annual_income": 350000 + i % 1000,
        "total_assets": 2500000.0,
        "balance": 120000.55,
        "bank_card": f"622202{i % 10**13:013d}",
        "securities_account": "A123456789",
        "holdings": [{"code": "600519", "name": "贵州茅台", "quantity": 100, "market_value": 1.0}],
        "risk_level": "C3",
        "grade": "ABC"[i % 3],
        "tier": "一般",
        "owner": "u-sales-01",
        "department": "retail",
        "consent": {"marketing": True, "sharing": False},
        "notes": "客户来电咨询理财产品" if i % 4 else f"客户来电，手机139{i % 10**8:08d}，请回电",
        "query_password": "******",
        "created_at": "2024-03-01T10:00:00+08:00",
    }


def page_chunks(target_bytes: int, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """`{"count": N, ..., "results": [customer, ...]}`, about target_bytes, in chunk_size pieces."""
    pending = bytearray(b'{"count":0,"page":1,"page_size":0,"results":[')
    produced = 0
    i = 0
    while produced + len(pending) < target_bytes:
        if i:
            pending += b","
        pending += orjson.dumps(customer(i))
        i += 1
        while len(pending) >= chunk_size:
            yield bytes(pending[:chunk_size])
            del pending[:chunk_size]
            produced += chunk_size
    pending += b"]}"
    while pending:
        yield bytes(pending[:chunk_size])
        del pending[:chunk_size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.out, "wb") as fh:
        for chunk in page_chunks(args.mib << 20):
            fh.write(chunk)


if __name__ == "__main__":
    main()
