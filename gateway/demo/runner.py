"""`crm-gateway demo`: the demo CRM and the gateway in one process, with a managed OPA.

Prints ready-to-paste curl commands for demo users of different clearance, a
one-screen summary of what each of them sees of the same customer (fetched through
the running gateway at start-up, so it is what the policy really decides), the
console's address with the demo keys that sign in to it, and where the audit
trail is written; stops cleanly on Ctrl-C (the OPA child is stopped by the
gateway's shutdown).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import yaml
from aiohttp import web

from gateway.demo.data import generate_customers
from gateway.errors import StartupError
from gateway.settings import load_settings

Listen = tuple[str, int]

# The fields of the summary, from the lowest level to the highest.
SUMMARY_FIELDS = (
    "mobile", "annual_income", "total_assets", "balance", "bank_card", "risk_level",
    "query_password",
)  # fmt: skip


def role_purposes(policy_data: Path) -> dict[str, list[str]]:
    """Role -> the purposes it may declare (`crm.config.purposes` of the policy data)."""
    try:
        data = orjson.loads(policy_data.read_bytes())
        purposes = data["crm"]["config"]["purposes"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return {}
    if not isinstance(purposes, dict):
        return {}
    return {str(r): [str(p) for p in ps] for r, ps in purposes.items() if isinstance(ps, list)}


def outside_hours_note(policy_data: Path, timezone: str, now: datetime) -> str | None:
    """A banner line when `now` is outside the policy's working hours (`time_place`):
    the time cap then keeps the upper levels masked whatever purpose is declared."""
    try:
        place = orjson.loads(policy_data.read_bytes())["crm"]["config"]["time_place"]
        local = now.astimezone(ZoneInfo(timezone))
        hours = place.get("hours", {}).get(str(local.isoweekday()))
        holiday = local.date().isoformat() in place.get("holidays", [])
        open_now = (
            not holiday and isinstance(hours, dict)
            and hours["start"] <= local.hour < hours["end"]
        )  # fmt: skip
        from_level = str(place["from_level"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        return None
    if open_now:
        return None
    return (
        f"It is {local:%a %H:%M} in {timezone}, outside the policy's working hours: levels "
        f"from {from_level} stay masked, with or without a purpose "
        f"(time_place in {policy_data.name})."
    )


def sample_customer(seed: int = 7, count: int = 200) -> str:
    """A grade C, tier 一般 customer: every caller with data access may see the record
    (grades A and B and the tighter tiers need grants), so the masks tell them apart."""
    return next(
        str(c["id"]) for c in generate_customers(seed, count)
        if c["grade"] == "C" and c["tier"] == "一般"
    )  # fmt: skip


async def what_each_sees(
    gateway_url: str,
    users: list[dict[str, Any]],
    customer: str,
    purposes: dict[str, list[str]] | None = None,
) -> list[str]:
    """One line per demo user (and per user with a declarable purpose, one more with
    `X-Purpose`): the summary fields of `customer` as the gateway serves them."""
    lines = [
        f"What each demo user sees of customer {customer} (asked of the gateway just now;",
        "'***' masked, '-' removed, round figures are bands):",
    ]
    calls: list[tuple[str, dict[str, Any], str | None]] = []
    for u in users:
        if not u.get("data", True):
            continue
        calls.append((u["id"], u, None))
        declared = next((p for r in u.get("roles", []) for p in (purposes or {}).get(r, [])), None)
        if declared is not None:
            calls.append((f"{u['id']} +X-Purpose: {declared}", u, declared))
    width = max((len(label) for label, _, _ in calls), default=4)
    timeout = aiohttp.ClientTimeout(total=10)
    plain = ""
    # The demo is a caller of its own gateway here, as staff would be: not an outside system.
    async with aiohttp.ClientSession(timeout=timeout) as session:  # noqa: TID251
        for label, u, declared in calls:
            url = f"{gateway_url}/api/customers/{customer}"
            headers = {"Authorization": f"Bearer {u['key']}"}
            if declared is not None:
                headers["X-Purpose"] = declared
            try:
                async with session.get(url, headers=headers) as r:
                    seen = _seen(r.status, await r.read())
            except (aiohttp.ClientError, TimeoutError) as exc:
                seen = f"(no answer: {exc})"
            if declared is not None and seen == plain:
                continue  # the purpose changes nothing for this caller: one line
            plain = seen if declared is None else plain
            lines.append(f"  {label:<{width}}  {seen}")
    return lines


def _seen(status: int, raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if status != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        return f"{status} {error or 'refused'}"
    record = body.get("customer", body)
    if not isinstance(record, dict):
        return f"{status} (no record)"
    parts = []
    for name in SUMMARY_FIELDS:
        value = record.get(name)
        parts.append(f"{name}={'-' if value is None else value}")
    return " ".join(parts)


def demo_users(directory: Path) -> list[dict[str, Any]]:
    """The demo keys listed in the demo directory's `# demo-keys:` comment block.

    Only the demo directory carries clear keys (as a comment); subjects come
    from the parsed file so the banner shows each user's real clearance.
    """
    try:
        text = directory.read_text(encoding="utf-8")
        parsed = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError):
        return []
    keys: dict[str, str] = {}
    in_block = False
    for line in text.splitlines():
        stripped = line.lstrip("# ").rstrip()
        if line.startswith("#") and stripped == "demo-keys:":
            in_block = True
        elif in_block and line.startswith("#") and len(stripped.split()) == 2:
            ident, key = stripped.split()
            keys[ident] = key
        elif in_block:
            break
    subjects = parsed.get("subjects", []) if isinstance(parsed, dict) else []
    users = []
    for subject in subjects:
        if isinstance(subject, dict) and subject.get("id") in keys:
            note = (
                f"clearance {subject.get('clearance', '?')}, roles {subject.get('roles', [])}"
                + (", partner" if subject.get("partner") else "")
                + (", DISABLED (refused)" if subject.get("disabled") else "")
            )
            key_scope = (subject.get("api_keys") or [{}])[0]
            users.append(
                {
                    "id": subject["id"],
                    "key": keys[subject["id"]],
                    "note": note,
                    "roles": list(subject.get("roles") or []),
                    "disabled": bool(subject.get("disabled")),
                    "data": _allows(key_scope, "/api/customers", "GET"),
                    "console": _allows(key_scope, "/_gateway/admin/ui/login", "POST"),
                }
            )
    return users


def _allows(key: dict[str, Any], path: str, method: str) -> bool:
    """Whether a demo key's route and method limits cover `method path` (banner only)."""
    from fnmatch import fnmatchcase

    routes, methods = key.get("routes") or [], key.get("methods") or []
    route_ok = not routes or any(fnmatchcase(path, r) for r in routes)
    return route_ok and (not methods or method in methods)


def banner(
    gateway_url: str,
    crm_url: str,
    users: list[dict[str, Any]],
    *,
    customer: str = "C000011",
    summary: list[str] | None = None,
    audit_file: Path | None = None,
) -> str:
    lines = [
        "",
        f"demo CRM     {crm_url}   (the legacy CRM, unprotected: do not expose it)",
        f"crm-gateway  {gateway_url}   (what staff should use)",
        "",
        *(summary or []),
        "",
        "Try the same customer as callers of different clearance:",
    ]
    for u in (u for u in users if u.get("data", True)):
        note = u.get("note", "")
        lines.append(f"  # {u.get('id', '?')}: {note}")
        lines.append(
            f"  curl -s -H 'Authorization: Bearer {u['key']}' "
            f"'{gateway_url}/api/customers/{customer}' | python3 -m json.tool"
        )
    manager = next((u for u in users if "relationship_manager" in u.get("roles", [])), None)
    if manager is not None:
        lines += [
            f"  # {manager['id']} declaring a purpose its role allows sees more (X-Purpose)",
            f"  curl -s -H 'Authorization: Bearer {manager['key']}' -H 'X-Purpose: service' "
            f"'{gateway_url}/api/customers/{customer}' | python3 -m json.tool",
        ]
    cs = next((u for u in users if u.get("id") == "u-cs"), None)
    if cs is not None:
        auth = f"-H 'Authorization: Bearer {cs['key']}'"
        lines += [
            "  # reveal with reason (查看明文, docs/reveal.md): u-cs sees the income masked;",
            "  # ask for reveal handles, then reveal that one value with a reason",
            f"  H=$(curl -s -o /dev/null -D - {auth} -H 'X-Gateway-Reveal: handles' "
            f"'{gateway_url}/api/customers/C000026' | sed -n 's/^X-Gateway-Reveal-Handles: //p' "
            "| python3 -c 'import json,sys; "
            'print(json.load(sys.stdin)["handles"][0]["handle"])\')',
            f"  curl -s -X POST {auth} -H 'X-Requested-With: demo' "
            "-H 'Content-Type: application/json' "
            '-d \'{"handle": "\'$H\'", "reason": "客户来电核实收入证明"}\' '
            f"'{gateway_url}/_gateway/reveal'",
        ]
    lines += [
        "  # no credential: refused with 401, the CRM never sees it",
        f"  curl -si '{gateway_url}/api/customers'",
        "  # health and readiness of the gateway itself",
        f"  curl -s '{gateway_url}/_gateway/ready'",
        "",
    ]
    console = [u for u in users if u.get("console") and not u.get("disabled")]
    if console:
        lines += [
            f"Security team console (zh/en): {gateway_url}/_gateway/admin/ui/",
            "  sign in with one of these keys (one browser profile or private window each):",
        ]
        lines += [f"  {u['key']:<24} {u['id']} ({', '.join(u['roles'])})" for u in console]
        lines += [
            "  e.g. u-manager requests grade_a, u-sec-approver then u-it-approver approve;",
            "  u-admin closes break-glass reviews, signs the periodic review, sees the live view.",
            "",
        ]
    where = audit_file or "the file named in config/demo.yaml"
    lines.append(f"Audit events are written to {where}. Ctrl-C stops everything.")
    return "\n".join(lines)


def run_demo(*, config: Path, listen: Listen, crm_listen: Listen) -> int:
    from gateway.server import run_until_signal

    settings = load_settings(config).with_overrides(
        **{
            "listen.host": listen[0],
            "listen.port": listen[1],
            "upstream.url": f"http://{crm_listen[0]}:{crm_listen[1]}",
        }
    )

    async def main(stop: asyncio.Event) -> None:
        from gateway.app import create_app
        from gateway.demo.crm import create_demo_crm
        from gateway.server import start_site

        crm_runner = web.AppRunner(create_demo_crm(), access_log=None)
        await crm_runner.setup()
        try:
            await web.TCPSite(crm_runner, crm_listen[0], crm_listen[1]).start()
        except OSError as exc:
            await crm_runner.cleanup()
            where = f"{crm_listen[0]}:{crm_listen[1]}"
            raise StartupError(f"the demo CRM cannot listen on {where} (--crm-listen): "
                               f"{exc.strerror or exc}") from exc  # fmt: skip
        gw_runner = await start_site(create_app(settings), settings)
        users = demo_users(settings.path(settings.identity.directory))
        gateway_url = f"http://{listen[0]}:{listen[1]}"
        customer = sample_customer()
        data = settings.path(settings.policy.rego_dir) / "data.json"
        tz = settings.policy.timezone
        audit_file = settings.path(settings.audit.file) if "file" in settings.audit.sinks else None
        print(
            banner(
                gateway_url,
                f"http://{crm_listen[0]}:{crm_listen[1]}",
                users,
                customer=customer,
                summary=[
                    *await what_each_sees(gateway_url, users, customer, role_purposes(data)),
                    *filter(None, [outside_hours_note(data, tz, datetime.now(UTC))]),
                ],
                audit_file=audit_file,
            ),
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            print("stopping ...", flush=True)
            await gw_runner.cleanup()
            await crm_runner.cleanup()

    run_until_signal(main)
    return 0
