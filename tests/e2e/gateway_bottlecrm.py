"""Helpers for the gateway-in-front-of-BottleCRM acceptance tests.

A real gateway (tests/integration/gateway_harness.py, in the test's event loop)
is pointed at the session's real BottleCRM with the BottleCRM catalog, the
directory of the seeded users (config/bottlecrm-directory.yaml) and BottleCRM
introspection as the only authenticator. BottleCRM's `/api/auth/me/` accepts
only its JWTs (a PAT gets 401 "Given token not valid for any token type"), so
the gateway asks `/api/profile/`, which answers for PATs, JWTs and org keys. What the seed put
into BottleCRM is turned into the list of exact values that must never be seen
in clear by a low-clearance caller, and must be seen exactly by a cleared one.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.e2e.conftest import ROOT, BottleCRM
from tests.integration.gateway_harness import Gateway, start_gateway

DIRECTORY = ROOT / "config" / "bottlecrm-directory.yaml"
CATALOG = ROOT / "config" / "crm" / "bottlecrm.yaml"

API_ACTIVITY = 6003  # OCSF class of the per-request events

# Introspection and stripped headers exactly as the example config sets them.
EXAMPLE_CONFIG = ROOT / "config" / "bottlecrm-gateway.yaml"
_IDENTITY: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))["identity"]

# Every catalogued read route that returns customer data, filled with seeded ids.
READ_ROUTES = {
    "contact_list": "/api/contacts/?limit=100",
    "contact_detail": "/api/contacts/{contact}/",
    "lead_list": "/api/leads/?limit=100",
    "lead_detail": "/api/leads/{lead}/",
    "account_list": "/api/accounts/?limit=100",
    "account_detail": "/api/accounts/{account}/",
    "opportunity_list": "/api/opportunities/?limit=100",
    "opportunity_detail": "/api/opportunities/{opportunity}/",
    "contact_export": "/api/contacts/export/",
    "lead_export": "/api/leads/export/",
    "account_export": "/api/accounts/export/",
    "opportunity_export": "/api/opportunities/export/",
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def write_low_directory(path: Path) -> Path:
    """A directory where BottleCRM's org admin (who sees every record in the CRM) is an
    L1 sales employee at the gateway: the strongest low-clearance case."""
    entry = {
        "id": "u-bcrm-admin-l1",
        "email": "admin@huaxin-wealth.example",
        "roles": ["sales"],
        "department": "retail",
        "clearance": "L1",
    }
    doc = {"timezone": "Asia/Shanghai", "subjects": [entry]}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


async def start_bottlecrm_gateway(
    tmp_path: Path, crm: BottleCRM, *, engine: str, **overrides: Any
) -> Gateway:
    """A gateway in front of `crm`: BottleCRM catalog, introspection, seeded directory."""
    values: dict[str, Any] = {
        "identity.directory": str(DIRECTORY),
        "identity.authenticators": ["crm_introspection"],
        "identity.crm_introspection": _IDENTITY["crm_introspection"],
        "identity.strip_request_headers": _IDENTITY["strip_request_headers"],
        "classification.catalog": str(CATALOG),
        "policy.engine": engine,
        "routes": [],
        "limits.max_request_body": 1_000_000,
    }
    values.update(overrides)
    return await start_gateway(tmp_path, crm.base_url, **values)


async def fetch(
    session: aiohttp.ClientSession,
    gateway: Gateway,
    path: str,
    *,
    token: str | None,
    header: str = "Authorization",
) -> Reply:
    headers = {}
    if token is not None:
        headers[header] = f"Bearer {token}" if header == "Authorization" else token
    return await fetch_with(session, gateway, path, headers)


async def fetch_with(
    session: aiohttp.ClientSession, gateway: Gateway, path: str, headers: dict[str, str]
) -> Reply:
    """GET through the gateway with exactly these headers (no declared purpose: the
    seeded users' roles may declare none the CRM's pages would need)."""
    async with session.get(gateway.url + path, headers=headers) as resp:
        body = await resp.read()
        return Reply(resp.status, dict(resp.headers), body.decode("utf-8", "replace"))


def seeded_ids(crm: BottleCRM) -> dict[str, str]:
    s = crm.seeded
    return {
        "contact": s["contacts"][0]["id"],
        "lead": s["leads"][0]["id"],
        "account": s["accounts"][0]["id"],
        "opportunity": s["opportunities"][0]["id"],
    }


def route_paths(crm: BottleCRM) -> dict[str, str]:
    """Every read route with seeded ids, plus searches that find seeded customers
    (by name, mobile prefix, e-mail domain)."""
    ids = seeded_ids(crm)
    paths = {name: url.format(**ids) for name, url in READ_ROUTES.items()}
    rows = crm.seeded["contacts"][:3] + crm.seeded["leads"][:2]
    terms = [r["name"] for r in rows] + [r["mobile"][:7] for r in rows[:2]] + ["example"]
    for term in terms:
        paths[f"search {term}"] = "/api/search/?q=" + urllib.parse.quote(term)
    return paths


def secret_values(crm: BottleCRM) -> dict[str, set[str]]:
    """Seeded identifiers, phones, bank cards, incomes and full names, by kind."""
    rows = crm.seeded["contacts"] + crm.seeded["leads"]
    return {
        "id_number": {r["id_number"] for r in rows},
        "mobile": {r["mobile"] for r in rows},
        "bank_card": {r["bank_card"] for r in rows},
        "income": {str(r["annual_income"]) for r in rows},
        "name": {r["name"] for r in rows},
    }


def leaks(text: str, secrets: dict[str, set[str]]) -> list[str]:
    """`kind:value` for every secret found in `text`. Incomes count only as a whole
    number (BottleCRM renders them as `1723000.0`), not inside a longer one."""
    found = []
    for kind, values in secrets.items():
        for value in values:
            if kind == "income":
                hit = re.search(rf"(?<![\d.]){re.escape(value)}(?:\.0+)?(?![\d.])", text)
            else:
                hit = re.search(re.escape(value), text)
            if hit:
                found.append(f"{kind}:{value}")
    return sorted(found)


async def audit_actors(audit_file: Path, wait: float = 5.0) -> list[str]:
    """Actor uids of the API-activity audit events written so far (waits for the file to appear)."""
    deadline = time.monotonic() + wait
    while True:
        if audit_file.exists():
            lines = audit_file.read_text(encoding="utf-8").splitlines()
            events = [json.loads(ln) for ln in lines if ln.strip()]
            actors = [
                str(e["actor"]["user"]["uid"]) for e in events if e.get("class_uid") == API_ACTIVITY
            ]
            if actors or time.monotonic() > deadline:
                return actors
        elif time.monotonic() > deadline:
            return []
        await asyncio.sleep(0.05)
