"""`crm-gateway explain --user ID --request 'GET /path?query'`: why a request is refused.

Runs the request-side checks offline, in the handler's order, with the same
functions the handler uses (path canonicalisation, route rules, catalog, the
configured policy engine, the filter check) and prints one line per check and
the verdict: allowed, or the refusal's status, stable code, reason and the code's
doc line (docs/errors.md). Nothing is sent to the CRM; no rate limit is counted.

Adding a check is one function and one `register` call: a check reads (and may
fill in) the `RequestContext`, returns a short note for its line (or None), and
raises the `GatewayError` the handler would raise::

    from gateway.policy.request_explain import RequestContext, register

    @register("media type", after="catalog route")
    async def media_type(ctx: RequestContext) -> str | None:
        if ctx.method in WRITES and not inspectable(ctx.header("content-type")):
            raise UnsupportedMediaType("...")
        return ctx.header("content-type") or "-"

Checks that only apply to sensitive routes test `ctx.sensitive`; checks after
"decision" find `ctx.decision` set (None on public routes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.core.catalog import Catalog, RouteMatch
from gateway.core.error_docs import doc_line
from gateway.core.model import Decision, Subject
from gateway.core.paths import normalize_path
from gateway.core.query_guard import check_request
from gateway.core.taxonomy import Taxonomy
from gateway.errors import ClientError, GatewayError, NotFound
from gateway.policy.engine import PolicyEngine
from gateway.policy.explain import operation_for
from gateway.policy.inputs import PolicyRequest
from gateway.policy.obligations import enforce_obligations
from gateway.routes import RouteTable
from gateway.settings import RouteSettings, Settings


@dataclass
class RequestContext:
    """What the checks know about the request; filled in as they run."""

    settings: Settings
    subject: Subject
    method: str
    target: str  # path and query as the client would send them
    headers: Mapping[str, str]  # lower-case names
    taxonomy: Taxonomy
    catalog: Catalog
    engine: PolicyEngine | None = None
    network_zone: str = "internal"
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    path: str = ""
    query: str = ""
    rule: RouteSettings | None = None
    crm_route: RouteMatch | None = None
    operation: str = "view"
    decision: Decision | None = None
    report_only: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def sensitive(self) -> bool:
        return bool(self.rule is not None and self.rule.sensitive and self.decision is not None)


RequestCheck = Callable[[RequestContext], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    run: RequestCheck


REQUEST_CHECKS: list[Check] = []


def register(
    name: str, *, before: str | None = None, after: str | None = None
) -> Callable[[RequestCheck], RequestCheck]:
    """Add a check (at the end, or before/after a named one); returns the function."""

    def add(fn: RequestCheck) -> RequestCheck:
        names = [c.name for c in REQUEST_CHECKS]
        at = len(REQUEST_CHECKS)
        if before is not None and before in names:
            at = names.index(before)
        elif after is not None and after in names:
            at = names.index(after) + 1
        REQUEST_CHECKS.insert(at, Check(name, fn))
        return fn

    return add


@register("path")
async def check_path(ctx: RequestContext) -> str | None:
    raw_path, _, ctx.query = ctx.target.partition("?")
    ctx.path = normalize_path(raw_path, case_insensitive=ctx.settings.guard.case_insensitive_paths)
    prefix = ctx.settings.admin.prefix
    if ctx.path == prefix or ctx.path.startswith(prefix + "/"):
        raise NotFound("no such gateway endpoint")
    return ctx.path if ctx.path == raw_path else f"{raw_path} -> {ctx.path}"


@register("route rule")
async def check_route_rule(ctx: RequestContext) -> str | None:
    ctx.rule = RouteTable(ctx.settings.routes).match(ctx.method, ctx.path)
    flags = [
        name
        for name, on in (
            ("public", ctx.rule.public),
            ("sensitive", ctx.rule.sensitive),
            ("report-only", ctx.rule.report_only),
        )
        if on
    ]
    return f"{ctx.rule.path} ({', '.join(flags) or 'not sensitive'})"


@register("catalog route")
async def check_catalog_route(ctx: RequestContext) -> str | None:
    ctx.crm_route = ctx.catalog.match(ctx.method, ctx.path, ctx.query)
    template = ctx.crm_route.template if ctx.crm_route else ctx.path
    export = ctx.crm_route is not None and ctx.crm_route.route.export
    ctx.operation = "export" if export else operation_for(ctx.method, "")
    if ctx.crm_route is None:
        return f"no catalog route (records classified by key and value) op={ctx.operation}"
    return f"{ctx.crm_route.route.name} ({template}) op={ctx.operation}"


@register("decision")
async def check_decision(ctx: RequestContext) -> str | None:
    if ctx.rule is not None and ctx.rule.public:
        return "public route: no decision"
    if ctx.engine is None:
        raise ClientError("no policy engine to ask")
    template = ctx.crm_route.template if ctx.crm_route else ctx.path
    policy = ctx.settings.policy
    outcome = await ctx.engine.decide(
        ctx.subject,
        PolicyRequest(
            method=ctx.method,
            operation=ctx.operation,
            route_template=template,
            purpose=ctx.header(policy.purpose_header),
            justification=bool(ctx.header(policy.justification_header)),
            network_zone=ctx.network_zone,
            network_allowed=True,
            now=ctx.now,
            report_only=bool(ctx.rule and ctx.rule.report_only),
        ),
    )
    ctx.decision = outcome.decision
    ctx.report_only = outcome.decision.report_only or bool(ctx.rule and ctx.rule.report_only)
    d = ctx.decision
    return f"{'ALLOW' if d.allow else 'DENY'} ({d.reason}) revision {d.revision or '-'}"


@register("obligations")
async def check_obligations(ctx: RequestContext) -> str | None:
    """The handler's own check (policy.obligations), so the two cannot disagree."""
    d = ctx.decision
    if d is None:
        return None
    enforce_obligations(
        d,
        purpose=ctx.header(ctx.settings.policy.purpose_header),
        justified=bool(ctx.header(ctx.settings.policy.justification_header)),
        report_only=ctx.report_only,
        step_up_max_age=ctx.subject.step_up_max_age,
    )
    ob = d.obligations
    lookup, rv = ob.lookup, ob.reveal
    cats = ",".join(sorted(lookup.categories)) or "-"
    shown = ",".join(sorted(rv.categories)) or "-"
    return (
        f"audit={ob.audit_level} lookup={cats} ({lookup.limit} per {lookup.period:g}s) "
        f"reveal={shown} ({rv.limit} per {rv.period:g}s)"
    )


@register("filters")
async def check_filters(ctx: RequestContext) -> str | None:
    """The filter check of policy.filters.FilterGuard, without counting the rate limit."""
    if ctx.decision is None or ctx.rule is None or not ctx.rule.sensitive:
        return "not checked (public or not sensitive)"
    route = ctx.crm_route.route if ctx.crm_route else None
    verdict = check_request(ctx.path, ctx.query, ctx.decision, ctx.taxonomy, route=route)
    if verdict.refused and not ctx.report_only:
        raise verdict.error()
    notes = [t.describe() for t in verdict.terms]
    if verdict.lookups:
        lookup = ctx.decision.obligations.lookup
        notes.append(f"lookup: counts against {lookup.limit} per {lookup.period:g}s (429 beyond)")
    if verdict.refused:
        refused = "; ".join(t.describe() for t in verdict.refused)
        notes.append(f"REPORT-ONLY: would refuse {refused}")
    return "; ".join(notes) or "no filter, sort or search"


@dataclass(frozen=True, slots=True)
class Verdict:
    lines: tuple[tuple[str, str, str], ...]  # (state, check, note)
    error: GatewayError | None

    def render(self, target: str, subject: Subject) -> str:
        out = [
            f"request    {target}",
            f"subject    {subject.id} roles={','.join(subject.roles) or '-'} "
            f"clearance={subject.clearance} mfa={subject.mfa}"
            + (" partner" if subject.partner else ""),
            "",
        ]
        width = max([len(name) for _, name, _ in self.lines] + [8])
        for state, name, note in self.lines:
            out.append(f"  {state:<7} {name:<{width}}  {note}")
        out.append("")
        if self.error is None:
            out.append("verdict    ALLOWED: forwarded to the CRM (response masked as decided)")
        else:
            e = self.error
            out.append(f"verdict    REFUSED {e.status} {e.code}: {e.message}")
            out.append(f"           {doc_line(e.code)}")
        return "\n".join(out)


async def run_checks(ctx: RequestContext) -> Verdict:
    lines: list[tuple[str, str, str]] = []
    for check in REQUEST_CHECKS:
        try:
            note = await check.run(ctx)
        except GatewayError as exc:
            lines.append(("REFUSED", check.name, f"{exc.status} {exc.code}: {exc.message}"))
            return Verdict(tuple(lines), exc)
        lines.append(("ok", check.name, note or "-"))
    return Verdict(tuple(lines), None)


def parse_request(
    text: str, header_lines: list[str] | None = None
) -> tuple[str, str, dict[str, str]]:
    """'GET /path?q' (method optional, default GET) and 'Name: value' headers."""
    parts = text.strip().split(None, 1)
    if len(parts) == 2 and not parts[0].startswith("/"):
        method, target = parts[0].upper(), parts[1].strip()
    else:
        method, target = "GET", text.strip()
    if not target.startswith("/"):
        raise ClientError(f"--request: expected 'METHOD /path?query', got {text!r}")
    headers: dict[str, str] = {}
    for line in header_lines or ():
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ClientError(f"--header: expected 'Name: value', got {line!r}")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def explain_request(
    settings: Settings,
    subject: Subject,
    request_text: str,
    header_lines: list[str] | None = None,
    *,
    network_zone: str = "internal",
    now: datetime | None = None,
) -> str:
    """The request-side verdict for `subject`, with the configured policy engine."""
    from gateway.state.grants import open_grant_store

    method, target, headers = parse_request(request_text, header_lines)
    taxonomy = Taxonomy.load(settings.path(settings.classification.taxonomy))
    catalog = Catalog.load(settings.path(settings.classification.catalog))
    grants = await open_grant_store(settings)
    try:
        engine = await PolicyEngine.open(
            settings, taxonomy_policy=taxonomy.to_policy(), grants=grants, taxonomy=taxonomy
        )
        try:
            ctx = RequestContext(
                settings=settings, subject=subject, method=method, target=target,
                headers=headers, taxonomy=taxonomy, catalog=catalog, engine=engine,
                network_zone=network_zone, now=now or datetime.now(UTC),
            )  # fmt: skip
            verdict = await run_checks(ctx)
        finally:
            await engine.close()
    finally:
        await grants.close()
    return verdict.render(f"{method} {target}", subject)


def explain_event(event: Mapping[str, Any]) -> str:
    """An audit event's outcome and the doc line of every error code its reason names."""
    from gateway.core.error_docs import ERROR_DOCS

    crm = event.get("unmapped", {}).get("crm", {})
    decision = crm.get("decision", {})
    reason = str(decision.get("reason") or "")
    codes = [c for c in (p.strip() for p in reason.replace(";", " ").split()) if c in ERROR_DOCS]
    who = event.get("actor", {}).get("user", {}).get("uid")
    lines = [
        f"request    {event.get('http_request', {}).get('uid')}  "
        f"{event.get('http_request', {}).get('http_method')} "
        f"{event.get('http_request', {}).get('url', {}).get('path')}",
        f"subject    {who}  at {event.get('time_dt')}",
        f"status     {crm.get('status')}  outcome={decision.get('outcome')}",
        f"reason     {reason or '-'}",
    ]
    lines += [f"           {doc_line(code)}" for code in dict.fromkeys(codes)]
    return "\n".join(lines)
