"""The taxonomy: sensitivity levels, categories of customer information, and their names.

Everything downstream speaks internal codes (`L0`..`L5`, `mobile`, `bank_card`):
the policy input, the catalog, detectors, masking and the audit trail. Banks name
their levels differently (一级/二级/三级, 普通/重要/核心), so display names and
aliases live in the file (`labels:`) and `resolve()` maps any of them back to a
code; renaming never needs a code change and never changes a decision.

The object is immutable and carries a `fingerprint` (SHA-256 of its canonical
form) so a decision cache can key on "which taxonomy was this decided under".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.core.taxonomy._parse import (
    Problems,
    category_dict,
    level_dict,
    parse_category,
    parse_levels,
    parse_records,
    relabel,
)
from gateway.core.taxonomy._types import KINDS, MASK_OPERATORS, Category, Level, RecordAttribute

__all__ = [
    "KINDS",
    "MASK_OPERATORS",
    "Category",
    "Level",
    "RecordAttribute",
    "Taxonomy",
]


class Taxonomy:
    """An immutable, validated taxonomy. Build with `load` or `from_dict`."""

    __slots__ = ("_aliases", "_categories", "_levels", "_ranks", "fingerprint", "records")

    def __init__(
        self,
        levels: list[Level],
        categories: dict[str, Category],
        records: dict[str, RecordAttribute],
        aliases: dict[str, str],
        fingerprint: str,
    ) -> None:
        self._levels = tuple(levels)
        self._ranks = {lv.code: lv.rank for lv in levels}
        self._categories = MappingProxyType(categories)
        self._aliases = MappingProxyType(aliases)
        self.records: Mapping[str, RecordAttribute] = MappingProxyType(records)
        self.fingerprint = fingerprint

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        import yaml  # pure parser; imported here so importing core stays cheap

        with Path(path).open(encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, d: Any) -> Taxonomy:
        problems = Problems()
        if not isinstance(d, Mapping):
            problems.add("(root)", "must be a mapping")
            problems.raise_if_any()
        levels = parse_levels(d.get("levels"), problems)
        codes = {lv.code for lv in levels}
        cats_raw = d.get("categories")
        categories: dict[str, Category] = {}
        if not isinstance(cats_raw, Mapping) or not cats_raw:
            problems.add("categories", "must be a non-empty mapping")
        else:
            for name, item in cats_raw.items():
                categories[str(name)] = parse_category(str(name), item, codes, problems)
        records = parse_records(d.get("record_attributes"), problems)
        labels = d.get("labels") or {}
        if not isinstance(labels, Mapping):
            problems.add("labels", "must be a mapping")
            labels = {}
        lv_labels = relabel(
            {lv.code: lv for lv in levels}, labels.get("levels"), "levels", problems
        )
        cat_labels = relabel(categories, labels.get("categories"), "categories", problems)
        levels = [
            Level(
                lv.code,
                lv.rank,
                lv_labels.get(lv.code, {}).get("zh") or lv.name_zh,
                lv_labels.get(lv.code, {}).get("en") or lv.name_en,
                lv.aliases + tuple(lv_labels.get(lv.code, {}).get("aliases", ())),
                lv.never_clear,
            )
            for lv in levels
        ]
        for name, extra in cat_labels.items():
            c = categories[name]
            categories[name] = Category(
                c.name, c.level, c.spi, c.kind, c.masks, c.number_as_string,
                extra["zh"] or c.label, extra["en"] or c.label_en, c.aliases + extra["aliases"],
                c.free_form,
            )  # fmt: skip
        aliases: dict[str, str] = {}
        for code, names in [
            (lv.code, (lv.code, lv.name_zh, lv.name_en, *lv.aliases)) for lv in levels
        ] + [(c.name, (c.name, *c.aliases)) for c in categories.values()]:
            for alias in names:
                prior = aliases.setdefault(alias, code)
                if prior != code:
                    problems.add("labels", f"name {alias!r} refers to both {prior!r} and {code!r}")
        problems.raise_if_any()
        canonical = {
            "levels": [level_dict(lv) for lv in levels],
            "categories": {n: category_dict(c) for n, c in sorted(categories.items())},
            "records": {n: [r.label, list(r.values)] for n, r in sorted(records.items())},
        }
        digest = hashlib.sha256(
            json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode("utf-8")
        ).hexdigest()
        return cls(levels, categories, records, aliases, digest)

    @property
    def levels(self) -> tuple[Level, ...]:
        """Levels in ascending order of sensitivity."""
        return self._levels

    @property
    def categories(self) -> Mapping[str, Category]:
        return self._categories

    def level(self, code_or_alias: str) -> Level:
        code = self.resolve(code_or_alias)
        for lv in self._levels:
            if lv.code == code:
                return lv
        raise KeyError(f"unknown level {code_or_alias!r}")

    def level_rank(self, code: str) -> int:
        try:
            return self._ranks[code]
        except KeyError:
            return self._ranks[self.resolve(code)]

    def highest(self, categories: Iterable[str]) -> str:
        """The category of the highest level among `categories`; an unknown one counts
        above every level (callers treat it as the top and fail closed)."""

        def rank(name: str) -> int:
            try:
                return self._ranks[self.category(name).level]
            except KeyError:
                return len(self._ranks)

        return max(categories, key=rank)

    def category(self, name: str) -> Category:
        """The category by internal name or alias; KeyError if unknown (callers fail closed)."""
        cat = self._categories.get(name)
        if cat is None:
            cat = self._categories.get(self._aliases.get(name, ""))
        if cat is None:
            raise KeyError(f"unknown category {name!r}")
        return cat

    def resolve(self, name_or_alias: str) -> str:
        """The internal code of a level or category given any of its names."""
        try:
            return self._aliases[name_or_alias]
        except KeyError:
            raise KeyError(f"unknown level or category {name_or_alias!r}") from None

    def to_policy(self) -> dict[str, Any]:
        """The taxonomy part of the OPA input: levels in order, categories' level and SPI flag."""
        return {
            "levels": [lv.code for lv in self._levels],
            "categories": {
                n: {"level": c.level, "spi": c.spi} for n, c in sorted(self._categories.items())
            },
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Taxonomy) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return (
            f"Taxonomy(levels={len(self._levels)}, categories={len(self._categories)},"
            f" fingerprint={self.fingerprint[:12]})"
        )
