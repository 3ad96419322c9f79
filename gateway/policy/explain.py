"""`crm-gateway explain --user ID|--subject FILE --route R`: the decision table, readable.

Runs the configured engine exactly as the gateway would (same normalised input,
same grants store, same OPA and policy), then prints, per category, the level,
the action and the policy's reason, followed by the level fallbacks, record
rules and obligations. It answers the security team's everyday question: "what
would this person see on this route, and why?"

The policy stage may not import the identity stage, so resolving `--user ID`
needs a `lookup` function from the caller (the CLI passes the directory's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.core.catalog import Catalog
from gateway.core.model import Action, Decision, Subject
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ClientError, ConfigError
from gateway.policy.engine import DecisionOutcome, PolicyEngine
from gateway.policy.inputs import PolicyRequest
from gateway.settings import Settings
from gateway.state.grants import open_grant_store

SubjectLookup = Callable[[str], Subject | None]


def subject_from_json(raw: Mapping[str, Any]) -> Subject:
    """A Subject from a JSON object with Subject's field names (for --subject FILE)."""
    if not isinstance(raw.get("id"), str) or not raw["id"]:
        raise ConfigError("subject file: 'id' must be a non-empty string")
    expires = raw.get("partner_expires")
    return Subject(
        id=raw["id"],
        display_name=str(raw.get("display_name", "")),
        roles=tuple(str(r) for r in raw.get("roles", ())),
        department=str(raw.get("department", "")),
        clearance=str(raw.get("clearance", "L0")),
        mfa=bool(raw.get("mfa", False)),
        auth_method=str(raw.get("auth_method", "none")),
        partner=bool(raw.get("partner", False)),
        partner_expires=datetime.fromisoformat(expires) if isinstance(expires, str) else None,
        allowed_networks=tuple(str(n) for n in raw.get("allowed_networks", ())),
        disabled=bool(raw.get("disabled", False)),
        attributes=dict(raw.get("attributes", {})),
    )


def operation_for(method: str, route: str) -> str:
    m = method.upper()
    if m in ("GET", "HEAD", "OPTIONS"):
        return "export" if "export" in route.lower() else "view"
    return "delete" if m == "DELETE" else "modify"


def _act(a: Action) -> str:
    return f"{a.verb.value}:{a.style}" if a.style else a.verb.value


def render(
    outcome: DecisionOutcome, subject: Subject, request: PolicyRequest, taxonomy: Taxonomy | None
) -> str:
    d: Decision = outcome.decision
    lines = [
        f"decision   {'ALLOW' if d.allow else 'DENY'}  ({d.reason})",
        f"revision   {d.revision}" + ("   REPORT-ONLY" if outcome.report_only else ""),
        f"subject    {subject.id} roles={','.join(subject.roles) or '-'} "
        f"dept={subject.department or '-'} clearance={subject.clearance} mfa={subject.mfa}"
        + (" partner" if subject.partner else ""),
        f"request    {request.method} {request.route_template} op={request.operation} "
        f"purpose={request.purpose or '-'} zone={request.network_zone} "
        f"at={request.now.isoformat(timespec='minutes')}",
        f"input      {outcome.input_digest}  ({outcome.elapsed_ms:.1f} ms)",
        "",
    ]
    cats: list[tuple[str, str, bool]] = []
    if taxonomy is not None:
        cats = [(n, c.level, c.spi) for n, c in sorted(taxonomy.categories.items())]
    named = {n for n, _, _ in cats}
    cats += [(n, "?", False) for n in sorted(d.fields) if n not in named]
    width = max([len(n) for n, _, _ in cats] + [8])
    lines.append(f"{'category':<{width}}  level  spi  {'action':<16} write  reason")
    for name, level, spi in cats:
        act = d.field_action(name, level)
        write = "yes" if d.may_write(name) else "no"
        reason = d.explain.get(name, "" if name in d.fields else "(level fallback)")
        lines.append(
            f"{name:<{width}}  {level:<5}  {'yes' if spi else 'no ':<3}  {_act(act):<16} "
            f"{write:<5}  {reason}"
        )
    lines += ["", "levels     " + ", ".join(f"{lv}={_act(a)}" for lv, a in d.levels.items())]
    for rule in d.records:
        fields = ", ".join(f"{c}={_act(a)}" for c, a in rule.fields.items())
        lines.append(
            f"records    when {dict(rule.when)} -> {rule.record.value}"
            + (f"; {fields}" if fields else "")
            + (f"  ({rule.reason})" if rule.reason else "")
        )
    ob = d.obligations
    lines.append(
        f"obligations audit={ob.audit_level} step_up={ob.step_up} purpose_required="
        f"{ob.purpose_required} justification_required={ob.justification_required} "
        f"max_clear_records={dict(ob.max_clear_records) or '-'} bulk={ob.bulk_action} "
        f"cache_ttl={ob.cache_ttl:g}s"
    )
    if ob.purposes is not None:
        line = f"purposes   may declare: {', '.join(sorted(ob.purposes)) or '(none)'}"
        if request.purpose and request.purpose not in ob.purposes:
            line += f"  (declared {request.purpose!r} is refused: purpose_not_declarable)"
        lines.append(line)
    rv = ob.reveal
    lines.append(
        f"reveal     {', '.join(sorted(rv.categories)) or '-'}"
        + (f" (with a reason, at most {rv.limit} per {rv.period:g}s)" if rv.categories else "")
    )
    return "\n".join(lines)


async def resolve_subject(
    user: str | None, subject_file: str | None, lookup: SubjectLookup | None
) -> Subject:
    """The subject of `--subject FILE` or `--user ID` (through the directory lookup)."""
    if subject_file:
        try:
            raw = await asyncio.to_thread(Path(subject_file).read_bytes)
            return subject_from_json(orjson.loads(raw))
        except (OSError, orjson.JSONDecodeError, ValueError) as exc:
            raise ConfigError(f"cannot read subject file {subject_file}: {exc}") from exc
    if user:
        if lookup is None:
            raise ConfigError("explain --user needs a directory lookup (use --subject FILE)")
        found = lookup(user)
        if found is None:
            raise ConfigError(f"no subject {user!r} in the directory")
        return found
    raise ConfigError("explain needs --user ID or --subject FILE")


async def explain_decision(
    settings: Settings,
    user: str | None,
    subject_file: str | None,
    route: str,
    method: str = "GET",
    *,
    lookup: SubjectLookup | None = None,
    purpose: str | None = None,
    network_zone: str = "internal",
    now: datetime | None = None,
) -> str:
    """The decision table for a subject (directory id or JSON file) on a route."""
    subject = await resolve_subject(user, subject_file, lookup)
    taxonomy = Taxonomy.load(settings.path(settings.classification.taxonomy))
    request = PolicyRequest(
        method=method.upper(),
        operation=operation_for(method, route),
        route_template=route,
        purpose=purpose,
        justification=False,
        network_zone=network_zone,
        network_allowed=True,
        now=now or datetime.now(UTC),
    )
    grants = await open_grant_store(settings)
    try:
        engine = await PolicyEngine.open(
            settings, taxonomy_policy=taxonomy.to_policy(), grants=grants, taxonomy=taxonomy
        )
        try:
            outcome = await engine.decide(subject, request)
        finally:
            await engine.close()
    finally:
        await grants.close()
    text = render(outcome, subject, request, taxonomy)
    catalog = Catalog.load(settings.path(settings.classification.catalog))
    return text + "\n" + negotiation_line(catalog, request.method, route)


def negotiation_line(catalog: Catalog, method: str, route: str) -> str:
    """What the route may answer in (sensitive routes): the reason behind 406/502."""
    path, _, query = route.partition("?")  # a query-dispatched route's label
    try:
        match = catalog.match(method, path, query)
    except ClientError:
        match = None
    types = match.route.response_types if match else catalog.response_types
    where = f"catalog route {match.route.name}" if match else "no catalog route: catalog default"
    return (
        f"response   types={','.join(types)} ({where}); format params dropped: "
        f"{','.join(catalog.format_params) or '-'}; other types -> 502 "
        "undeclared_response_type, an Accept admitting none -> 406 not_acceptable"
    )
