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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

STYLES = ("standard", "strict")

# Value shapes a category can have; each selects a parser in gateway.core.masking.
KINDS = frozenset(
    {
        "generic",
        "name",
        "id",
        "passport",
        "mobile",
        "landline",
        "email",
        "address",
        "postal_code",
        "birth_date",
        "plate",
        "ip",
        "uscc",
        "amount",
        "card",
        "account",
        "records",
        "credential",
    }
)

# MASK operators implemented by gateway.core.masking (a test keeps both in step).
MASK_OPERATORS = frozenset(
    {
        "thirds",
        "fixed",
        "name_surname",
        "name_last",
        "id_6_4",
        "id_1_1",
        "passport_3",
        "passport_type",
        "mobile_3_4",
        "mobile_3_2",
        "landline_area_4",
        "landline_4_2",
        "email_first",
        "email_first_tld",
        "address_district",
        "address_city",
        "postal_4",
        "birth_year",
        "age_band",
        "plate_2_1",
        "plate_region",
        "ip_network",
        "ip_first",
        "uscc_8_1",
        "amount_band",
        "card_6_4",
        "card_last4",
        "account_last4",
    }
)


@dataclass(frozen=True, slots=True)
class Level:
    code: str
    rank: int
    name_zh: str
    name_en: str
    aliases: tuple[str, ...] = ()
    never_clear: bool = False  # values at this level are replaced even under ALLOW


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    level: str
    spi: bool
    kind: str
    masks: Mapping[str, str] = field(hash=False)  # style -> MASK operator name
    number_as_string: bool
    label: str  # display name (zh)
    label_en: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordAttribute:
    name: str
    values: tuple[str, ...]
    label: str


class _Problems:
    """Collects every problem with its key path, so one run reports them all."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise ValueError("invalid taxonomy: " + "; ".join(self.items))


def _text(raw: Any, path: str, problems: _Problems, default: str = "") -> str:
    if raw is None:
        return default
    if not isinstance(raw, str) or not raw:
        problems.add(path, "must be a non-empty string")
        return default
    return raw


def _names(raw: Any, path: str, problems: _Problems) -> tuple[str, str]:
    if raw is None:
        return "", ""
    if not isinstance(raw, Mapping):
        problems.add(path, "must be a mapping with zh/en")
        return "", ""
    return _text(raw.get("zh"), f"{path}.zh", problems), _text(
        raw.get("en"), f"{path}.en", problems
    )


def _aliases(raw: Any, path: str, problems: _Problems) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(a, str) and a for a in raw):
        problems.add(path, "must be a list of non-empty strings")
        return ()
    return tuple(raw)


def _flag(raw: Any, path: str, problems: _Problems) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        problems.add(path, "must be true or false")
        return False
    return raw


def _parse_levels(raw: Any, problems: _Problems) -> list[Level]:
    if not isinstance(raw, list) or not raw:
        problems.add("levels", "must be a non-empty list")
        return []
    levels: list[Level] = []
    for i, item in enumerate(raw):
        path = f"levels[{i}]"
        if not isinstance(item, Mapping):
            problems.add(path, "must be a mapping")
            continue
        code = _text(item.get("code"), f"{path}.code", problems)
        rank = item.get("rank")
        if not isinstance(rank, int) or isinstance(rank, bool):
            problems.add(f"{path}.rank", "must be an integer")
            rank = -1
        zh, en = _names(item.get("name"), f"{path}.name", problems)
        levels.append(
            Level(
                code=code,
                rank=rank,
                name_zh=zh or code,
                name_en=en or code,
                aliases=_aliases(item.get("aliases"), f"{path}.aliases", problems),
                never_clear=_flag(item.get("never_clear"), f"{path}.never_clear", problems),
            )
        )
    ranks = [lv.rank for lv in levels]
    if ranks != sorted(set(ranks)):
        problems.add("levels", "ranks must be unique and listed in ascending order")
    return levels


def _parse_category(name: str, item: Any, codes: set[str], problems: _Problems) -> Category:
    path = f"categories.{name}"
    if not isinstance(item, Mapping):
        problems.add(path, "must be a mapping")
        item = {}
    for key in item:
        if key not in {"level", "spi", "kind", "masks", "number_as_string", "label", "aliases"}:
            problems.add(f"{path}.{key}", "unknown key")
    level = _text(item.get("level"), f"{path}.level", problems)
    if level and level not in codes:
        problems.add(f"{path}.level", f"unknown level {level!r}")
    kind = _text(item.get("kind"), f"{path}.kind", problems, default="generic")
    if kind not in KINDS:
        problems.add(f"{path}.kind", f"unknown kind {kind!r} (one of {', '.join(sorted(KINDS))})")
    masks_raw = item.get("masks")
    masks: dict[str, str] = {}
    if not isinstance(masks_raw, Mapping):
        problems.add(f"{path}.masks", "must map standard and strict to operators")
    else:
        for style in STYLES:
            op = masks_raw.get(style)
            if op not in MASK_OPERATORS:
                problems.add(f"{path}.masks.{style}", f"unknown or missing operator {op!r}")
            else:
                masks[style] = op
        for style in masks_raw:
            if style not in STYLES:
                problems.add(f"{path}.masks.{style}", "unknown style")
    zh, en = _names(item.get("label"), f"{path}.label", problems)
    return Category(
        name=name,
        level=level,
        spi=_flag(item.get("spi"), f"{path}.spi", problems),
        kind=kind,
        masks=MappingProxyType(masks),
        number_as_string=_flag(item.get("number_as_string"), f"{path}.number_as_string", problems),
        label=zh or name,
        label_en=en or name,
        aliases=_aliases(item.get("aliases"), f"{path}.aliases", problems),
    )


def _parse_records(raw: Any, problems: _Problems) -> dict[str, RecordAttribute]:
    out: dict[str, RecordAttribute] = {}
    if raw is None:
        return out
    if not isinstance(raw, Mapping):
        problems.add("record_attributes", "must be a mapping")
        return out
    for name, item in raw.items():
        path = f"record_attributes.{name}"
        values = item.get("values") if isinstance(item, Mapping) else None
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.add(f"{path}.values", "must be a list of strings")
            continue
        zh, _ = _names(item.get("label"), f"{path}.label", problems)
        out[str(name)] = RecordAttribute(str(name), tuple(values), zh or str(name))
    return out


def _relabel(
    items: dict[str, Any], raw: Any, section: str, problems: _Problems
) -> dict[str, dict[str, Any]]:
    """Read one `labels.<section>` mapping: code -> {zh, en, aliases}."""
    out: dict[str, dict[str, Any]] = {}
    if raw is None:
        return out
    if not isinstance(raw, Mapping):
        problems.add(f"labels.{section}", "must be a mapping")
        return out
    for code, entry in raw.items():
        path = f"labels.{section}.{code}"
        if code not in items:
            problems.add(path, f"unknown {section[:-1] if section != 'categories' else 'category'}")
            continue
        if not isinstance(entry, Mapping):
            problems.add(path, "must be a mapping")
            continue
        zh = _text(entry.get("zh"), f"{path}.zh", problems)
        en = _text(entry.get("en"), f"{path}.en", problems)
        out[str(code)] = {
            "zh": zh,
            "en": en,
            "aliases": _aliases(entry.get("aliases"), f"{path}.aliases", problems),
        }
    return out


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
        problems = _Problems()
        if not isinstance(d, Mapping):
            problems.add("(root)", "must be a mapping")
            problems.raise_if_any()
        levels = _parse_levels(d.get("levels"), problems)
        codes = {lv.code for lv in levels}
        cats_raw = d.get("categories")
        categories: dict[str, Category] = {}
        if not isinstance(cats_raw, Mapping) or not cats_raw:
            problems.add("categories", "must be a non-empty mapping")
        else:
            for name, item in cats_raw.items():
                categories[str(name)] = _parse_category(str(name), item, codes, problems)
        records = _parse_records(d.get("record_attributes"), problems)
        labels = d.get("labels") or {}
        if not isinstance(labels, Mapping):
            problems.add("labels", "must be a mapping")
            labels = {}
        lv_labels = _relabel(
            {lv.code: lv for lv in levels}, labels.get("levels"), "levels", problems
        )
        cat_labels = _relabel(categories, labels.get("categories"), "categories", problems)
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
            "levels": [_level_dict(lv) for lv in levels],
            "categories": {n: _category_dict(c) for n, c in sorted(categories.items())},
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


def _level_dict(lv: Level) -> dict[str, Any]:
    return {
        "code": lv.code,
        "rank": lv.rank,
        "zh": lv.name_zh,
        "en": lv.name_en,
        "aliases": list(lv.aliases),
        "never_clear": lv.never_clear,
    }


def _category_dict(c: Category) -> dict[str, Any]:
    return {
        "level": c.level,
        "spi": c.spi,
        "kind": c.kind,
        "masks": dict(c.masks),
        "number_as_string": c.number_as_string,
        "label": [c.label, c.label_en],
        "aliases": list(c.aliases),
    }
