"""Reveal with reason (查看明文): one masked value, on request, for a stated reason.

Two halves, both here, so the rules that issue a handle and the rules that honour
it cannot drift apart:

- issuing (`targets_for`, `header`): on a request that opts in, the enforcer
  offers the masked fields it writes (`gateway.core.reveal`); the policy's
  `obligations.reveal` says which categories count, the catalog's `reveal_route`
  which routes (and how a record is read again), the taxonomy's top level is
  never offered. The handles travel in one response header, bounded in count and
  bytes; the body is never touched.
- honouring (`check_reason`, `open`, `read_route`, `check_decision`, `count`,
  `extract`): the endpoint (`gateway/admin/reveal.py`) runs these in order
  between authenticating the caller, deciding again with the policy (operation
  `reveal` on the read route), fetching the record again from the CRM and
  auditing the result.
"""

from __future__ import annotations

import dataclasses
import json
import time
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.access.errors import (
    RevealHandleInvalid,
    RevealNotAllowed,
    RevealReasonRequired,
)
from gateway.access.handles import Handle, HandleCodec, credential_fingerprint
from gateway.audit.governance import Actor, Change, build_governance_alert
from gateway.core.catalog import Catalog, FactsReader, RouteMatch
from gateway.core.enforce import build_enforcer
from gateway.core.masking import Masker
from gateway.core.model import ALLOW, Decision, Subject
from gateway.core.reveal import RevealTargets
from gateway.core.rewrite import BlockResponse
from gateway.core.taxonomy import Taxonomy
from gateway.core.visibility import named_record, record_verdict
from gateway.errors import BlockedByPolicy, RateLimited, RecordNotVisible
from gateway.settings import Settings
from gateway.state.keys import reveal_limit_alerted
from gateway.state.once import mark_once
from gateway.state.ratelimit import RateLimiter

REVEAL_SCOPE = "reveal"


class RevealService:
    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog,
        taxonomy: Taxonomy,
        codec: HandleCodec,
        limiter: RateLimiter,
    ) -> None:
        self.settings = settings
        self.cfg = settings.reveal
        self._catalog = catalog
        self._taxonomy = taxonomy
        self._codec = codec
        self._limiter = limiter
        self._levels = {name: c.level for name, c in taxonomy.categories.items()}
        self._top = taxonomy.levels[-1].code
        self._alerted: set[str] = set()

    # -- issuing --------------------------------------------------------------

    def wanted(self, value: str | None) -> bool:
        """Did the request opt in (`X-Gateway-Reveal: handles`)?"""
        return self.cfg.enabled and (value or "").strip().lower() == "handles"

    def targets_for(self, decision: Decision, route: RouteMatch | None) -> RevealTargets | None:
        """What to collect for this response, or None when nothing could be revealed."""
        cats = decision.obligations.reveal.categories
        if not cats or route is None or route.route.reveal_route is None:
            return None
        read = self._catalog.route(route.route.reveal_route)
        if read is None:
            return None
        return RevealTargets(
            categories=cats,
            levels=self._levels,
            never=frozenset({self._top}),
            id_key=route.route.facts.id,
            limit=self.cfg.max_handles,
        )

    def header(
        self,
        targets: RevealTargets,
        subject: Subject,
        route: RouteMatch,
        request_id: str,
        *,
        more: bool = False,
        now: float | None = None,
    ) -> tuple[str, int]:
        """The response header's value, ASCII JSON `{"expires", "truncated", "handles":
        [{"record", "field", "category", "level", "handle"}]}` within max_header_bytes,
        and how many handles it carries."""
        at = time.time() if now is None else now
        expires = int(at + self.cfg.handle_ttl)
        read = str(route.route.reveal_route)
        fingerprint = credential_fingerprint(subject)
        entries: list[dict[str, str]] = []
        size = 120  # the envelope
        truncated = targets.truncated or more
        for t in targets.items:
            token = self._codec.seal(
                Handle(
                    subject=subject.id,
                    fingerprint=fingerprint,
                    route=read,
                    record_id=t.record_id,
                    field=t.field,
                    category=t.category,
                    level=t.level,
                    expires=expires,
                    issued_by_request=request_id,
                )
            )
            entry = {
                "record": t.record_id,
                "field": t.field,
                "category": t.category,
                "level": t.level,
                "handle": token,
            }
            cost = len(_ascii_json(entry)) + 1
            if size + cost > self.cfg.max_header_bytes:
                truncated = True
                break
            size += cost
            entries.append(entry)
        value = _ascii_json(
            {
                "expires": datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds"),
                "truncated": truncated,
                "handles": entries,
            }
        )
        return value, len(entries)

    # -- honouring ----------------------------------------------------------------

    def check_reason(self, raw: Any) -> str:
        """A reason a reviewer can read: at least min_reason characters, two letters."""
        text = unicodedata.normalize("NFKC", raw).strip() if isinstance(raw, str) else ""
        letters = {ch for ch in text if ch.isalpha()}
        if len(text) < self.cfg.min_reason or len(letters) < 2:
            raise RevealReasonRequired(
                f"a reveal needs a reason of at least {self.cfg.min_reason} characters "
                "that says why (e.g. 客户来电核实 / customer called to verify)"
            )
        return text[: self.cfg.max_reason]

    def unseal(self, token: Any, record: Any = None, field: Any = None) -> Handle:
        """The sealed, current handle; `record` and `field`, when the client names them
        (as a console does), must be the handle's own."""
        handle = self._codec.unseal(token)
        if (record is not None and record != handle.record_id) or (
            field is not None and field != handle.field
        ):
            raise RevealHandleInvalid("the reveal handle is for another record or field")
        return handle

    def read_route(self, handle: Handle) -> tuple[RouteMatch, str]:
        """The read route and path the handle's record is fetched again through."""
        route = self._catalog.route(handle.route)
        path = self._catalog.reveal_path(route, handle.record_id) if route else None
        match = self._catalog.match("GET", path) if path else None
        if route is None or path is None or match is None:
            raise RevealHandleInvalid("the reveal handle names a route the catalog no longer has")
        return match, path

    def check_decision(self, decision: Decision, handle: Handle) -> None:
        """The policy, decided again for this reveal, still lists the field's category."""
        if handle.level == self._top or self._levels.get(handle.category) != handle.level:
            raise RevealNotAllowed(
                f"{handle.category} ({handle.level}) is never revealed", category=handle.category
            )
        if handle.category not in decision.obligations.reveal.categories:
            raise RevealNotAllowed(
                f"the policy does not let this caller reveal {handle.category} "
                f"({handle.level}) now",
                category=handle.category,
                level=handle.level,
            )

    async def count(self, subject: Subject, decision: Decision, emit: Any) -> None:
        """One reveal against the policy's per-subject limit; the first refusal in a
        window alerts the SIEM (once across replicas)."""
        rule = decision.obligations.reveal
        rate = await self._limiter.hit(
            REVEAL_SCOPE, subject.id, limit=rule.limit, period=rule.period
        )
        if rate.allowed:
            return
        window = str(int(time.time() // rule.period))
        if await mark_once(
            self.settings.redis.url or None,
            reveal_limit_alerted(subject.id, window),
            rule.period,
            self._alerted,
        ):
            emit(
                build_governance_alert(
                    "reveal_rate_limit",
                    subject=subject.id,
                    message=f"reveal limit reached by {subject.id}: {rule.limit} reveals "
                    f"per {rule.period:g}s",
                    uid=f"reveal_rate_limit:{subject.id}:{window}",
                    actor=actor_of(subject),
                )
            )
        raise RateLimited(
            f"reveal limit reached: {rule.limit} reveals per {rule.period:g}s",
            retry_after=rate.retry_after,
        )

    def extract(
        self,
        doc: Any,
        route: RouteMatch,
        handle: Handle,
        decision: Decision,
        subject: Subject,
        masker: Masker,
    ) -> Any:
        """The field's value as the caller would see it were its category in clear:
        the record must be there and visible (record rules), the catalog must still
        classify the field as the handle says; other identifiers inside a free-form
        value stay masked (the enforcer's own residue scan)."""
        found = named_record(doc, route, handle.record_id)
        if found is None:
            raise RecordNotVisible(
                "the CRM's answer does not hold the record", reason="record_missing"
            )
        prefix, record = found
        facts = FactsReader(route.route.facts).full(record)
        verdict = record_verdict(decision, [facts], subject.id)
        if not verdict.visible:
            raise RecordNotVisible(
                f"this record is not visible to the caller: {verdict.reason}",
                reason=verdict.reason,
                record_id=handle.record_id,
            )
        enforcer = build_enforcer(
            taxonomy=self._taxonomy,
            route=route.route,
            decision=lifted(decision, handle.category),
            subject_id=subject.id,
            masker=masker,
            label=route.template,
        )
        if enforcer.field_category(handle.field) != handle.category:
            raise RevealHandleInvalid(
                "the catalog no longer classifies this field as the handle says"
            )
        try:
            out = enforcer.rewrite_record(dict(record), prefix)
        except BlockResponse as exc:
            raise BlockedByPolicy(exc.reason) from exc
        if out is None:
            raise RecordNotVisible("this record is not visible to the caller", reason="dropped")
        return out.get(handle.field)

    def change(
        self,
        action: str,
        subject: Subject | None,
        *,
        request_id: str,
        ip: str | None,
        reason: str | None,
        handle: Handle | None,
        route: str | None,
        details: Mapping[str, Any],
    ) -> Change:
        """The governance event of a reveal or a refused one (never the value)."""
        info: dict[str, Any] = {"request": request_id, **details}
        if handle is not None:
            info.update(
                record_id=handle.record_id,
                field=handle.field,
                category=handle.category,
                level=handle.level,
                handle_issued_by_request=handle.issued_by_request,
                handle_expires=datetime.fromtimestamp(handle.expires, UTC).isoformat(),
            )
        if route:
            info["route"] = route
        actor = actor_of(subject, ip) if subject else Actor(id="anonymous", ip=ip)
        return Change(
            action,
            actor,
            subject=subject.id if subject else None,
            request_id=request_id,
            reason=reason,
            details=info,
        )


def lifted(decision: Decision, category: str) -> Decision:
    """The decision with one category in clear (its default action and every record
    rule's field override); records, other categories and obligations unchanged."""
    return dataclasses.replace(
        decision,
        fields={**decision.fields, category: ALLOW},
        records=tuple(
            dataclasses.replace(r, fields={c: a for c, a in r.fields.items() if c != category})
            for r in decision.records
        ),
    )


def actor_of(subject: Subject, ip: str | None = None) -> Actor:
    return Actor(
        id=subject.id, department=subject.department, roles=subject.roles, via="api", ip=ip
    )


def _ascii_json(value: Any) -> str:
    """JSON with every non-ASCII character escaped (header values are Latin-1 on the wire)."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))
