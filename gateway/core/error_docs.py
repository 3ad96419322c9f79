"""What every stable error code means and what to do about it.

One line per code the gateway can answer with (`gateway.errors` and the stage
errors built on it). `docs/errors.md` is rendered from this table
(`python -m gateway.core.error_docs > docs/errors.md`), `crm-gateway explain --error
CODE` and `explain --request-id ID` print the line, and a unit test walks every
`GatewayError` subclass so a new code cannot ship undocumented.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorDoc:
    code: str
    status: str  # "403", or "426/501" where the status depends on the case
    meaning: str
    action: str


_DOCS = (
    ErrorDoc("bad_request", "400", "The request is malformed for this gateway (a write body "
             "that does not parse as its Content-Type, a compressed body on a guarded write).",
             "Fix the request; the message names what was wrong."),
    ErrorDoc("bad_path", "400", "The path is ambiguous or hostile (encoded `/` or `\\`, double "
             "encoding, control characters, dot segments behind parameters, invalid UTF-8).",
             "Send the canonical path; `crm-gateway explain --request` shows how it is read."),
    ErrorDoc("ambiguous_dispatch", "400", "On a page chosen by a query parameter "
             "(`legacy.do?method=detail`), that parameter is given twice, spelled another "
             "way (`Method`, `method[]`, `method%00`) or differs from the CRM's value in case "
             "only: the CRM might serve another page than the one the gateway enforces.",
             "Send the parameter once, exactly as the catalog's `query:` names it."),
    ErrorDoc("read_with_body", "400", "A GET, HEAD or OPTIONS with a body on a sensitive "
             "route: a filter or query in it (Elasticsearch-style search bodies, GraphQL in a "
             "GET) would reach the CRM unchecked by the search and filter guard.",
             "Send reads without a body; put filters in the query string."),
    ErrorDoc("method_override_refused", "400", "A method override (`X-HTTP-Method-Override`, "
             "`_method=`) was sent and `guard.method_override` is `reject`.",
             "Send the real method."),
    ErrorDoc("unauthenticated", "401", "No valid credential (missing, unknown, expired or "
             "malformed API key, token or client certificate).",
             "Sign in again or use a valid key."),
    ErrorDoc("insufficient_user_authentication", "401", "The data needs a stronger sign-in "
             "(MFA) than the caller used (RFC 9470 step-up).",
             "Sign in with MFA; the challenge carries the acr_values to ask for."),
    ErrorDoc("forbidden", "403", "The policy denies the request (no role permits the "
             "operation, break-glass without justification, ...).",
             "`crm-gateway explain --user ID --request 'METHOD PATH'` shows the reason; ask "
             "for a grant if the work needs it."),
    ErrorDoc("purpose_not_declarable", "403", "The declared purpose (X-Purpose) is not one "
             "the caller's roles may declare (the policy's `purposes` table); the gateway "
             "refuses it rather than answer with the view of no purpose.",
             "Declare one of the purposes in `details.declarable`, or none; a purpose the "
             "work needs is added to the role's list by the security team."),
    ErrorDoc("blocked_by_policy", "403", "The response held data the decision blocks (an "
             "action `block`, or a bulk export past its limit).",
             "Ask for less (page, fields) or for a bulk_export grant."),
    ErrorDoc("protected_field_filter", "403", "The request filters, sorts or searches by a "
             "field above the caller's clear level (the reason names the parameter and the "
             "category, never the value); the policy's lookup does not allow it (not exact, "
             "or not a lookup category).",
             "Search by fields you see in clear; customer lookups by an exact number need the "
             "role's `lookup` in the policy (rego/data.json)."),
    ErrorDoc("protected_field_patch", "403", "A JSON Patch operation reads a field above the "
             "caller's clear level: `test` (the patch fails unless the field equals a guess, "
             "an oracle) or `copy`/`move` from it (its value lands in another field); the "
             "reason names the operation, the pointer and the category, never a value.",
             "Patch only fields you see in clear; send writes to protected fields as a caller "
             "cleared for them."),
    ErrorDoc("record_not_visible", "403", "A write, delete or reveal aimed at a record the "
             "caller's record rules hide (grade, tier, assignment, consent), in its path or "
             "named in its body (an upsert id, a bulk list, a batch operation's path), that "
             "does not exist, or whose facts cannot be read: one message for all of them (the "
             "reason would tell the record's grade or its existence); the audit event has it.",
             "Ask for the grant that shows the record (e.g. grade_a)."),
    ErrorDoc("subject_revoked", "403", "The caller's access was revoked (departed staff, "
             "anomaly detector).", "The security team restores it: `crm-gateway users "
             "restore ID`."),
    ErrorDoc("credential_out_of_scope", "403", "The API key is limited to other routes or "
             "methods.", "Use a key issued for this route."),
    ErrorDoc("network_not_allowed", "403", "The caller may not call from this address "
             "(allowed_networks, network rules).", "Call from an allowed network or VPN."),
    ErrorDoc("outside_working_hours", "403", "The caller's access is limited to working "
             "hours.", "Try within hours, or ask for an oncall grant."),
    ErrorDoc("partner_access_expired", "403", "The partner's access period has ended.",
             "The business department renews the partner's end date."),
    ErrorDoc("not_found", "404", "No such gateway endpoint (admin paths are never "
             "forwarded), or no such record: on routes whose record rules may drop records "
             "a record the rules hide answers exactly like one the CRM does not have (the "
             "CRM's own 404 body replaced, HEAD read as GET), so an id does not tell whether "
             "a customer exists; the audit event says which it was.",
             "Check the path; for a record you should see, ask for the grant that shows it."),
    ErrorDoc("method_not_allowed", "405", "The method is refused on this route (TRACE, "
             "CONNECT).", "Use GET/POST/PUT/PATCH/DELETE."),
    ErrorDoc("not_acceptable", "406", "The client asked for a media type the route does not "
             "declare.", "Accept one of the route's declared types (JSON, CSV, ...)."),
    ErrorDoc("request_timeout", "408", "The request body arrived too slowly.",
             "Send the body without pauses."),
    ErrorDoc("masked_value_write", "409", "A write carried a masked placeholder "
             "(`138****5678`, `王**`, `[已脱敏]`) that would overwrite the real value.",
             "Send only the fields you change, with real values."),
    ErrorDoc("grant_state", "409", "A grant command does not fit the grant's state (approving a "
             "revoked grant, an approver from a department the chain does not need).",
             "Check the grant with `crm-gateway grants list`."),
    ErrorDoc("request_too_large", "413", "The request body exceeds "
             "`limits.max_request_body`.", "Send less, or raise the limit."),
    ErrorDoc("uri_too_long", "414", "The request line is longer than the gateway accepts.",
             "Move criteria into a POST search body."),
    ErrorDoc("unsupported_media_type", "415", "A write body the guard cannot inspect (type "
             "unknown, or not parsable) on a sensitive route.",
             "Send JSON, form or multipart; declare its Content-Type."),
    ErrorDoc("entry_validation_failed", "422", "Customer entry validation (客户录入) failed: "
             "a required field is missing or a value has the wrong format.",
             "Fix the fields the message names."),
    ErrorDoc("upgrade_refused", "426/501", "A protocol upgrade (WebSocket) on a route that "
             "does not allow it.", "Use plain HTTP, or allow `websocket` on the route."),
    ErrorDoc("rate_limited", "429", "Too many requests: per-subject or per-route limits, "
             "failed sign-ins, protected lookups beyond the policy's `lookup` limit, reveals "
             "beyond the policy's `reveal` limit (the security team is alerted), or an "
             "anomaly throttle.", "Wait `Retry-After` seconds."),
    ErrorDoc("request_header_too_large", "431", "A request header (or all of them) exceeds "
             "the gateway's limit.", "Send smaller headers (cookies)."),
    ErrorDoc("internal_error", "500", "An unexpected error inside the gateway; no body was "
             "passed.", "Report the request id to the operators; the audit event has it."),
    ErrorDoc("upstream_unavailable", "502", "The CRM could not be reached or broke the "
             "connection.", "Retry later; operators check the CRM."),
    ErrorDoc("upstream_timeout", "504", "The CRM did not answer within the upstream "
             "timeout.", "Retry later; operators check the CRM's latency."),
    ErrorDoc("response_too_large", "502", "The CRM's response exceeds the buffer limits of a "
             "sensitive route.", "Ask for smaller pages."),
    ErrorDoc("response_rewrite_failed", "502", "The CRM's response could not be inspected and "
             "masked (parse error, unknown encoding): blocked, fail closed.",
             "Operators check the route's catalog entry and the CRM's format."),
    ErrorDoc("undeclared_response_type", "502", "The CRM answered a sensitive route with a "
             "media type the route does not declare: blocked.",
             "The security team declares the type in the catalog, if it is safe to inspect; "
             "a rendered document (PDF) is declared with the level it carries (`document:`)."),
    ErrorDoc("policy_unavailable", "503", "The policy engine (OPA) did not answer in time or "
             "answered something malformed: denied, fail closed.",
             "Operators check OPA; the gateway retries on the next request."),
    ErrorDoc("audit_unavailable", "503", "Strict audit mode: the audit event could not be "
             "made durable before data would leave.", "Operators check Redis/the spool."),
    ErrorDoc("identity_provider_unavailable", "503", "The identity provider (JWKS, "
             "introspection) could not be reached.", "Retry later; operators check the IdP."),
    ErrorDoc("revocation_list_stale", "503", "The shared revocation list is older than "
             "allowed: every caller is refused until it refreshes.",
             "Operators check Redis."),
    ErrorDoc("config_error", "-", "Start-up only: the configuration is invalid (never "
             "reaches a client).", "`crm-gateway check-config FILE` names the key."),
    ErrorDoc("startup_error", "-", "Start-up only: something the gateway needs (Redis, a key) "
             "is unreachable.", "Fix the setting the message names."),
    ErrorDoc("document_withheld", "403", "The route answers with a rendered document (a PDF, "
             "an image, a spreadsheet) that carries data of a level this caller does not see "
             "in clear, or a record rule could hide the record in it. A document cannot be "
             "masked, so it is withheld whole.",
             "Read the same record through its data route (JSON, masked as the policy says), "
             "or ask for a grant that shows the document's level in clear; the catalog's "
             "`document:` names the level."),
    ErrorDoc("uncatalogued_route", "403", "The decision has record conditions (grade, tier) "
             "that this response cannot be checked against: customer data outside any "
             "identifiable record, records without the facts the rules test, or a CSV "
             "export whose header row has no column for them (refused before any byte).",
             "Add the route to the catalog with its records and facts (`records`, `record`; "
             "`record: {grade: null}` for kinds without grades) and declare what it sends "
             "beside them (`side:` of the record, `mask: strict` or `omit: true`)."),
    ErrorDoc("self_approval", "403", "Nobody approves their own access request.",
             "Another approver of the required department approves it."),
    ErrorDoc("wrong_department", "403", "The approver is not in the department this step "
             "of the chain needs.", "An approver of that department approves it."),
    ErrorDoc("own_department", "403", "The approver's own department benefits from the "
             "request, and the configuration forbids that.",
             "An approver of another department approves it."),
    ErrorDoc("not_an_approver", "403", "The caller has no approver role.",
             "Ask the security team for the approver role."),
    ErrorDoc("not_in_directory", "403", "The named person is not in the directory.",
             "Add the person to the directory (account approval) first."),
    ErrorDoc("console_role_required", "403", "The admin API call needs a console role "
             "(requester, approver, security admin, auditor).",
             "Ask the security team for the role."),
    ErrorDoc("already_approved", "403", "This approver already approved this request.",
             "Nothing to do; the next step of the chain approves."),
    ErrorDoc("request_expired", "409", "The access request expired before it was approved.",
             "File a new request."),
    ErrorDoc("out_of_order", "409", "The chain's steps are approved in order; an earlier "
             "step is still open.", "Wait for the earlier step's approver."),
    ErrorDoc("grant_consumed", "403", "A single-use export grant was already used.",
             "Request a new export grant."),
    ErrorDoc("csrf_header_required", "403", "State-changing admin calls need the CSRF "
             "header a browser cannot send cross-site.", "Send the header the admin API "
             "documents (docs/admin-api.md)."),
    ErrorDoc("reveal_reason_required", "400", "A reveal (`POST /_gateway/reveal`) without a "
             "reason a reviewer can read: shorter than `reveal.min_reason` characters, or "
             "fewer than two letters.", "Say why the value is needed (客户来电核实 / customer "
             "called to verify); the reason is audited."),
    ErrorDoc("reveal_handle_invalid", "403", "The reveal handle was not sealed by this "
             "gateway, was altered or truncated, or names a route or field the catalog no "
             "longer classifies that way.", "Reload the record with `X-Gateway-Reveal: "
             "handles` and use a handle from that response as it is."),
    ErrorDoc("reveal_handle_expired", "403", "The reveal handle is older than "
             "`reveal.handle_ttl` (5 minutes by default).",
             "Reload the record to get a new handle."),
    ErrorDoc("reveal_not_yours", "403", "The reveal handle was issued to another caller, "
             "or to another credential or session of the same caller.",
             "Ask for the record yourself; handles cannot be passed on."),
    ErrorDoc("reveal_not_allowed", "403", "The policy, decided again for this reveal, does "
             "not let the caller reveal this category now (no reveal rule for the role or "
             "purpose, an L4 value without a reveal grant, lockdown, a denial), or the value "
             "is of the top level (credentials), which is never revealed.",
             "`crm-gateway explain --user ID --route R` shows the reveal line; an L4 value "
             "needs a `reveal` grant (docs/reveal.md)."),
    ErrorDoc("console_session_required", "401", "A console page was opened without a live "
             "session: never signed in, idle or absolute timeout, signed out, or the subject "
             "(or its credential) was revoked or left the directory, which ends its sessions.",
             "Sign in again on the console's login page (docs/console.md)."),
    ErrorDoc("console_csrf_refused", "403", "A console form was posted without this "
             "session's CSRF token (a stale page, another session's form, or a forged post).",
             "Reload the page and submit again; the refusal is audited."),
    ErrorDoc("console_origin_refused", "403", "A console form (sign-in included) was posted "
             "with an Origin other than the console's own, or none.",
             "Use the console's own pages; behind a proxy set listen.public_url."),
    ErrorDoc("observe_off", "404", "The catalog coverage report was asked for while observe "
             "mode is off.", "Set `classification.observe.enabled: true` and let traffic "
             "through for a while (README: running it in front of your own CRM)."),
    ErrorDoc("observations_unavailable", "503", "Observe mode is on, but its store (Redis) "
             "did not answer the coverage report.", "Check `redis.url` and Redis; the "
             "gateway keeps serving while observations cannot be recorded."),
)  # fmt: skip

ERROR_DOCS: dict[str, ErrorDoc] = {d.code: d for d in _DOCS}


def doc_line(code: str) -> str:
    doc = ERROR_DOCS.get(code)
    if doc is None:
        return f"{code}: not a gateway error code (see docs/errors.md)"
    return f"{doc.status} {doc.code}: {doc.meaning} What to do: {doc.action}"


def render_markdown() -> str:
    lines = [
        "# Error codes",
        "",
        'Every refusal is a JSON body `{"error": CODE, "message": ..., "request_id": ...}`',
        "with one of these stable codes, and an audit event whose `decision.reason` carries",
        "the code. `crm-gateway explain --error CODE` prints a line of this table;",
        "`crm-gateway explain --request-id ID` finds the audit event and explains it;",
        "`crm-gateway explain --user ID --request 'GET /path?query'` replays the request-side",
        "checks offline and says which one refuses, and why.",
        "",
        "Generated from `gateway/core/error_docs.py` (`python -m gateway.core.error_docs`);",
        "a unit test keeps it complete and current.",
        "",
        "| status | code | meaning | what to do |",
        "|---|---|---|---|",
    ]
    for doc in _DOCS:
        cells = (doc.status, f"`{doc.code}`", doc.meaning, doc.action)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
