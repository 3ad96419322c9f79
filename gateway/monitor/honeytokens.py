"""Honeytoken customers: decoy record ids that no legitimate task ever touches.

The decoys are planted in the CRM (a customer nobody serves, with plausible data)
and listed in `monitor.honeytokens`. A real workflow reaches customers through a
case, a ticket or a search for a name it already has; a decoy shows up only when
someone lists or exports customers wholesale, or probes ids. So one access is
enough to alert, at once and on every access, not after a count in a window.

The check is a set intersection on the request path: no I/O, no allocation
when nothing matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


class Honeytokens:
    """The configured decoy ids; `hits` returns the decoys among some record ids."""

    __slots__ = ("_ids",)

    def __init__(self, ids: Iterable[str]) -> None:
        self._ids = frozenset(i.strip() for i in ids if i.strip())

    def __bool__(self) -> bool:
        return bool(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._ids

    def hits(self, record_ids: Iterable[str]) -> list[str]:
        """Decoys among `record_ids`, each once, in first-seen order."""
        if not self._ids:
            return []
        found: list[str] = []
        for rid in record_ids:
            if rid in self._ids and rid not in found:
                found.append(rid)
        return found

    def hits_by_level(self, record_ids_by_level: Mapping[str, Sequence[str]]) -> list[str]:
        """Decoys among the ids of every level (a decoy counts whatever level it showed)."""
        if not self._ids:
            return []
        found: list[str] = []
        for ids in record_ids_by_level.values():
            for rid in self.hits(ids):
                if rid not in found:
                    found.append(rid)
        return found
