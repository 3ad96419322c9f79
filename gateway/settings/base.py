"""The settings sections' common base and shared validators."""

from __future__ import annotations

import ipaddress
import zoneinfo

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: unknown keys are errors (typos do not pass), values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_networks(values: tuple[str, ...]) -> tuple[str, ...]:
    """Each value must be an IP network in CIDR form (host bits allowed)."""
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError as exc:
            raise ValueError(f"{v!r} is not an IP network (CIDR)") from exc
    return values


def check_zone(value: str) -> str:
    """An IANA time zone name this system knows (e.g. Asia/Shanghai)."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value
