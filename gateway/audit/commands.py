"""What `crm-gateway audit verify|ship` run, returning a process exit code.

The CLI (owned elsewhere) parses arguments and calls these; keeping them here
means the CLI needs no knowledge of chains, streams or sinks.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

import orjson

from gateway.audit.ship import ship
from gateway.audit.verify import VerifyReport, verify_file, verify_stream
from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.state.audit_stream import StreamUnavailable

USAGE_OR_IO_ERROR = 2


def verify_command(
    settings: Settings,
    file: Path | None,
    *,
    require_closed: bool = False,
    allow_open: float | None = None,
    heartbeat_grace: float = 10.0,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    """`audit verify FILE` (file given) or `audit verify --stream` (file None)."""
    stream = out or sys.stdout
    try:
        report: VerifyReport
        if file is not None:
            report = verify_file(
                settings,
                file,
                require_closed=require_closed,
                allow_open=allow_open,
                heartbeat_grace=heartbeat_grace,
            )
        else:
            report = asyncio.run(
                verify_stream(
                    settings,
                    require_closed=require_closed,
                    allow_open=allow_open,
                    heartbeat_grace=heartbeat_grace,
                )
            )
    except (OSError, StreamUnavailable, ConfigError) as exc:
        if as_json:  # JSON only on stdout, errors included
            error = {"ok": False, "exit_code": USAGE_OR_IO_ERROR, "error": str(exc)}
            stream.write(orjson.dumps(error).decode() + "\n")
        else:
            print(f"audit verify: {exc}", file=sys.stderr)
        return USAGE_OR_IO_ERROR
    if as_json:
        stream.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        stream.write(report.summary() + "\n")
    return report.exit_code


def ship_command(
    settings: Settings, sink_name: str, *, once: bool = False, max_events: int | None = None
) -> int:
    """`audit ship --to SINK [--once] [--max N]`: runs until interrupted (Ctrl-C/SIGTERM)."""
    try:
        stats = asyncio.run(ship(settings, sink_name, once=once, max_events=max_events))
    except KeyboardInterrupt:
        return 0
    except (ConfigError, StreamUnavailable, OSError) as exc:
        print(f"audit ship: {exc}", file=sys.stderr)
        return USAGE_OR_IO_ERROR
    print(
        f"shipped {stats.shipped} event(s) in {stats.batches} batch(es); "
        f"claimed {stats.claimed}, dead-lettered {stats.malformed}, "
        f"sink failures {stats.sink_failures}"
    )
    return 0 if stats.sink_failures == 0 else 1
