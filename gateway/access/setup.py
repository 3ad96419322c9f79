"""Opening `Governance` for a gateway process or the CLI, and applying approved
standing changes (clearance, new entries) to the shared directory."""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from gateway.access.console import Governance
from gateway.core.model import Subject
from gateway.errors import ConfigError
from gateway.identity.directory import Directory
from gateway.settings import Settings
from gateway.state.directory import DirectoryStore
from gateway.state.grants import Grant, GrantStore

if TYPE_CHECKING:
    from gateway.audit.emitter import AuditEmitter
    from gateway.core.taxonomy import Taxonomy
    from gateway.identity.service import Identity

log = logging.getLogger(__name__)


async def open_governance(
    settings: Settings,
    grants: GrantStore,
    taxonomy: Taxonomy,
    identity: Identity,
    audit: AuditEmitter,
    *,
    watch_reviews: bool = True,
) -> Governance:
    def lookup(subject_id: str) -> Subject | None:
        entry = identity.directory.current().get(subject_id)
        return entry.subject if entry is not None else None

    async def apply(record: Grant) -> bool:
        return await apply_standing_change(settings, record)

    return await Governance.open(
        settings,
        grants=grants,
        taxonomy=taxonomy,
        directory=lookup,
        emit=audit.emit,
        emit_durable=audit.emit_durable,
        apply_change=apply,
        watch_reviews=watch_reviews,
    )


async def apply_standing_change(settings: Settings, record: Grant) -> bool:
    """Publish an approved clearance change or new entry to the Redis-shared
    directory; False (left for the security team to apply) with a file directory."""
    if settings.identity.directory_source != "redis" or not settings.redis.url:
        return False
    store = await DirectoryStore.open(settings.redis.url)
    try:
        if store.document is None:
            return False
        document: dict[str, Any] = copy.deepcopy(store.document)
        subjects = list(document.get("subjects") or [])
        change = record.get("change") or {}
        target = str(record.get("subject"))
        if "clearance" in change or "roles" in change:
            found = [s for s in subjects if isinstance(s, dict) and s.get("id") == target]
            if not found:
                return False
            for key in ("clearance", "roles"):
                if key in change:
                    found[0][key] = change[key]["to"]
        elif "entry" in change:
            if any(isinstance(s, dict) and s.get("id") == target for s in subjects):
                return False
            subjects.append(dict(change["entry"]))
        else:
            return False
        document["subjects"] = subjects
        try:
            Directory.from_data(document, source="approved change")
        except ConfigError as exc:
            log.warning("approved change %s not applied: %s", record.get("id"), exc.problems)
            return False
        await store.publish(document)
        return True
    finally:
        await store.close()
