"""Validation of a taxonomy document, collecting every problem with its key path."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.core.taxonomy._types import (
    KINDS,
    MASK_OPERATORS,
    STYLES,
    Category,
    Level,
    RecordAttribute,
)


class Problems:
    """Collects every problem with its key path, so one run reports them all."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise ValueError("invalid taxonomy: " + "; ".join(self.items))


def _text(raw: Any, path: str, problems: Problems, default: str = "") -> str:
    if raw is None:
        return default
    if not isinstance(raw, str) or not raw:
        problems.add(path, "must be a non-empty string")
        return default
    return raw


def _names(raw: Any, path: str, problems: Problems) -> tuple[str, str]:
    if raw is None:
        return "", ""
    if not isinstance(raw, Mapping):
        problems.add(path, "must be a mapping with zh/en")
        return "", ""
    return _text(raw.get("zh"), f"{path}.zh", problems), _text(
        raw.get("en"), f"{path}.en", problems
    )


def _aliases(raw: Any, path: str, problems: Problems) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(a, str) and a for a in raw):
        problems.add(path, "must be a list of non-empty strings")
        return ()
    return tuple(raw)


def _flag(raw: Any, path: str, problems: Problems) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        problems.add(path, "must be true or false")
        return False
    return raw


def parse_levels(raw: Any, problems: Problems) -> list[Level]:
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


def parse_category(name: str, item: Any, codes: set[str], problems: Problems) -> Category:
    path = f"categories.{name}"
    if not isinstance(item, Mapping):
        problems.add(path, "must be a mapping")
        item = {}
    for key in item:
        if key not in {
            "level", "spi", "kind", "masks", "number_as_string", "free_form", "label", "aliases",
        }:  # fmt: skip
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
        free_form=_flag(item.get("free_form"), f"{path}.free_form", problems),
    )


def parse_records(raw: Any, problems: Problems) -> dict[str, RecordAttribute]:
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


def relabel(
    items: dict[str, Any], raw: Any, section: str, problems: Problems
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


def level_dict(lv: Level) -> dict[str, Any]:
    return {
        "code": lv.code,
        "rank": lv.rank,
        "zh": lv.name_zh,
        "en": lv.name_en,
        "aliases": list(lv.aliases),
        "never_clear": lv.never_clear,
    }


def category_dict(c: Category) -> dict[str, Any]:
    return {
        "level": c.level,
        "spi": c.spi,
        "kind": c.kind,
        "masks": dict(c.masks),
        "number_as_string": c.number_as_string,
        "free_form": c.free_form,
        "label": [c.label, c.label_en],
        "aliases": list(c.aliases),
    }
