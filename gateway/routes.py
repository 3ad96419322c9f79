"""Route rules from `routes:` in gateway.yaml, matched on the normalised path.

A request matches the first rule whose glob and methods fit. With no match the
default rule applies: sensitive (responses are classified and masked), not
public (a caller must authenticate), no WebSocket. Being strict by default is
the point: a route the security team forgot is masked, not leaked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import translate

from gateway.settings import RouteSettings

DEFAULT_RULE = RouteSettings(path="*")


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: RouteSettings
    pattern: re.Pattern[str]
    methods: frozenset[str]


class RouteTable:
    def __init__(self, rules: Sequence[RouteSettings]) -> None:
        self._rules = tuple(
            _Compiled(r, re.compile(translate(r.path)), frozenset(m.upper() for m in r.methods))
            for r in rules
        )

    def match(self, method: str, path: str) -> RouteSettings:
        for c in self._rules:
            if (not c.methods or method in c.methods) and c.pattern.match(path):
                return c.rule
        return DEFAULT_RULE
