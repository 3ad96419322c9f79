"""The `crm-gateway` command.

crm-gateway serve --config FILE [--upstream URL] [--listen HOST:PORT] [--workers N]
crm-gateway demo [--listen HOST:PORT] [--crm-listen HOST:PORT]
crm-gateway check-config FILE
crm-gateway explain --crm CATALOG --sample FILE [--level L2]
crm-gateway explain --user ID --route /api/customers/{id} [--method GET] [--config FILE]
crm-gateway explain --user ID --request 'GET /api/customers?mobile=...' [--header 'X-Purpose: p']
crm-gateway explain --error CODE | --request-id ID [--config FILE]
crm-gateway users revoke ID --reason TEXT [--by WHO] [--config FILE]
crm-gateway users hash-key [KEY]
crm-gateway audit verify FILE | --stream [--require-closed] [--allow-open S] [--json]
crm-gateway audit ship --to SINK [--once] [--max N] [--config FILE]
crm-gateway grants request SUBJECT --type T --justification TEXT --by WHO [--level L]
crm-gateway grants approve ID --by WHO        (only with access.cli_approvals: true)
crm-gateway grants reject ID --by WHO --reason TEXT
crm-gateway grants list [--subject ID] [--status STATE] [--by WHO] [--json]
crm-gateway grants revoke ID --by WHO --reason TEXT
crm-gateway policy impact --rego DIR [--window 7d] [--json]       (cli_governance.py)
crm-gateway review report|sign ...                                 (cli_governance.py)
crm-gateway catalog draft --openapi FILE [--from-observed] | coverage  (cli_catalog.py)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.core.model import Subject
from gateway.errors import ConfigError, StartupError
from gateway.settings import REPO_ROOT, Settings, load_settings
from gateway.state.errors import StoreUnavailable

DEFAULT_CONFIG = REPO_ROOT / "config" / "gateway.yaml"
CONFIG_HELP = "YAML settings (default config/gateway.yaml)"


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _load(path: str | None, **overrides: object) -> Settings:
    cfg = Path(path) if path else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    settings = load_settings(cfg)
    return settings.with_overrides(**overrides) if overrides else settings


def _listen_overrides(listen: tuple[str, int] | None) -> dict[str, object]:
    if listen is None:
        return {}
    return {"listen.host": listen[0], "listen.port": listen[1]}


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.server import serve

    settings = _load(
        args.config,
        **{"upstream.url": args.upstream, "listen.workers": args.workers},
        **_listen_overrides(args.listen),
    )
    return serve(settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo.runner import run_demo

    return run_demo(
        config=Path(args.config) if args.config else REPO_ROOT / "config" / "demo.yaml",
        listen=args.listen,
        crm_listen=args.crm_listen,
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.checks import check_config

    problems = check_config(Path(args.file))
    if problems:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    if args.error:
        from gateway.core.error_docs import ERROR_DOCS, doc_line

        print(doc_line(args.error))
        return 0 if args.error in ERROR_DOCS else 1
    if args.request_id:
        return _explain_request_id(_load(args.config), args.request_id)
    if args.sample:
        return _explain_sample(_load(args.config), args.crm, Path(args.sample), args.level)
    if not (args.route or args.request) or not (args.user or args.subject):
        print(
            "explain: give --sample FILE, --error CODE, --request-id ID, or --route or "
            "--request with --user ID or --subject FILE",
            file=sys.stderr,
        )
        return 2
    from gateway.identity.directory import Directory
    from gateway.policy.explain import explain_decision

    settings = _load(args.config)
    directory = Directory.load(settings.path(settings.identity.directory))

    def lookup(subject_id: str) -> Subject | None:
        entry = directory.get(subject_id)
        return entry.subject_for("directory", mfa=args.mfa) if entry else None

    if args.request:
        return _explain_request(settings, args, lookup)
    print(
        asyncio.run(
            explain_decision(
                settings,
                args.user,
                args.subject,
                args.route,
                args.method,
                lookup=lookup,
                purpose=args.purpose,
            )
        )
    )
    return 0


def _explain_sample(settings: Settings, crm: str | None, sample: Path, level: str) -> int:
    """Classify a sample body; a missing or malformed file or an unknown level is one
    line on stderr and exit 2."""
    import orjson
    import yaml

    from gateway.checks import explain_sample_file

    if crm is not None and not Path(crm).is_file():
        print(f"explain: --crm {crm}: no such file (a field catalog, config/crm/NAME.yaml)",
              file=sys.stderr)  # fmt: skip
        return 2
    if not sample.is_file():
        print(f"explain: --sample {sample}: no such file (a JSON response body)", file=sys.stderr)
        return 2
    try:
        orjson.loads(sample.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"explain: --sample {sample}: not a JSON document: {exc}", file=sys.stderr)
        return 2
    try:
        text = explain_sample_file(settings, crm, sample, level)
    except yaml.YAMLError as exc:
        where = crm or settings.path(settings.classification.catalog)
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        print(f"explain: {where}: not a YAML field catalog{at}: {_one_line(problem)}",
              file=sys.stderr)  # fmt: skip
        return 2
    except OSError as exc:
        print(f"explain: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except ValueError as exc:
        message = _one_line(str(exc))
        if message.startswith("unknown level"):
            message += " (--level takes a level code from the taxonomy, e.g. L1)"
        print(f"explain: {message}", file=sys.stderr)
        return 2
    print(text)
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _explain_request(
    settings: Settings, args: argparse.Namespace, lookup: Callable[[str], Subject | None]
) -> int:
    """Exit 0 when the request would be forwarded, 1 when a check refuses it."""
    from gateway.errors import ClientError
    from gateway.policy.explain import resolve_subject
    from gateway.policy.request_explain import explain_request

    try:
        subject = asyncio.run(resolve_subject(args.user, args.subject, lookup))
        text = asyncio.run(explain_request(settings, subject, args.request, args.header))
    except ClientError as exc:
        print(f"explain: {exc.message}", file=sys.stderr)
        return 2
    print(text)
    return 1 if "\nverdict    REFUSED" in text else 0


def _explain_request_id(settings: Settings, request_id: str) -> int:
    """The audit event of a request (from the audit file) and what its codes mean."""
    import orjson

    from gateway.policy.request_explain import explain_event

    path = settings.path(settings.audit.file)
    found = None
    try:
        with path.open("rb") as fh:
            for line in fh:
                if request_id.encode() not in line:
                    continue
                event = orjson.loads(line)
                if event.get("http_request", {}).get("uid") == request_id:
                    found = event
    except OSError as exc:
        print(f"explain: cannot read the audit file {path}: {exc}", file=sys.stderr)
        return 2
    if found is None:
        print(f"explain: no audit event for request {request_id} in {path}", file=sys.stderr)
        return 1
    print(explain_event(found))
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    if args.users_cmd == "hash-key":
        from gateway.identity.apikeys import hash_key_command

        settings = _load(args.config)
        clear, digest = hash_key_command(settings.identity.api_key_pepper_env, args.key)
        if not args.key:
            print(f"new key (hand it over once, it is not stored): {clear}")
        print(digest)
        return 0
    from gateway.identity.revocation import list_revoked, restore_user, revoke_user

    settings = _load(args.config)
    if args.users_cmd == "list-revoked":
        for entry in asyncio.run(list_revoked(settings)):
            print(f"{entry.subject_id}\t{entry.at}\tby {entry.by}\t{entry.reason}")
        return 0
    if args.users_cmd == "restore":
        if not asyncio.run(restore_user(settings, args.id, args.by)):
            print(f"{args.id} was not revoked", file=sys.stderr)
            return 1
        print(f"restored {args.id}")
        return 0
    asyncio.run(revoke_user(settings, args.id, args.reason, args.by))
    shared = settings.redis.url or "this process"
    print(f"revoked {args.id}: every gateway sharing {shared} refuses it")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from gateway.audit.commands import ship_command, verify_command

    settings = _load(args.config)
    if args.audit_cmd == "verify":
        if not args.stream and not args.file:
            print("audit verify: give FILE or --stream", file=sys.stderr)
            return 2
        return verify_command(
            settings,
            None if args.stream else Path(args.file),
            require_closed=args.require_closed,
            allow_open=args.allow_open,
            heartbeat_grace=args.heartbeat_grace,
            as_json=args.json,
        )
    return ship_command(settings, args.to, once=args.once, max_events=args.max)


def cmd_grants(args: argparse.Namespace) -> int:
    """Access requests and grants on the shared Redis store the gateways read, bound
    to directory entries and the OS user (gateway/access/cli.py): a table of the
    records touched, or with `--json` one JSON object per line."""
    import contextlib

    import orjson

    from gateway.access.cli import grants_table, run_grants_command
    from gateway.errors import ClientError

    settings = _load(args.config)
    if not settings.redis.url:
        print(
            "grants: set redis.url; a gateway's in-memory grants are out of reach", file=sys.stderr
        )
        return 2
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the records only
            grants = asyncio.run(run_grants_command(settings, args))
    except ClientError as exc:
        print(f"grants {args.grants_cmd}: {exc.code}: {exc}", file=sys.stderr)
        return 1
    if not args.json:
        print(grants_table(grants))
        return 0
    for grant in grants:
        print(orjson.dumps(grant, option=orjson.OPT_SORT_KEYS).decode())
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crm-gateway")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


JSON_LINES_HELP = "one JSON object per record and line, for scripts (default: a table)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="crm-gateway",
        description="Tiered customer-information authorization in front of a legacy CRM.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gateway in front of a CRM")
    s.add_argument(
        "--config", help=f"YAML settings (default {DEFAULT_CONFIG.relative_to(REPO_ROOT)})"
    )
    s.add_argument("--upstream", help="the CRM's base URL, e.g. http://127.0.0.1:8000")
    s.add_argument(
        "--listen", type=_host_port, help="HOST:PORT to listen on (default 127.0.0.1:8080)"
    )
    s.add_argument("--workers", type=int, help="worker processes sharing the port (default 1)")
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("demo", help="run the bundled demo CRM behind the gateway, with a local OPA")
    d.add_argument("--config", help="demo settings (default config/demo.yaml)")
    d.add_argument(
        "--listen", type=_host_port, default=("127.0.0.1", 8080), help="gateway HOST:PORT"
    )
    d.add_argument(
        "--crm-listen", type=_host_port, default=("127.0.0.1", 8081), help="demo CRM HOST:PORT"
    )
    d.set_defaults(func=cmd_demo)

    c = sub.add_parser("check-config", help="validate a settings file and everything it points to")
    c.add_argument("file", help="the YAML settings file to check")
    c.set_defaults(func=cmd_check_config)

    e = sub.add_parser(
        "explain", help="show how a sample is classified, or a subject's decision table"
    )
    e.add_argument("--config", help=CONFIG_HELP)
    e.add_argument("--crm", help="field catalog (config/crm/NAME.yaml)")
    e.add_argument("--sample", help="a JSON response body to classify")
    e.add_argument("--level", default="L1", help="caller clearance for --sample (default L1)")
    e.add_argument("--user", help="a subject id from the directory")
    e.add_argument("--subject", help="a JSON file describing a subject")
    e.add_argument("--route", help="a route template, e.g. /api/customers/{id}")
    e.add_argument("--method", default="GET", help="HTTP method for --route (default GET)")
    e.add_argument("--purpose", help="declared purpose (as in the X-Purpose header)")
    e.add_argument("--mfa", action="store_true", help="assume the user signed in with MFA")
    e.add_argument(
        "--request",
        help="replay a request's checks offline: 'GET /api/customers?mobile=...' "
        "(prints each check and the verdict; exit 1 when refused)",
    )
    e.add_argument(
        "--header", action="append", default=[], help="'Name: value' for --request (repeatable)"
    )
    e.add_argument("--error", help="what a stable error code means and what to do")
    e.add_argument("--request-id", help="explain the audit event of a request id (audit file)")
    e.set_defaults(func=cmd_explain)

    u = sub.add_parser("users", help="revoke departed staff; hash API keys for the directory")
    usub = u.add_subparsers(dest="users_cmd", required=True)
    r = usub.add_parser("revoke", help="refuse a subject on every replica at once")
    r.add_argument("id", help="subject id from the directory")
    r.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    r.add_argument("--by", default="cli", help="who revokes (default cli)")
    r.add_argument("--config", help=CONFIG_HELP)
    rs = usub.add_parser("restore", help="lift a revocation")
    rs.add_argument("id", help="the revoked subject id")
    rs.add_argument("--by", default="cli", help="who restores (default cli)")
    rs.add_argument("--config", help=CONFIG_HELP)
    ls = usub.add_parser("list-revoked", help="who is revoked, when, by whom and why")
    ls.add_argument("--config", help=CONFIG_HELP)
    k = usub.add_parser("hash-key", help="print the directory hash of an API key (new key if none)")
    k.add_argument("key", nargs="?", help="the API key to hash (a new one when left out)")
    k.add_argument("--config", help=CONFIG_HELP)
    u.set_defaults(func=cmd_users)

    a = sub.add_parser("audit", help="verify the audit chain; ship events to a SIEM")
    asub = a.add_subparsers(dest="audit_cmd", required=True)
    v = asub.add_parser(
        "verify",
        help="check an audit file or the Redis stream for tampering",
        description="Check every writer's chain, and the trail against the writer registry.",
        epilog="exit codes: 0 ok; 10 MAC mismatch; 11 link mismatch; 12 sequence conflict; "
        "13 malformed records; 30 bad seal; 20 gap; 24 cut tail (the trail ends before what "
        "its writer acknowledged); 23 missing writer chain (registered, deleted whole); "
        "22 vanished writer (heartbeat stopped, no closing seal); 21 open chain (with "
        "--require-closed or --allow-open); 25 writer not in the registry; 2 usage or I/O "
        "error. The first that applies wins; --json lists them all.",
    )
    v.add_argument("file", nargs="?", help="an audit JSONL file (or give --stream)")
    v.add_argument(
        "--stream", action="store_true", help="verify the Redis stream instead of a file"
    )
    v.add_argument(
        "--require-closed",
        action="store_true",
        help="every writer's chain must end in a seal (after a clean shutdown)",
    )
    v.add_argument(
        "--allow-open",
        type=float,
        metavar="SECONDS",
        help="accept an unsealed chain tail younger than this",
    )
    v.add_argument(
        "--heartbeat-grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a writer whose registry heartbeat is older than this has vanished (default 10)",
    )
    v.add_argument(
        "--json", action="store_true", help="machine-readable report (JSON only on stdout)"
    )
    v.add_argument("--config", help=CONFIG_HELP)
    sh = asub.add_parser("ship", help="consume the Redis stream into a SIEM sink")
    sh.add_argument("--to", required=True, help="sink name from audit settings")
    sh.add_argument("--once", action="store_true", help="ship what is there, then exit")
    sh.add_argument("--max", type=int, help="stop after this many events")
    sh.add_argument("--config", help=CONFIG_HELP)
    a.set_defaults(func=cmd_audit)

    g = sub.add_parser(
        "grants",
        help="request, approve, list and revoke access grants (bound to directory entries)",
    )
    gsub = g.add_subparsers(dest="grants_cmd", required=True)
    gr = gsub.add_parser("request", help="a new grant request, pending until its chain approves")
    gr.add_argument("subject", help="subject id the grant is for (in the directory)")
    gr.add_argument("--type", required=True, help="grade_a, grade_b, level, bulk_export, ...")
    gr.add_argument("--justification", required=True, help="why the grant is needed")
    gr.add_argument("--purpose", help="the business purpose (default: the justification)")
    gr.add_argument("--by", required=True, help="who requests it (a directory subject)")
    gr.add_argument("--department", help="checked against the directory, never trusted")
    gr.add_argument("--level", help="level for level grants")
    gr.add_argument("--hours", type=float, help="duration (default and cap: the chain's)")
    gr.add_argument("--operation", action="append", help="view|modify|delete|export (repeat)")
    gr.add_argument("--route", action="append", help="route template glob (repeat)")
    gr.add_argument("--single-use", action="store_true", help="consumed by the first export")
    gr.add_argument("--config", help=CONFIG_HELP)
    gr.add_argument("--json", action="store_true", help=JSON_LINES_HELP)
    ga = gsub.add_parser(
        "approve", help="one approval (needs access.cli_approvals; the admin API otherwise)"
    )
    ga.add_argument("id", help="the request id (from grants list)")
    ga.add_argument("--by", required=True, help="approver id (a directory subject)")
    ga.add_argument("--department", help="checked against the directory, never trusted")
    ga.add_argument("--comment", help="a note kept with the approval")
    ga.add_argument("--config", help=CONFIG_HELP)
    ga.add_argument("--json", action="store_true", help=JSON_LINES_HELP)
    gj = gsub.add_parser("reject", help="refuse a pending request (needs access.cli_approvals)")
    gj.add_argument("id", help="the request id (from grants list)")
    gj.add_argument("--by", required=True, help="who rejects (a directory subject)")
    gj.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    gj.add_argument("--config", help=CONFIG_HELP)
    gj.add_argument("--json", action="store_true", help=JSON_LINES_HELP)
    gl = gsub.add_parser("list", help="requests and grants, newest first, with their state")
    gl.add_argument("--subject", help="only this subject's requests and grants")
    gl.add_argument(
        "--status",
        choices=(
            "pending", "active", "approved", "rejected", "withdrawn", "expired", "revoked",
            "consumed",
        ),
        help="only requests and grants in this state",
    )  # fmt: skip
    gl.add_argument("--by", help="list as this directory subject sees it")
    gl.add_argument("--config", help=CONFIG_HELP)
    gl.add_argument("--json", action="store_true", help=JSON_LINES_HELP)
    gv = gsub.add_parser("revoke", help="end an active grant (a security admin)")
    gv.add_argument("id", help="the grant id (from grants list)")
    gv.add_argument("--by", required=True, help="who revokes (a security admin)")
    gv.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    gv.add_argument("--config", help=CONFIG_HELP)
    gv.add_argument("--json", action="store_true", help=JSON_LINES_HELP)
    g.set_defaults(func=cmd_grants)

    from gateway.cli_governance import add_governance_commands

    add_governance_commands(sub, _load)
    from gateway.cli_catalog import add_catalog_commands

    add_catalog_commands(sub, _load)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func in (cmd_serve, cmd_demo):
        return _run(args)
    from gateway.audit.oplog import command_logging

    with command_logging():  # stdout is the command's output: warnings go to stderr
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not _is_store_error(exc):
            raise
        print(f"error: the shared store (redis.url) is unreachable: {_one_line(str(exc))}",
              file=sys.stderr)  # fmt: skip
        return 1


def _is_store_error(exc: BaseException) -> bool:
    """`StoreUnavailable`, or a Redis client error that left `state/` untranslated
    (recognised without importing the Redis client here: gateway/state owns it)."""
    return isinstance(exc, StoreUnavailable) or any(
        cls.__module__.startswith("redis.") and cls.__name__ == "RedisError"
        for cls in type(exc).__mro__
    )


if __name__ == "__main__":
    sys.exit(main())
