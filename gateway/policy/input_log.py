"""The decision-input log: which distinct policy inputs were decided, and how often.

`crm-gateway policy impact` replays a recent window of real inputs against a
candidate policy, so the gateway keeps them, bounded and without values:

- the normalised input (inputs.py) already holds no customer data: subject
  attributes from the directory, the route *template*, zone instead of IP, the
  time piece, grant metadata. Three strings can still come from outside and are
  reduced before anything is stored: the declared purpose (a header: kept only
  when it is a short token with at most two digits, as the policy's purpose
  lists are, else `<free-text>`),
  the route (an uncatalogued raw path keeps only token-like segments, others
  become `{?}`), and grant justifications (free text the policy never reads:
  `<given>`). The document is then keyed by the digest of what is stored, so
  reduced inputs merge;
- the taxonomy is not copied per input (only its digest); the replay sends the
  configured one;
- counts are per (UTC hour, document digest); at most `max_distinct` new digests
  per hour and process are kept (the rest are counted as `overflow`), and the
  store expires them after the retention period.

`observe()` runs on the request path: a dict increment, plus one reduction the
first time a normalised input is seen. A background task writes every
`flush` seconds; a failed write is logged and the batch dropped (the log is
evidence for planning, not the audit trail).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.policy.inputs import NormalisedInput, subject_input
from gateway.settings import Settings
from gateway.state.decision_inputs import (
    DecisionInputStore,
    Doc,
    InputLogUnavailable,
    current_hour,
)

log = logging.getLogger(__name__)

FREE_TEXT = "<free-text>"
GIVEN = "<given>"
UNKNOWN_SEGMENT = "{?}"
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
_SEGMENT = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_MAX_DIGITS = 2  # "v1", "api2" stay; "12345", "c1001" become {?}


def input_log_dir(settings: Settings) -> Path:
    """`policy.input_log_dir`, else `decision-inputs/` beside the audit file."""
    configured = settings.policy.input_log_dir
    if configured is not None:
        return settings.path(configured)
    return settings.path(settings.audit.file).parent / "decision-inputs"


def reduce_purpose(purpose: str | None) -> str | None:
    if purpose is None:
        return None
    if _TOKEN.fullmatch(purpose) and sum(c.isdigit() for c in purpose) <= _MAX_DIGITS:
        return purpose
    return FREE_TEXT


def _segment(seg: str) -> str:
    if not seg:
        return seg
    if _SEGMENT.fullmatch(seg) and sum(c.isdigit() for c in seg) <= _MAX_DIGITS:
        return seg
    return UNKNOWN_SEGMENT


def reduce_route(route: str) -> str:
    """Templates pass unchanged; any segment that could carry a value becomes `{?}`."""
    path = route.split("?", 1)[0]
    return "/".join(_segment(s) for s in path.split("/"))[:512]


def input_document(norm: NormalisedInput) -> Doc:
    """The value-free, JSON-ready form of a normalised input (see module docstring)."""
    return {
        "v": 1,
        "revision": norm.revision,
        "taxonomy_digest": norm.taxonomy_digest,
        "subject": subject_input(norm),
        "request": {
            "method": norm.method,
            "operation": norm.operation,
            "route": reduce_route(norm.route),
            "purpose": reduce_purpose(norm.purpose),
            "justification": norm.justification,
            "report_only": norm.report_only,
            "piece_start": norm.piece_start.isoformat(),
        },
        "grants": [
            {
                "id": g[0],
                "type": g[1],
                "level": g[2],
                "approved_by": list(g[3]),
                "expires": g[4],
                "justification": GIVEN if g[5] else None,
            }
            for g in norm.grants
        ],
    }


def document_digest(doc: Doc) -> str:
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def normalised_from_document(doc: Doc) -> NormalisedInput:
    """Back to a NormalisedInput (for `build_opa_input`); raises KeyError/ValueError."""
    s, r = doc["subject"], doc["request"]
    return NormalisedInput(
        revision=str(doc.get("revision", "")),
        taxonomy_digest=str(doc.get("taxonomy_digest", "")),
        subject_id=str(s["id"]),
        roles=tuple(str(x) for x in s["roles"]),
        department=str(s["department"]),
        clearance=str(s["clearance"]),
        mfa=s["mfa"] is True,
        auth_method=str(s["auth_method"]),
        partner=s["partner"] is True,
        partner_expires=s.get("partner_expires"),
        disabled=s["disabled"] is True,
        revoked=s["revoked"] is True,
        network_zone=str(s["network_zone"]),
        network_allowed=s["network_allowed"] is True,
        assigned_customers_only=s["assigned_customers_only"] is True,
        method=str(r["method"]),
        operation=str(r["operation"]),
        route=str(r["route"]),
        purpose=r.get("purpose"),
        justification=r["justification"] is True,
        report_only=r["report_only"] is True,
        piece_start=datetime.fromisoformat(str(r["piece_start"])),
        grants=tuple(
            (
                str(g["id"]),
                str(g["type"]),
                g.get("level"),
                tuple(str(a) for a in g.get("approved_by", ())),
                str(g["expires"]),
                g.get("justification"),
            )
            for g in doc.get("grants", ())
        ),
    )


class DecisionInputLog:
    """Counts observed inputs in memory; a background task writes them to the store."""

    def __init__(self, store: DecisionInputStore, *, flush: float, max_distinct: int) -> None:
        self.store = store
        self._flush_every = flush
        self._max = max_distinct
        self._counts: dict[tuple[int, str], int] = {}
        self._docs: dict[str, Doc] = {}
        self._known: dict[str, str] = {}  # normalised digest -> document digest (memo)
        self._hour_docs: dict[int, set[str]] = {}
        self.overflow = 0
        self.write_failures = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="input-log")

    def observe(self, norm: NormalisedInput, norm_digest: str, now: float | None = None) -> None:
        """Count one decision (never raises into the request)."""
        try:
            doc_digest = self._known.get(norm_digest)
            if doc_digest is None:
                doc = input_document(norm)
                doc_digest = document_digest(doc)
                if len(self._known) >= 4 * self._max:
                    self._known.clear()
                self._known[norm_digest] = doc_digest
                self._docs.setdefault(doc_digest, doc)
            hour = current_hour(now)
            seen = self._hour_docs.setdefault(hour, set())
            if doc_digest not in seen:
                if len(seen) >= self._max:
                    self.overflow += 1
                    return
                seen.add(doc_digest)
            key = (hour, doc_digest)
            self._counts[key] = self._counts.get(key, 0) + 1
        except Exception:  # the request must not fail for the planning log
            log.exception("decision-input log: observe failed")

    async def flush(self) -> None:
        counts, self._counts = self._counts, {}
        if not counts:
            return
        wanted = {d for _, d in counts}
        docs = {d: self._docs[d] for d in wanted if d in self._docs}
        hour = current_hour()
        for old in [h for h in self._hour_docs if h < hour]:
            del self._hour_docs[old]
        if len(self._docs) > 4 * self._max:
            self._docs = {d: doc for d, doc in self._docs.items() if d in wanted}
            self._known.clear()
        try:
            await self.store.add(counts, docs)
        except InputLogUnavailable as exc:
            self.write_failures += 1
            log.warning("decision-input log: write failed (%s); %d count(s) lost", exc, len(counts))

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._flush_every)
            try:
                await self.flush()
            except Exception:  # a bug here must not end the log for good
                log.exception("decision-input log: flush failed")

    async def close(self) -> None:
        """Write what is counted (a flush in progress finishes first), then close."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("decision-input log: last flush failed")
        await self.store.close()

    def stats(self) -> dict[str, Any]:
        return {"overflow": self.overflow, "write_failures": self.write_failures}
