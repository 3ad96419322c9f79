"""A small, real RecordEnforcer for codec tests (a double of a pure protocol, not a mock).

Masks digits in values of known keys, drops records (and CSV rows) whose grade
is "A" (records: objects at the declared prefixes, or carrying a grade off the
prefixes' ancestors, as the real enforcer recognises them), masks mainland
mobile numbers in free text, and treats records the way the streaming
rewriter promises: dropped from arrays, null under an object key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.core.rewrite import BlockResponse

SENSITIVE = frozenset({"mobile", "id_number", "bank_card", "email", "name", "姓名", "手机"})
_MOBILE = re.compile(r"1[3-9]\d{9}")


def mask(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"\d", "*", value) if any(ch.isdigit() for ch in value) else "*" * len(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return "***"
    return value


class MaskingEnforcer:
    def __init__(self, prefixes: list[str] | None = None, *, block_tier: str | None = None) -> None:
        self.prefixes = list(prefixes or [])
        self.block_tier = block_tier
        self.records_seen = 0

    def record_prefixes(self) -> list[str]:
        return list(self.prefixes)

    def rewrite_record(self, record: dict[str, Any], prefix: str = "") -> dict[str, Any] | None:
        self.records_seen += 1
        if self.block_tier is not None and record.get("tier") == self.block_tier:
            raise BlockResponse("tier blocked")
        if record.get("grade") == "A":
            return None
        out = self._walk(record)
        assert isinstance(out, dict)
        return out

    def _walk(self, node: Any, key: str | None = None) -> Any:
        if isinstance(node, dict):
            return {k: self._walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [self._walk(v, key) for v in node]
        if key in SENSITIVE:
            return mask(node)
        if isinstance(node, str):
            return self.rewrite_text(node)
        return node

    def rewrite_value(self, path: tuple[str | int, ...], value: Any) -> Any:
        keys = [p for p in path if isinstance(p, str)]
        if keys and keys[-1] in SENSITIVE:
            return mask(value)
        if isinstance(value, str):
            return self.rewrite_text(value)
        return value

    def rewrite_document(self, doc: Any) -> Any:
        return self._document(doc, (), "")

    def _ancestor(self, prefix: str) -> bool:
        return any(p.startswith(prefix + ".") or (not prefix and p) for p in self.prefixes)

    def record_keys(self) -> frozenset[str]:
        return frozenset()  # records only at the declared prefixes

    def rewrite_subtree(self, prefix: str, value: Any) -> Any:
        return self._document(value, tuple(prefix.split(".")) if prefix else (), prefix)

    def _document(self, node: Any, path: tuple[str | int, ...], prefix: str) -> Any:
        if isinstance(node, dict) and prefix in self.prefixes:
            return self.rewrite_record(node, prefix)
        if isinstance(node, dict) and "grade" in node and not self._ancestor(prefix):
            return self.rewrite_record(node, prefix)  # a record by its facts
        if isinstance(node, dict):
            return {
                k: self._document(v, (*path, k), f"{prefix}.{k}" if prefix else k)
                for k, v in node.items()
            }
        if isinstance(node, list):
            child = f"{prefix}.item" if prefix else "item"
            out = []
            for i, v in enumerate(node):
                new = self._document(v, (*path, i), child)
                if new is None and isinstance(v, dict):
                    continue  # a dropped record
                out.append(new)
            return out
        return self.rewrite_value(path, node)

    def rewrite_header(self, header: list[str]) -> list[str]:
        return [self.rewrite_text(cell) for cell in header]

    def rewrite_row(self, header: list[str], row: list[str]) -> list[str] | None:
        cells = dict(zip(header, row, strict=False))
        if cells.get("grade") == "A":
            return None
        return [
            mask(cell) if i < len(header) and header[i] in SENSITIVE else self.rewrite_text(cell)
            for i, cell in enumerate(row)
        ]

    def rewrite_fields(self, fields: Mapping[str, str]) -> dict[str, str]:
        return {
            k: mask(v) if k in SENSITIVE else self.rewrite_text(v)
            for k, v in fields.items()
            if k != "query_password"
        }

    def rewrite_text(self, text: str) -> str:
        return _MOBILE.sub(lambda m: m.group()[:3] + "********", text)


class TrivialEnforcer(MaskingEnforcer):
    """Passes records through unchanged: isolates codec cost in benchmarks."""

    def rewrite_record(self, record: dict[str, Any], prefix: str = "") -> dict[str, Any] | None:
        return record

    def rewrite_value(self, path: tuple[str | int, ...], value: Any) -> Any:
        return value
