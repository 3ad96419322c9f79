"""The gateway's exception tree. Every error maps to an HTTP status and a stable code.

GatewayError
├── ConfigError                  (start-up only; never reaches a client)
├── ClientError                  4xx: the caller did something we refuse
│   ├── ReadWithBody             400 read_with_body          (a GET/HEAD/OPTIONS with a body)
│   ├── Unauthenticated          401 unauthenticated
│   ├── StepUpRequired           401 insufficient_user_authentication (RFC 9470)
│   ├── Forbidden                403 forbidden
│   ├── BlockedByPolicy          403 blocked_by_policy
│   ├── PurposeNotDeclarable     403 purpose_not_declarable  (X-Purpose the roles may not declare)
│   ├── ProtectedFilter          403 protected_field_filter  (filter by a protected field)
│   ├── RecordNotVisible         403 record_not_visible      (write to a hidden record)
│   ├── ProtectedFieldPatch      403 protected_field_patch   (JSON Patch reads a protected field)
│   ├── UncataloguedRoute        403 uncatalogued_route      (record rules uncheckable)
│   ├── DocumentWithheld         403 document_withheld       (a document above the caller's view)
│   ├── NotFound                 404 not_found
│   │   └── HiddenRecord         404 not_found               (a hidden record, as if absent)
│   ├── MethodNotAllowed         405 method_not_allowed      (TRACE, CONNECT)
│   ├── NotAcceptable            406 not_acceptable          (only undeclared types accepted)
│   ├── RequestTimeout           408 request_timeout
│   ├── MaskedValueWrite         409 masked_value_write
│   ├── RequestTooLarge          413 request_too_large
│   ├── UriTooLong               414 uri_too_long
│   ├── UnsupportedMediaType     415 unsupported_media_type  (uninspectable write body)
│   ├── UnsupportedUpgrade       426/501 upgrade_refused
│   ├── EntryValidationFailed    422 entry_validation_failed
│   ├── RateLimited              429 rate_limited
│   └── HeaderTooLarge           431 request_header_too_large
└── ServerError                  5xx: something between us and the CRM failed
    ├── UpstreamUnavailable      502 upstream_unavailable
    ├── UpstreamTimeout          504 upstream_timeout
    ├── ResponseTooLarge         502 response_too_large
    ├── ResponseRewriteFailed    502 response_rewrite_failed  (fail closed)
    │   └── UndeclaredResponseType  502 undeclared_response_type (a type the route does not declare)
    ├── PolicyUnavailable        503 policy_unavailable       (fail closed)
    └── AuditUnavailable         503 audit_unavailable        (strict audit mode)

This module is a leaf: it imports nothing from the gateway.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        if request_id:
            body["request_id"] = request_id
        return body

    def audit_text(self) -> str:
        """What the audit event says about this error (the code; some add their reason)."""
        return self.code


class ConfigError(GatewayError):
    code = "config_error"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class StartupError(GatewayError):
    """Something the gateway needs before it may serve (Redis, a key) is unreachable:
    it refuses to start, with one line naming the setting, rather than serve blind."""

    code = "startup_error"


class ClientError(GatewayError):
    status = 400
    code = "bad_request"


class ReadWithBody(ClientError):
    """A GET, HEAD or OPTIONS with a body on a sensitive route: a filter or query the
    search guard cannot have read (Elasticsearch-style bodies, GraphQL in a GET)."""

    code = "read_with_body"


class Unauthenticated(ClientError):
    status = 401
    code = "unauthenticated"


class StepUpRequired(ClientError):
    status = 401
    code = "insufficient_user_authentication"

    def __init__(
        self, message: str, *, acr_values: str | None = None, max_age: int | None = None
    ) -> None:
        super().__init__(message)
        self.acr_values = acr_values
        self.max_age = max_age


class Forbidden(ClientError):
    status = 403
    code = "forbidden"


class BlockedByPolicy(ClientError):
    status = 403
    code = "blocked_by_policy"


class PurposeNotDeclarable(Forbidden):
    """A declared purpose (X-Purpose) the caller's roles may not declare: refused, not
    quietly ignored (the caller would otherwise get the view without it and not know).
    The details name the purposes the caller may declare."""

    code = "purpose_not_declarable"


class ProtectedFilter(Forbidden):
    """Filtering, sorting or searching by a category above the caller's clear level."""

    code = "protected_field_filter"


class ProtectedFieldPatch(Forbidden):
    """A JSON Patch operation that reads a field above the caller's clear level: `test`
    (the patch fails unless the field equals a guess) or `copy`/`move` from it."""

    code = "protected_field_patch"


class RecordNotVisible(Forbidden):
    """A write or delete aimed at a record the caller's record rules hide.

    The caller gets one answer whatever the reason (hidden by a grade or tier rule,
    absent, unreadable): naming the rule would tell them the record's grade or
    that it exists. The reason goes to the audit event (`audit_text`)."""

    code = "record_not_visible"
    public = "this record does not exist or is not visible to the caller"

    def to_body(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.public}
        if request_id:
            body["request_id"] = request_id
        return body

    def audit_text(self) -> str:
        return f"{self.code}: {self.message}"[:300]


class NotFound(ClientError):
    status = 404
    code = "not_found"


class HiddenRecord(NotFound):
    """A record the path names that the record rules hide: answered exactly like a
    record the CRM does not have (404 not_found, the same body; or the CRM's own
    answer for one, `absent` = (status, body, the headers of the response it stands
    in for), when the catalog declares it), so an id says nothing about whether such
    a customer exists; the audit event says why."""

    def __init__(
        self, message: str, absent: tuple[int, bytes, list[tuple[str, str]]] | None = None
    ) -> None:
        super().__init__(message)
        self.absent = absent

    def audit_text(self) -> str:
        return "not_found: the path's record is hidden by the record rules"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"


class NotAcceptable(ClientError):
    status = 406
    code = "not_acceptable"


class RequestTimeout(ClientError):
    status = 408
    code = "request_timeout"


class MaskedValueWrite(ClientError):
    status = 409
    code = "masked_value_write"


class RequestTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class UriTooLong(ClientError):
    status = 414
    code = "uri_too_long"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class HeaderTooLarge(ClientError):
    status = 431
    code = "request_header_too_large"


class UnsupportedUpgrade(ClientError):
    status = 501
    code = "upgrade_refused"


class EntryValidationFailed(ClientError):
    status = 422
    code = "entry_validation_failed"


class RateLimited(ClientError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(GatewayError):
    status = 500
    code = "internal_error"


class UpstreamUnavailable(ServerError):
    status = 502
    code = "upstream_unavailable"


class UpstreamTimeout(ServerError):
    status = 504
    code = "upstream_timeout"


class ResponseTooLarge(ServerError):
    status = 502
    code = "response_too_large"


class ResponseRewriteFailed(ServerError):
    status = 502
    code = "response_rewrite_failed"


class PolicyUnavailable(ServerError):
    status = 503
    code = "policy_unavailable"


class AuditUnavailable(ServerError):
    status = 503
    code = "audit_unavailable"


class UndeclaredResponseType(ResponseRewriteFailed):
    """The CRM answered a sensitive route with a media type the route does not declare."""

    code = "undeclared_response_type"


class DocumentWithheld(BlockedByPolicy):
    """A rendered document (catalog `document:`) carries a level the caller does not
    see in clear, or a record rule could hide the record it shows: a document cannot
    be masked, so it is withheld whole; the record stays readable, masked, as data."""

    code = "document_withheld"


class UncataloguedRoute(BlockedByPolicy):
    """The decision has record conditions (grade, tier) this response cannot be
    checked against: customer data outside any identifiable record, or records
    without the facts the rules need. Blocked, never shown; the reason names the route."""

    code = "uncatalogued_route"
