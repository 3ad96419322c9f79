"""Audit: one tamper-evident event per access, delivered at least once to the SIEM.

- `event`     builds the canonical OCSF API Activity event from allow-listed keys
- `chain`, `seal`  per-writer HMAC chain with forward-evolving key; Ed25519 seals
- `emitter`   `AuditEmitter`: emit() in the request, batched Redis Stream writes,
              fsynced spool + circuit breaker, durable writes for strict levels
- `verify`    chain verification of a file or the stream (`audit verify`)
- `ship`      consumer-group shipper from the stream to a sink (`audit ship`)
- `sinks/`    JSON lines, Redis Stream, RFC 5424/5425 syslog, CEF, Splunk HEC
- `oplog`     structlog for operational logs (never audit payloads)
- `commands`  the CLI entry points, returning exit codes
"""
