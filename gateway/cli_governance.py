"""`crm-gateway policy impact` and `crm-gateway review report|sign`: the security
team's planning and review commands (registered by cli.py).

crm-gateway policy impact --rego DIR [--window 7d] [--json] [--config FILE]
crm-gateway review report [--period 90d] [--default-clearance L1] [--json|--csv] [--config FILE]
crm-gateway review sign --reviewer ID --decisions FILE [--period 90d] [--out DIR] [--config FILE]
crm-gateway state backup [--out FILE] [--config FILE]
crm-gateway state restore FILE [--replace] [--config FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import ConfigError, StartupError
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


def cmd_state(args: argparse.Namespace, load: Loader) -> int:
    """`state backup|restore`: the shared decisions to a file and back (docs/backup.md).
    Both are governance events in the audit trail (durable before the file is written,
    before the store is), by the operating-system user who ran them."""
    from gateway.audit.emitter import AuditEmitter
    from gateway.audit.keys import load_hmac_key, load_retired_hmac_keys
    from gateway.state import backup
    from gateway.state.client import connect

    settings = load(args.config)
    if not settings.redis.url:
        raise ConfigError("redis.url: not set: in-memory state lives and dies with one "
                          "process; the state to back up is in Redis")  # fmt: skip
    masters = [load_hmac_key(settings), *load_retired_hmac_keys(settings)]
    keys = [backup.backup_key(m) for m in masters]

    async def run() -> int:
        client = connect(settings.redis.url, timeout=10.0)
        audit = await AuditEmitter.open(settings)
        try:
            if args.state_cmd == "backup":
                taken = await backup.take_backup(client, keys[0])
                counts = {n: backup.entries(p["value"]) for n, p in taken["parts"].items()}
                await audit.emit_durable(_state_event("state_backup", taken, counts))
                return _write_backup(taken, args.out)
            doc = _read_backup(Path(args.file))

            async def audited(counts: dict[str, int]) -> None:
                extra = {"replace": bool(args.replace)}
                assert isinstance(doc, dict)  # checked by restore_backup before this call
                await audit.emit_durable(_state_event("state_restored", doc, counts, extra))

            try:
                done = await backup.restore_backup(
                    client, doc, keys, replace=args.replace, before_write=audited
                )
            except backup.BackupInvalid as exc:
                raise StartupError(f"{args.file}: " + "; ".join(exc.problems)) from exc
            except backup.RestoreRefused as exc:
                raise StartupError(str(exc)) from exc
            parts = ", ".join(f"{n} {c}" for n, c in done.counts.items())
            print(f"restored from {args.file}: {parts}; every replica reloads now",
                  file=sys.stderr)  # fmt: skip
            return 0
        finally:
            await audit.close()
            await client.aclose()

    return asyncio.run(run())


def _state_event(
    action: str, doc: dict[str, Any], counts: dict[str, int], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    from gateway.audit.governance import Actor, Change, build_governance_event, os_user

    user = os_user()
    details = {**counts, "backup_created": str(doc.get("created")),
               "sha256": str(doc.get("sha256"))[:16], **(extra or {})}  # fmt: skip
    actor = Actor(id=user, via="cli", os_user=user)
    return build_governance_event(Change(action, actor, details=details))


def _summary(doc: dict[str, Any]) -> str:
    from gateway.state.backup import entries

    return ", ".join(f"{name} {entries(part['value'])}" for name, part in doc["parts"].items())


def _write_backup(doc: dict[str, Any], out: str | None) -> int:
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        path = Path(out)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StartupError(f"cannot write {out}: {exc.strerror or exc}") from exc
    print(f"backup of {doc['created']}: {_summary(doc)}" + (f" -> {out}" if out else ""),
          file=sys.stderr)  # fmt: skip
    return 0


def _read_backup(path: Path) -> object:
    try:
        return orjson.loads(path.read_bytes())
    except OSError as exc:
        raise StartupError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise StartupError(f"{path}: not JSON ({exc})") from exc


def add_governance_commands(sub: Any, load: Loader) -> None:
    """Register `policy`, `review` and `state` on the top-level subparsers."""
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

    st = sub.add_parser(
        "state", help="back up and restore grants, requests, reviews, revocations (docs/backup.md)"
    )
    ssub = st.add_subparsers(dest="state_cmd", required=True)
    sb = ssub.add_parser(
        "backup", help="write the shared decisions as one sealed JSON document (audited)"
    )
    sb.add_argument("--out", help="file to write (mode 0600; default: standard output)")
    sr = ssub.add_parser(
        "restore", help="check a backup's seal, write it into Redis (audited); replicas reload"
    )
    sr.add_argument("file", help="a file written by `state backup`")
    sr.add_argument(
        "--replace", action="store_true", help="replace decisions the store already holds"
    )
    for q in (sb, sr):
        q.add_argument("--config", help="YAML settings (default config/gateway.yaml)")
    st.set_defaults(func=lambda a: cmd_state(a, load))
