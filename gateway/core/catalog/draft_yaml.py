"""A Draft as catalog YAML, every guess commented for the reviewer."""

from __future__ import annotations

import json
import re
from collections import defaultdict

from gateway.core.catalog.draft import Draft, Field, Guess, Route

_SLUG = re.compile(r"[^0-9A-Za-z]+")


def _q(value: str) -> str:
    """A YAML scalar (a JSON string is a valid double-quoted YAML scalar)."""
    return json.dumps(value, ensure_ascii=False)


def _rule(f: Field | tuple[str, Guess], key: str = "key") -> str:
    name, guess = (f.key, f.guess) if isinstance(f, Field) else f
    assert guess is not None  # callers pass guessed fields only
    meaning = "text: true" if guess.category == "text" else f"category: {guess.category}"
    return f"{{{key}: {_q(name)}, {meaning}}}"


def catalog_wide(draft: Draft) -> dict[str, tuple[Guess, int]]:
    """key -> the best-supported guess over every route's response fields, and how
    many routes carry the key."""
    votes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    best: dict[str, Guess] = {}
    routes: dict[str, set[str]] = defaultdict(set)
    for route in draft.routes:
        for f in [*route.fields, *route.writes]:
            routes[f.key].add(route.path)
            if f.guess is None:
                continue
            votes[f.key][f.guess.category] += f.guess.confidence
            prior = best.get(f.key)
            if prior is None or (f.guess.category, f.guess.confidence) > (
                prior.category,
                prior.confidence,
            ):
                best[f.key] = f.guess
    out: dict[str, tuple[Guess, int]] = {}
    for key, cats in votes.items():
        cat = max(cats.items(), key=lambda kv: (kv[1], kv[0]))[0]
        confs = [
            f.guess.confidence
            for r in draft.routes
            for f in [*r.fields, *r.writes]
            if f.key == key and f.guess and f.guess.category == cat
        ]
        why = next(
            f.guess.why
            for r in draft.routes
            for f in [*r.fields, *r.writes]
            if f.key == key and f.guess and f.guess.category == cat
        )
        share = cats[cat] / sum(cats.values())
        out[key] = (Guess(cat, round(max(confs) * share, 2), why), len(routes[key]))
    return dict(sorted(out.items(), key=lambda kv: (kv[1][0].category == "internal", kv[0])))


def _names(routes: list[Route]) -> list[str]:
    seen: set[str] = set()
    out = []
    for r in routes:
        base = _SLUG.sub("_", r.path.replace("/api/", "/")).strip("_") or "root"
        name, n = base, 2
        while name in seen:
            name, n = f"{base}_{n}", n + 1
        seen.add(name)
        out.append(name)
    return out


def render(draft: Draft) -> str:
    """The draft as a catalog `check-config` accepts; comments say what to review."""
    wide = catalog_wide(draft)
    lines = [
        f"# Field catalog for {draft.name}: a DRAFT from its OpenAPI schema",
        "# (crm-gateway catalog draft). Review every line before enforcing: each guess says",
        "# its confidence (0..1) and why. Unknown fields are still classified by the",
        "# gateway at run time (key name, value, free-text scan); observe traffic and run",
        "# `crm-gateway catalog coverage` to find what this draft misses.",
        "",
        f"name: {_q(_SLUG.sub('_', draft.name).strip('_').lower() or 'crm')}",
        "version: 1",
        "",
        "record:",
    ]
    for fact, key in (("id", "id"), ("grade", "grade"), ("tier", "tier")):
        if fact in draft.facts:
            path, conf, why = draft.facts[fact]
            lines.append(f"  {key}: {_q(path)}  # {conf} {why}")
        else:
            lines.append(f"  # {key}: not recognised in the schema (a custom field?): add its path")
    if "owner" in draft.facts:
        path, conf, why = draft.facts["owner"]
        lines.append(f"  assignees: [{_q(path)}]  # {conf} {why}")
    if "consent" in draft.facts:
        path, conf, why = draft.facts["consent"]
        lines += ["  consents:", f"    marketing: {_q(path)}  # {conf} {why}"]
    lines += ["", "fields:"]
    for key, (guess, n) in wide.items():
        lines.append(f"  - {_rule((key, guess))}  # {guess.confidence} {guess.why}; {n} route(s)")
    lines += [
        "",
        "# Free-form values no rule names: scanned like free text.",
        "",
        "routes:",
    ]
    for name, route in zip(_names(draft.routes), draft.routes, strict=True):
        lines += _route_lines(name, route, wide)
    for note in draft.observed:
        lines.append(f"# observed: {note}")
    return "\n".join(lines) + "\n"


def _route_lines(name: str, route: Route, wide: dict[str, tuple[Guess, int]]) -> list[str]:
    out = [
        f"  - name: {name}",
        f"    path: {_q(route.path)}",
        f"    methods: [{', '.join(route.methods)}]",
    ]
    customer = [f for f in route.fields if f.guess and f.guess.category not in ("internal", "text")]
    if route.records:
        out.append("    records:")
        out += [f"      - {_q(p)}  # {c} {why}" for p, c, why in route.records]
    elif customer:
        out.append(
            f"    # {len(customer)} customer field(s) outside any object: review the records"
        )
    elif not route.media and route.fields:
        out.append("    # no customer field recognised: review (`sensitive: false` if none)")
    if route.media:
        out.append(f"    # also answers {', '.join(route.media)}: declare its columns or types")
    extra = [
        f
        for f in route.writes
        if f.guess is not None
        and (f.key not in wide or wide[f.key][0].category != f.guess.category)
    ]
    if extra:
        out.append("    fields:  # request fields the catalog-wide rules classify otherwise")
        out += [
            f"      - {_rule(f)}  # {f.guess.confidence} {f.guess.why}" for f in extra if f.guess
        ]
    if route.required:
        out.append(f"    # write requires: {', '.join(route.required)} (entry: rules?)")
    return out
