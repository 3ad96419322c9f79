"""`response_types` and `format_params`: what a route answers in, read from the catalog.

Kept apart from `_load` so the negotiation keys stay one small, separate piece of
the catalog format (documented at the top of config/crm/demo.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.negotiation import ANY, DEFAULT_FORMAT_PARAMS, DEFAULT_RESPONSE_TYPES

_MEDIA = re.compile(r"[a-z0-9*][a-z0-9!#$&^_.+*-]*/[a-z0-9*][a-z0-9!#$&^_.+*-]*")


@dataclass(frozen=True, slots=True)
class Negotiation:
    response_types: tuple[str, ...]  # the catalog-wide default
    format_params: tuple[str, ...]
    per_route: tuple[tuple[str, ...] | None, ...]  # by index in `routes`, None: the default


def negotiation(raw: Any, problems: list[str]) -> Negotiation:
    """The negotiation keys of a catalog; every problem is appended with its key path."""
    if not isinstance(raw, Mapping):
        return Negotiation(DEFAULT_RESPONSE_TYPES, DEFAULT_FORMAT_PARAMS, ())
    default = _types(raw.get("response_types"), "response_types", problems)
    params = raw.get("format_params", list(DEFAULT_FORMAT_PARAMS))
    if not isinstance(params, list) or not all(isinstance(p, str) and p for p in params):
        problems.append("format_params: must be a list of query parameter names")
        params = list(DEFAULT_FORMAT_PARAMS)
    per_route: list[tuple[str, ...] | None] = []
    routes = raw.get("routes")
    for i, route in enumerate(routes if isinstance(routes, list) else []):
        own = route.get("response_types") if isinstance(route, Mapping) else None
        per_route.append(
            None if own is None else _types(own, f"routes[{i}].response_types", problems)
        )
    return Negotiation(default or DEFAULT_RESPONSE_TYPES, tuple(params), tuple(per_route))


def _types(raw: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        problems.append(f"{where}: must be a non-empty list of media types")
        return ()
    out = []
    for j, value in enumerate(raw):
        mime = value.strip().lower()
        if mime != ANY and not _MEDIA.fullmatch(mime):
            problems.append(f"{where}[{j}]: {value!r} is not a media type (type/subtype)")
            continue
        out.append(mime)
    return tuple(out)
