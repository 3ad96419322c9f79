"""The periodic review's I/O: read the directory, grants and audit trail; revoke; audit.

`collect()` and `sign()` are what the CLI (`crm-gateway review report|sign`) and
the console's review page call; `review.py` holds the logic. A gateway process
passes `ReviewSources` (its own directory, grants store, revocation list and
audit emitter) so the page acts on the live state, also without Redis.

- subjects: the directory file (`identity.directory`);
- grants: the shared grants store (`redis.url`; without Redis a gateway's grants
  live in its own memory and are out of the CLI's reach, so none are listed);
- audit: the Redis stream when `redis.url` is set, else `audit.file` and its
  rotated copies;
- revocations: a revoked grant through `GrantService.revoke`; a revoked standing
  clearance through the revocation list (`users revoke`: refused on every replica
  at once until the directory is corrected and the subject restored). Without
  Redis a clearance revocation is recorded as pending (set `disabled: true`);
- the signed review is one event in the audit chain (durable write), and JSON
  and CSV evidence files under `--out` (default `reviews/` beside the audit file).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.access.grants import GrantService
from gateway.access.review import (
    Review,
    ReviewLine,
    SubjectFacts,
    apply_decisions,
    build_review,
    check_reviewer,
    parse_decisions,
    parse_period,
    review_event,
    seal,
)
from gateway.audit.emitter import AuditEmitter
from gateway.audit.values import rfc3339, uuid7
from gateway.audit.verify import parse_lines
from gateway.errors import ClientError, ConfigError
from gateway.identity.directory import Directory
from gateway.identity.revocation import revoke_user
from gateway.settings import Settings
from gateway.state.audit_stream import AuditStream, StreamUnavailable


@dataclass(frozen=True, slots=True)
class ReviewSources:
    """What a gateway process hands the review instead of opening its own clients."""

    subjects: list[SubjectFacts]
    grants: list[dict[str, Any]]
    revoke_grant: Callable[[str, str], Awaitable[None]]  # (grant id, note)
    revoke_subject: Callable[[str, str], Awaitable[None]]  # (subject id, note)
    emit_durable: Callable[[dict[str, Any]], Awaitable[None]]


def directory_subjects(settings: Settings) -> list[SubjectFacts]:
    return subject_facts(Directory.load(settings.path(settings.identity.directory)))


def subject_facts(directory: Directory) -> list[SubjectFacts]:
    out = []
    for sid in directory.subject_ids():
        entry = directory.get(sid)
        if entry is None:
            continue
        s = entry.subject
        out.append(SubjectFacts(s.id, s.department, tuple(s.roles), s.clearance, s.disabled))
    return out


async def _grants(settings: Settings) -> list[dict[str, Any]]:
    if not settings.redis.url:
        return []
    svc = await GrantService.open(settings)
    try:
        return await svc.list()
    finally:
        await svc.close()


async def audit_events(settings: Settings) -> list[dict[str, Any]]:
    """Every canonical event of the trail (stream, else the file and its rotations)."""
    if settings.redis.url:
        stream = AuditStream.open(settings.redis.url, settings.audit.stream, timeout=10.0)
        try:
            events, _ = parse_lines([payload async for _, payload in stream.read_all()])
        finally:
            await stream.close()
        return events
    path = settings.path(settings.audit.file)
    files = [path.with_name(f"{path.name}.{n}") for n in range(settings.audit.file_backups, 0, -1)]
    files.append(path)

    def read() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for f in files:
            if f.exists():
                with f.open("rb") as fh:
                    out.extend(parse_lines(fh)[0])
        return out

    return await asyncio.to_thread(read)


async def collect(
    settings: Settings,
    *,
    period: str = "90d",
    default_clearance: str = "L1",
    now: datetime | None = None,
    sources: ReviewSources | None = None,
) -> tuple[Review, list[SubjectFacts]]:
    subjects = sources.subjects if sources else directory_subjects(settings)
    review = build_review(
        subjects,
        sources.grants if sources else await _grants(settings),
        await audit_events(settings),
        period=parse_period(period),
        default_clearance=default_clearance,
        now=now,
    )
    return review, subjects


async def _revoke(settings: Settings, review: Review, sources: ReviewSources | None) -> None:
    """Carry out the revoke decisions; each line's outcome says what happened."""
    svc = await GrantService.open(settings) if settings.redis.url and not sources else None
    try:
        for i, ln in enumerate(review.lines):
            try:
                if sources is not None:
                    outcome = await _carry_out_live(sources, review, ln)
                else:
                    outcome = await _carry_out(settings, svc, review, ln)
            except (ClientError, ConfigError) as exc:
                outcome = f"failed: {exc}"
            review.lines[i] = replace(ln, outcome=outcome)
    finally:
        if svc is not None:
            await svc.close()


def _note(review: Review, ln: ReviewLine) -> str:
    reason = f"periodic review {review.review_id} by {review.reviewer}"
    return f"{reason}: {ln.note}" if ln.note else reason


async def _carry_out_live(sources: ReviewSources, review: Review, ln: ReviewLine) -> str:
    if ln.decision is None:
        return ln.outcome
    if ln.decision != "revoke":
        return "kept"
    if ln.kind == "grant":
        await sources.revoke_grant(ln.line.removeprefix("grant:"), _note(review, ln))
    else:
        await sources.revoke_subject(ln.subject, _note(review, ln))
    return "revoked"


async def _carry_out(
    settings: Settings, svc: GrantService | None, review: Review, ln: ReviewLine
) -> str:
    if ln.decision is None:
        return ln.outcome
    if ln.decision != "revoke":
        return "kept"
    note = _note(review, ln)
    if ln.kind == "grant":
        if svc is None:
            return "failed: grants live in Redis; redis.url is not set"
        await svc.revoke(ln.line.removeprefix("grant:"), by=review.reviewer, reason=note)
        return "revoked"
    if not settings.redis.url:
        if ln.permission.endswith("(disabled)"):
            return "revoked (disabled in the directory)"
        return "pending: set disabled: true in the directory (no redis.url)"
    await revoke_user(settings, ln.subject, note, review.reviewer)
    return "revoked"


def evidence_dir(settings: Settings) -> Path:
    """Where signed reviews are written by default (beside the audit file)."""
    return settings.path(settings.audit.file).parent / "reviews"


def write_evidence(review: Review, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{review.review_id}.json"
    csv_path = out_dir / f"{review.review_id}.csv"
    json_path.write_bytes(review.to_json() + b"\n")
    csv_path.write_text(review.to_csv(), encoding="utf-8")
    return json_path, csv_path


async def sign(
    settings: Settings,
    *,
    reviewer: str,
    decisions_raw: bytes,
    decisions_name: str = "",
    period: str = "90d",
    default_clearance: str = "L1",
    out_dir: Path | None = None,
    now: datetime | None = None,
    sources: ReviewSources | None = None,
) -> tuple[Review, Path, Path]:
    """Check, apply, revoke, audit (durably), export. Raises ClientError/Forbidden."""
    review, subjects = await collect(
        settings, period=period, default_clearance=default_clearance, now=now, sources=sources
    )
    check_reviewer(reviewer, next((s for s in subjects if s.id == reviewer), None))
    decisions = parse_decisions(decisions_raw, decisions_name)
    review = apply_decisions(review, decisions, reviewer=reviewer, now=now)
    await _revoke(settings, review, sources)
    seal(review)
    now_s = time.time()
    uid = uuid7()
    event = review_event(review, uid=uid, time_ms=int(now_s * 1000), time_dt=rfc3339(now_s))
    if sources is not None:
        await sources.emit_durable(event)
    else:
        emitter = await AuditEmitter.open(settings)
        try:
            await emitter.emit_durable(event)
        finally:
            await emitter.close()
    review.audit_event_uid = uid
    target = out_dir or evidence_dir(settings)
    json_path, csv_path = write_evidence(review, target)
    return review, json_path, csv_path


def report_command(
    settings: Settings, *, period: str, default_clearance: str, fmt: str = "text"
) -> int:
    try:
        review, _ = asyncio.run(
            collect(settings, period=period, default_clearance=default_clearance)
        )
    except (ClientError, StreamUnavailable, OSError) as exc:
        print(f"review report: {exc}", file=sys.stderr)
        return 2
    if fmt == "json":
        sys.stdout.write(review.to_json().decode() + "\n")
    elif fmt == "csv":
        sys.stdout.write(review.to_csv())
    else:
        print(review.text())
    return 0


def sign_command(
    settings: Settings,
    *,
    reviewer: str,
    decisions: Path,
    period: str,
    default_clearance: str,
    out_dir: Path | None,
) -> int:
    try:
        raw = decisions.read_bytes()
        review, json_path, csv_path = asyncio.run(
            sign(
                settings,
                reviewer=reviewer,
                decisions_raw=raw,
                decisions_name=decisions.name,
                period=period,
                default_clearance=default_clearance,
                out_dir=out_dir,
            )
        )
    except (ClientError, StreamUnavailable, OSError) as exc:
        print(f"review sign: {exc}", file=sys.stderr)
        return 1
    s = review.summary()
    print(
        f"signed {review.review_id} by {review.reviewer}: {s['confirmed']} confirmed, "
        f"{s['revoked']} to revoke, {s['open']} open; audit event {review.audit_event_uid}; "
        f"sha256 {review.digest}\n  {json_path}\n  {csv_path}"
    )
    for ln in review.lines:
        if ln.outcome not in ("kept", "revoked"):
            print(f"  {ln.line}: {ln.outcome}")
    failed = [ln.line for ln in review.lines if ln.outcome.startswith("failed")]
    for line in failed:
        print(f"review sign: revocation of {line} failed", file=sys.stderr)
    return 1 if failed else 0
