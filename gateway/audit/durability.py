"""Which responses wait for a durable audit event before their body is released.

`audit.durable_from` (default `L2`) names a level: a response carrying any
category of that level or above (shown or masked; dropped and blocked fields
leave nothing) is released only once its event is fsynced in the spool or
acknowledged by Redis (`emit_durable`), else it fails closed with 503.
`audit.strict_levels` adds single levels on top (kept for older configs);
`durable_from: null` with no strict levels turns the barrier off, leaving
every event at-least-once with the loss window documented in docs/audit.md.
"""

from __future__ import annotations

from gateway.core.taxonomy import Taxonomy
from gateway.errors import ConfigError
from gateway.settings.stages import AuditSettings


def durable_levels(cfg: AuditSettings, taxonomy: Taxonomy) -> tuple[str, ...]:
    """Level codes whose presence in a response makes its audit event durable first."""
    ranks = [(lv.code, lv.rank) for lv in taxonomy.levels]
    wanted = {_rank(taxonomy, code, "audit.strict_levels") for code in cfg.strict_levels}
    if cfg.durable_from is not None:
        floor = _rank(taxonomy, cfg.durable_from, "audit.durable_from")
        wanted |= {rank for _, rank in ranks if rank >= floor}
    return tuple(code for code, rank in ranks if rank in wanted)


def _rank(taxonomy: Taxonomy, code: str, key: str) -> int:
    try:
        return taxonomy.level_rank(code)
    except KeyError as exc:
        known = ", ".join(lv.code for lv in taxonomy.levels)
        raise ConfigError(f"{key}: unknown level {code!r} (taxonomy levels: {known})") from exc
