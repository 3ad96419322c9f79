"""Customer information in the request line itself (path segments, query values).

Searching the CRM by ID number or mobile (`/api/customers/search?q=110105...`)
discloses that number to everyone who sees the access log, and it is itself an
access worth auditing at that number's level. This module tells audit and policy
*that* such a value was present, where, and of what category and level; it never
returns the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from gateway.core import detectors
from gateway.core.taxonomy import Taxonomy

MAX_VALUE = 2048  # longer query values are truncated before scanning


@dataclass(frozen=True, slots=True)
class RequestHit:
    category: str
    level: str
    where: str  # "path" | "query:<name>"
    detector: str

    def to_audit(self) -> dict[str, str]:
        return {"category": self.category, "level": self.level, "where": self.where}


def _level(taxonomy: Taxonomy | None, category: str) -> str:
    if taxonomy is None:
        return ""
    try:
        return taxonomy.category(category).level
    except KeyError:
        return taxonomy.levels[-1].code


def classify_request(
    path: str, query: str, *, taxonomy: Taxonomy | None = None
) -> list[RequestHit]:
    """Categories found in the (normalised) path and the raw query string.

    Pass the taxonomy to get each hit's level (without it, `level` is "").
    """
    hits: list[RequestHit] = []
    seen: set[tuple[str, str]] = set()

    def add(category: str, where: str, detector: str) -> None:
        if (category, where) not in seen:
            seen.add((category, where))
            hits.append(RequestHit(category, _level(taxonomy, category), where, detector))

    for segment in path.split("/"):
        if not segment:
            continue
        text = unquote(segment)
        for hit in detectors.detect(text):
            add(hit.category, "path", hit.detector)
    for name, value in parse_qsl(query, keep_blank_values=False):
        where = f"query:{name[:64]}"
        value = value[:MAX_VALUE]
        by_key = detectors.category_for_key(name)
        if by_key is not None:
            add(by_key, where, "key")
            continue
        whole = detectors.classify_value(value, key_hint=name)
        if whole is not None:
            add(whole.category, where, whole.detector)
            continue
        for hit in detectors.detect(value):
            add(hit.category, where, hit.detector)
    return hits
