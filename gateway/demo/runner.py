"""`crm-gateway demo`: the demo CRM and the gateway in one process, with a managed OPA.

Prints ready-to-paste curl commands for demo users of different clearance, the
console's address with the demo keys that sign in to it, and stops cleanly on
Ctrl-C (the OPA child is stopped by the gateway's shutdown).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from gateway.settings import load_settings

Listen = tuple[str, int]


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


def banner(gateway_url: str, crm_url: str, users: list[dict[str, Any]]) -> str:
    lines = [
        "",
        f"demo CRM     {crm_url}   (the legacy CRM, unprotected: do not expose it)",
        f"crm-gateway  {gateway_url}   (what staff should use)",
        "",
        "Try the same page as callers of different clearance:",
    ]
    for u in (u for u in users if u.get("data", True)):
        note = u.get("note", "")
        lines.append(f"  # {u.get('id', '?')}: {note}")
        lines.append(
            f"  curl -s -H 'Authorization: Bearer {u['key']}' "
            f"'{gateway_url}/api/customers?page_size=2' | python3 -m json.tool"
        )
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
    lines.append(
        "Audit events are written to the file named in config/demo.yaml. Ctrl-C stops everything."
    )
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
        await web.TCPSite(crm_runner, crm_listen[0], crm_listen[1]).start()
        gw_runner = await start_site(create_app(settings), settings)
        users = demo_users(settings.path(settings.identity.directory))
        print(
            banner(
                f"http://{listen[0]}:{listen[1]}", f"http://{crm_listen[0]}:{crm_listen[1]}", users
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
