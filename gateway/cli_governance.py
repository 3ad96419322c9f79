"""`crm-gateway policy impact` and `crm-gateway review report|sign`: the security
team's planning and review commands (registered by cli.py).

crm-gateway policy impact --rego DIR [--window 7d] [--json] [--config FILE]
crm-gateway review report [--period 90d] [--default-clearance L1] [--json|--csv] [--config FILE]
crm-gateway review sign --reviewer ID --decisions FILE [--period 90d] [--out DIR] [--config FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from gateway.settings import Settings

Loader = Callable[[str | None], Settings]


def cmd_policy_impact(args: argparse.Namespace, load: Loader) -> int:
    from gateway.policy.impact import parse_window, policy_impact

    settings = load(args.config)
    report = asyncio.run(policy_impact(settings, Path(args.rego), parse_window(args.window)))
    if args.json:
        print(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(report.text())
    if report.failed:
        print(f"policy impact: {report.failed} input(s) could not be evaluated", file=sys.stderr)
        return 1
    return 0


def cmd_review(args: argparse.Namespace, load: Loader) -> int:
    from gateway.access.review_commands import report_command, sign_command

    settings = load(args.config)
    if args.review_cmd == "report":
        return report_command(
            settings,
            period=args.period,
            default_clearance=args.default_clearance,
            fmt="json" if args.json else "csv" if args.csv else "text",
        )
    return sign_command(
        settings,
        reviewer=args.reviewer,
        decisions=Path(args.decisions),
        period=args.period,
        default_clearance=args.default_clearance,
        out_dir=Path(args.out) if args.out else None,
    )


def add_governance_commands(sub: Any, load: Loader) -> None:
    """Register `policy` and `review` on the top-level subparsers."""
    p = sub.add_parser("policy", help="policy change impact on recorded decision inputs")
    psub = p.add_subparsers(dest="policy_cmd", required=True)
    pi = psub.add_parser(
        "impact", help="replay recent decision inputs against a candidate and the running policy"
    )
    pi.add_argument("--rego", required=True, help="candidate policy directory (a bundle dir)")
    pi.add_argument("--window", default="7d", help="how far back to replay (e.g. 7d, 24h)")
    pi.add_argument("--json", action="store_true", help="machine-readable report")
    pi.add_argument("--config", help="YAML settings (default config/gateway.yaml)")
    p.set_defaults(func=lambda a: cmd_policy_impact(a, load))

    r = sub.add_parser("review", help="periodic access review (权限周期性复核)")
    rsub = r.add_subparsers(dest="review_cmd", required=True)
    rr = rsub.add_parser(
        "report", help="subjects above the default clearance and grants, with last use"
    )
    rs = rsub.add_parser("sign", help="record a reviewer's confirm/revoke decisions (audited)")
    for q in (rr, rs):
        q.add_argument("--period", default="90d", help="review period (e.g. 90d)")
        q.add_argument(
            "--default-clearance", default="L1", help="clearance everyone has (default L1)"
        )
        q.add_argument("--config", help="YAML settings (default config/gateway.yaml)")
    fmt = rr.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable report")
    fmt.add_argument("--csv", action="store_true", help="CSV for a spreadsheet")
    rs.add_argument("--reviewer", required=True, help="the reviewer's subject id")
    rs.add_argument(
        "--decisions", required=True, help="JSON or CSV: line id, decision (confirm|revoke), note"
    )
    rs.add_argument("--out", help="directory for the signed review's JSON and CSV evidence")
    r.set_defaults(func=lambda a: cmd_review(a, load))
