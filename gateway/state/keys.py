"""Every Redis key and channel the gateway uses, in one place.

All keys share the prefix so one Redis can serve several gateways (set
`prefix` per deployment). Modules of `gateway.state` build keys only here.
"""

from __future__ import annotations

PREFIX = "crmgw"


def key(*parts: str) -> str:
    return ":".join((PREFIX, *parts))


# Revocation (identity): a hash of revoked subject ids, a version counter, a channel.
REVOKED = key("revoked")
REVOCATION_VERSION = key("revoked", "version")
REVOCATION_CHANNEL = key("revoked", "events")

# The subject directory, when shared through Redis: one JSON document, a version, a channel.
DIRECTORY = key("directory")
DIRECTORY_VERSION = key("directory", "version")
DIRECTORY_CHANNEL = key("directory", "events")


# Rate limits (request guard).
def ratelimit(scope: str, ident: str) -> str:
    return key("rl", scope, ident)


# Grants and approvals (policy input).
GRANTS = key("grants")
GRANTS_VERSION = key("grants", "version")
GRANTS_CHANNEL = key("grants", "events")

# Break-glass review tasks (same shape as grants: hash, version, channel), and the
# one-shot markers that make "overdue" alert once across every replica.
REVIEWS = key("reviews")
REVIEWS_VERSION = key("reviews", "version")
REVIEWS_CHANNEL = key("reviews", "events")


def review_overdue_alerted(review_id: str) -> str:
    return key("reviews", "overdue", review_id)


# Lockdown (应急预案): one JSON document (the active profile, or absent), a version, a channel.
LOCKDOWN = key("lockdown")
LOCKDOWN_VERSION = key("lockdown", "version")
LOCKDOWN_CHANNEL = key("lockdown", "events")

# Audit stream (events for the SIEM shipper).
AUDIT_STREAM = key("audit")
AUDIT_GROUP = "shippers"


# Anomaly counters.
def anomaly(kind: str, subject: str, window: str) -> str:
    return key("anomaly", kind, subject, window)


# Subjects throttled by the anomaly detector: a sorted set, score = until (epoch seconds).
ANOMALY_THROTTLED = key("anomaly", "throttled")


# Decision-input log (policy impact): per-hour hashes digest -> count, one document per digest.
def decision_inputs(hour: int) -> str:
    return key("dinputs", str(hour))


def decision_input_doc(digest: str) -> str:
    return key("dinput", digest)


# Change notifications (policy/config reloads).
CHANGES_CHANNEL = key("changes")


# Audit entries a shipper could not parse (kept, not lost).
def audit_dead_letter(stream: str) -> str:
    return f"{stream}:dlq"


# Reveal with reason: the one-shot marker that makes a tripped reveal limit alert
# once per subject and window across every replica (the counts are `ratelimit("reveal", id)`).
def reveal_limit_alerted(subject: str, window: str) -> str:
    return key("reveal", "alerted", subject, window)


# Console sessions (admin web pages): one JSON document per session, keyed by the
# sha256 of the cookie value (a Redis dump holds no usable cookie), with a TTL.
def console_session(digest: str) -> str:
    return key("console", "session", digest)


# Observe mode (catalog coverage): templates seen, request counts, per-template counters.
OBSERVED_ROUTES = key("observed", "routes")
OBSERVED_REQUESTS = key("observed", "requests")


def observed_route(template: str) -> str:
    return key("observed", "route", template)
