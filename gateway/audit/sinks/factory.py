"""Build a sink from settings by name: stdout, file, syslog, cef, hec, redis."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.audit.sinks.base import Sink
from gateway.audit.sinks.hec import HecSink
from gateway.audit.sinks.jsonl import FileSink, StdoutSink
from gateway.audit.sinks.redis_stream import RedisStreamSink
from gateway.audit.sinks.syslog import SyslogSink, client_context
from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.state.audit_stream import AuditStream

SINK_NAMES = ("stdout", "file", "syslog", "cef", "hec", "redis")


def _opt_path(settings: Settings, path: Path | None) -> str | None:
    return str(settings.path(path)) if path is not None else None


def build_sink(settings: Settings, name: str) -> Sink:
    cfg = settings.audit
    if name == "stdout":
        return StdoutSink()
    if name == "file":
        return FileSink(
            settings.path(cfg.file), max_bytes=cfg.file_max_bytes, backups=cfg.file_backups
        )
    if name in ("syslog", "cef"):
        ctx = None
        if cfg.syslog_tls:
            ctx = client_context(
                _opt_path(settings, cfg.syslog_ca_file),
                _opt_path(settings, cfg.syslog_cert_file),
                _opt_path(settings, cfg.syslog_key_file),
            )
        return SyslogSink(
            cfg.syslog_host,
            cfg.syslog_port,
            ssl_context=ctx,
            app_name=cfg.syslog_app_name,
            sd_id=cfg.syslog_sd_id,
            cef=(cfg.cef_vendor, cfg.cef_product) if name == "cef" else None,
        )
    if name == "hec":
        token = os.environ.get(cfg.hec_token_env, "")
        if not cfg.hec_url or not token:
            raise ConfigError(f"the hec sink needs audit.hec_url and {cfg.hec_token_env}")
        return HecSink(
            cfg.hec_url,
            token,
            ack=cfg.hec_ack,
            ack_timeout=cfg.hec_ack_timeout,
            sourcetype=cfg.hec_sourcetype,
            index=cfg.hec_index,
            verify_tls=cfg.hec_verify_tls,
        )
    if name == "redis":
        if not settings.redis.url:
            raise ConfigError("the redis sink needs redis.url")
        return RedisStreamSink(
            AuditStream.open(settings.redis.url, cfg.stream, maxlen=cfg.stream_maxlen)
        )
    raise ConfigError(f"unknown audit sink {name!r} (known: {', '.join(SINK_NAMES)})")
