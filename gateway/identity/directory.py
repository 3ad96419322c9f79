"""The directory: who may call, as the security team manages it (YAML or CSV).

Authenticators prove *which* subject is calling; the directory says *what* that
subject is (roles, department, clearance, partner expiry, networks, disabled).
Credentials prove identity, the directory grants attributes: a token cannot
raise its own clearance unless `identity.oidc.claim_overrides` says so.

YAML: `{timezone: Asia/Shanghai, subjects: [{id, display_name, email, roles,
department, clearance, mfa, aliases, partner, partner_expires, allowed_networks,
disabled, attributes, api_keys: [{id, hash, routes, methods, expires, mfa}]}]}`.

CSV: one subject per row with columns named like the YAML keys; lists are
separated by `;`; at most one API key per row in `api_key_hash`,
`api_key_routes`, `api_key_methods`, `api_key_expires`.

A bare date for `partner_expires` or a key's `expires` means "through the end
of that day" in the directory's time zone.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.core.model import Subject
from gateway.errors import ConfigError
from gateway.identity.apikeys import KeyIndex, parse_hash

Match = Literal["id", "email", "alias"]
LEVELS = ("L0", "L1", "L2", "L3", "L4", "L5")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    hash: str = dataclasses.field(repr=False)
    routes: tuple[str, ...]  # globs on the normalised path; empty: any
    methods: tuple[str, ...]  # empty: any
    expires: datetime | None
    mfa: bool  # a hardware-bound key counts as a second factor

    def allows(self, method: str, path: str, *, case_insensitive: bool = False) -> bool:
        """`path` is normalised; with a case-insensitive CRM the globs are lower-cased too."""
        if self.methods and method.upper() not in self.methods:
            return False
        if not self.routes:
            return True
        globs = (g.lower() for g in self.routes) if case_insensitive else iter(self.routes)
        return any(fnmatchcase(path, glob) for glob in globs)


@dataclass(frozen=True, slots=True)
class Entry:
    subject: Subject
    email: str
    aliases: tuple[str, ...]
    api_keys: tuple[ApiKey, ...]

    def subject_for(self, auth_method: str, *, mfa: bool, **attributes: Any) -> Subject:
        """The subject as authenticated by `auth_method`, with MFA as the credential proved it
        (the entry's own `mfa` flag counts only where `identity.directory_mfa` allows it)."""
        attrs = {**self.subject.attributes, **attributes}
        return dataclasses.replace(self.subject, auth_method=auth_method, mfa=mfa, attributes=attrs)

    def flags_mfa(self, credential_id: object) -> bool:
        """The directory's `mfa: true` on the entry or on the named API key."""
        if self.subject.mfa:
            return True
        return any(k.mfa for k in self.api_keys if k.id == credential_id)


def _date_or_datetime(value: Any) -> Any:
    """A bare `YYYY-MM-DD` (YAML date or JSON string) stays a date: "through that day"."""
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return date.fromisoformat(value)
    return value


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    hash: str
    routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    expires: datetime | date | None = None
    mfa: bool = False

    _expires = field_validator("expires", mode="before")(_date_or_datetime)

    @field_validator("hash")
    @classmethod
    def _hash(cls, v: str) -> str:
        parse_hash(v)
        return v


class _EntryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    display_name: str = ""
    email: str = ""
    roles: tuple[str, ...] = ()
    department: str = ""
    clearance: Literal["L0", "L1", "L2", "L3", "L4", "L5"] = "L0"
    mfa: bool = False
    aliases: tuple[str, ...] = ()
    partner: bool = False
    partner_expires: datetime | date | None = None
    allowed_networks: tuple[str, ...] = ()
    disabled: bool = False
    attributes: dict[str, Any] = Field(default_factory=dict)
    api_keys: tuple[_KeyFile, ...] = ()

    _partner_expires = field_validator("partner_expires", mode="before")(_date_or_datetime)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for net in v:
            ipaddress.ip_network(net, strict=False)
        return v


class _DirectoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = "Asia/Shanghai"
    subjects: tuple[_EntryFile, ...] = ()


class Directory:
    """Lookups by id, e-mail, alias and API key; built once per load."""

    def __init__(self, entries: Iterable[Entry], pepper: bytes | None = None) -> None:
        self._by_id: dict[str, Entry] = {}
        self._by_email: dict[str, Entry] = {}
        self._by_alias: dict[str, Entry] = {}
        keyed: list[tuple[str, tuple[Entry, ApiKey]]] = []
        for entry in entries:
            if entry.subject.id in self._by_id:
                raise ConfigError(f"directory: subject {entry.subject.id!r} appears twice")
            self._by_id[entry.subject.id] = entry
            if entry.email:
                self._by_email[entry.email.lower()] = entry
            for alias in entry.aliases:
                self._by_alias[alias] = entry
            keyed.extend((k.hash, (entry, k)) for k in entry.api_keys)
        self._keys: KeyIndex[tuple[Entry, ApiKey]] = KeyIndex(keyed, pepper)

    def __len__(self) -> int:
        return len(self._by_id)

    def subject_ids(self) -> list[str]:
        return sorted(self._by_id)

    def get(self, subject_id: str) -> Entry | None:
        return self._by_id.get(subject_id)

    def find(self, match: Match, value: str) -> Entry | None:
        if match == "id":
            return self._by_id.get(value)
        if match == "email":
            return self._by_email.get(value.lower())
        return (
            self._by_alias.get(value) or self._by_id.get(value) or self._by_email.get(value.lower())
        )

    def find_api_key(self, key: str) -> tuple[Entry, ApiKey] | None:
        return self._keys.find(key)

    @classmethod
    def load(cls, path: Path, pepper: bytes | None = None) -> Directory:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the directory {path}: {exc.strerror}") from exc
        if path.suffix.lower() == ".csv":
            data: Any = csv_to_dict(text)
        else:
            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        return cls.from_data(data, pepper, source=str(path))

    @classmethod
    def from_data(cls, data: Any, pepper: bytes | None = None, source: str = "") -> Directory:
        try:
            parsed = _DirectoryFile.model_validate(data)
            zone = ZoneInfo(parsed.timezone)
        except ValidationError as exc:
            problems = [
                f"{source}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            ]
            raise ConfigError(f"{len(problems)} directory error(s)", problems) from exc
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{source}: unknown time zone {parsed.timezone!r}") from exc
        return cls((_entry(e, zone) for e in parsed.subjects), pepper)


def _until(value: datetime | date | None, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    return datetime.combine(value + timedelta(days=1), time(), tzinfo=zone)


def _entry(raw: _EntryFile, zone: ZoneInfo) -> Entry:
    keys = tuple(
        ApiKey(
            id=k.id,
            hash=k.hash,
            routes=k.routes,
            methods=tuple(m.upper() for m in k.methods),
            expires=_until(k.expires, zone),
            mfa=k.mfa,
        )
        for k in raw.api_keys
    )
    subject = Subject(
        id=raw.id,
        display_name=raw.display_name or raw.id,
        roles=raw.roles,
        department=raw.department,
        clearance=raw.clearance,
        mfa=raw.mfa,
        partner=raw.partner,
        partner_expires=_until(raw.partner_expires, zone),
        allowed_networks=raw.allowed_networks,
        disabled=raw.disabled,
        attributes=raw.attributes,
    )
    return Entry(subject, raw.email, raw.aliases, keys)


_LIST_COLUMNS = ("roles", "aliases", "allowed_networks")
_BOOL_COLUMNS = ("mfa", "partner", "disabled")


def csv_to_dict(text: str) -> Mapping[str, Any]:
    subjects = []
    for row in csv.DictReader(io.StringIO(text)):
        item: dict[str, Any] = {}
        for col, value in row.items():
            value = (value or "").strip()
            if not value or col is None:
                continue
            if col in _LIST_COLUMNS:
                item[col] = [v.strip() for v in value.split(";") if v.strip()]
            elif col in _BOOL_COLUMNS:
                item[col] = value.lower() in ("1", "true", "yes", "y")
            elif not col.startswith("api_key_"):
                item[col] = value
        if row.get("api_key_hash"):
            item["api_keys"] = [
                {
                    "id": f"{item.get('id', '')}-key",
                    "hash": row["api_key_hash"].strip(),
                    "routes": _split(row.get("api_key_routes")),
                    "methods": _split(row.get("api_key_methods")),
                    "expires": (row.get("api_key_expires") or "").strip() or None,
                }
            ]
        subjects.append(item)
    return {"subjects": subjects}


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(";") if v.strip()]


def demo_keys(path: Path) -> dict[str, str]:
    """The clear demo keys listed in the `# demo-keys:` comment block (subject id -> key),
    so `crm-gateway demo` can print working curl commands. Empty for real directories."""
    keys: dict[str, str] = {}
    in_block = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() == "# demo-keys:":
            in_block = True
            continue
        if in_block:
            parts = line.lstrip("#").split()
            if not line.startswith("#") or len(parts) != 2:
                break
            keys[parts[0]] = parts[1]
    return keys
