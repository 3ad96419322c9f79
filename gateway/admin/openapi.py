"""The OpenAPI 3.1 document of the admin API (served at `{prefix}/admin/openapi.json`)."""

from __future__ import annotations

from typing import Any

_ERR = {"$ref": "#/components/responses/Error"}
_CSRF = [
    {
        "name": "X-Requested-With",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "any non-empty value (access.csrf_header); browsers cannot "
        "send it cross-site without a preflight",
    }
]


def _op(summary: str, *, body: str | None = None, roles: str = "", ok: int = 200) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "description": f"Console roles: {roles}." if roles else "",
        "responses": {
            str(ok): {"description": "OK", "content": {"application/json": {}}},
            "400": _ERR,
            "401": _ERR,
            "403": _ERR,
            "404": _ERR,
            "409": _ERR,
        },
    }
    if body is not None:
        op["parameters"] = _CSRF
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


def openapi_document(prefix: str) -> dict[str, Any]:
    base = f"{prefix}/admin"
    text = {"type": "string"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crm-gateway admin API",
            "version": "1",
            "description": "Access requests, approvals, grants, break-glass reviews, lockdown, "
            "revocations and reveal with reason. Authenticated by the gateway's "
            "authenticators; roles and department from the directory. See "
            "docs/admin-api.md and docs/reveal.md.",
        },
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": {
            f"{base}/me": {"get": _op("who am I: directory entry and console roles")},
            f"{base}/requests": {
                "get": _op("requests visible to me (?state=&subject=&kind=)", roles="any"),
                "post": _op("request access", body="NewRequest", roles="requester", ok=201),
            },
            base + "/requests/{id}": {"get": _op("one request", roles="any who may see it")},
            base + "/requests/{id}/approve": {
                "post": _op("approve one step", body="Comment", roles="approver")
            },
            base + "/requests/{id}/reject": {
                "post": _op("reject", body="Reason", roles="approver, security_admin")
            },
            base + "/requests/{id}/withdraw": {
                "post": _op("withdraw my request", body="Reason", roles="the requester")
            },
            f"{base}/grants": {"get": _op("grants (?state=active|expired|revoked|consumed)")},
            base + "/grants/{id}/revoke": {
                "post": _op("revoke a grant", body="Reason", roles="security_admin, the subject")
            },
            f"{base}/break-glass": {
                "post": _op(
                    "open break-glass for myself", body="BreakGlass", roles="requester", ok=201
                )
            },
            f"{base}/reviews": {"get": _op("break-glass review tasks (?state=open|closed)")},
            base + "/reviews/{id}/close": {
                "post": _op(
                    "close a review",
                    body="CloseReview",
                    roles="approver or security_admin of the review department",
                )
            },
            f"{base}/catalog/coverage": {
                "get": _op(
                    "observe mode: routes and fields the catalog lacks, entries never seen",
                    roles="admin.roles",
                )
            },
            f"{base}/lockdown": {
                "get": _op("lockdown state"),
                "post": _op("switch lockdown on", body="Reason", roles="security_admin"),
            },
            f"{base}/lockdown/lift": {
                "post": _op("switch lockdown off", body="Reason", roles="security_admin")
            },
            f"{base}/revocations": {
                "get": _op("revoked subjects", roles="security_admin"),
                "post": _op("revoke a subject", body="Revocation", roles="security_admin", ok=201),
            },
            base + "/revocations/{subject}": {
                "delete": _op("lift a revocation", roles="security_admin")
            },
            # not under /admin: staff call it from the data path (docs/reveal.md)
            f"{prefix}/reveal": {
                "post": {
                    **_op(
                        "reveal one masked value with a reason (查看明文); the handle comes "
                        "from the X-Gateway-Reveal-Handles header of a read sent with "
                        "X-Gateway-Reveal: handles",
                        body="Reveal",
                        roles="none (the policy's obligations.reveal decides)",
                    ),
                    "responses": {
                        "200": {
                            "description": "the value (Cache-Control: no-store)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Revealed"}
                                }
                            },
                        },
                        **dict.fromkeys(("400", "401", "403", "415", "429", "503"), _ERR),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "responses": {
                "Error": {
                    "description": "error with a stable code",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["error", "message"],
                                "properties": {"error": text, "message": text, "details": {}},
                            }
                        }
                    },
                }
            },
            "schemas": {
                "NewRequest": {
                    "type": "object",
                    "required": ["purpose", "justification"],
                    "properties": {
                        "kind": {"enum": ["grant", "clearance", "roles", "account"]},
                        "subject": {**text, "description": "default: me"},
                        "purpose": text,
                        "justification": text,
                        "scope": {
                            "type": "object",
                            "properties": {
                                "grant_type": text,
                                "level": {"enum": ["L0", "L1", "L2", "L3", "L4"]},
                                "operations": {
                                    "type": "array",
                                    "items": {
                                        "enum": ["view", "modify", "delete", "export", "reveal"]
                                    },
                                },
                                "routes": {"type": "array", "items": text},
                                "single_use": {"type": "boolean"},
                            },
                        },
                        "duration_hours": {"type": "number"},
                        "duration_seconds": {"type": "number"},
                        "clearance": {"enum": ["L0", "L1", "L2", "L3", "L4"]},
                        "roles": {"type": "array", "items": text},
                        "entry": {
                            "type": "object",
                            "properties": {
                                "display_name": text,
                                "email": text,
                                "department": text,
                                "roles": {"type": "array", "items": text},
                                "aliases": {"type": "array", "items": text},
                            },
                        },
                    },
                },
                "Comment": {"type": "object", "properties": {"comment": text}},
                "Reason": {
                    "type": "object",
                    "required": ["reason"],
                    "properties": {"reason": text},
                },
                "BreakGlass": {
                    "type": "object",
                    "required": ["justification"],
                    "properties": {"justification": text},
                },
                "CloseReview": {
                    "type": "object",
                    "required": ["outcome", "notes"],
                    "properties": {
                        "outcome": {"enum": ["justified", "unjustified"]},
                        "notes": text,
                    },
                },
                "Revocation": {
                    "type": "object",
                    "required": ["subject", "reason"],
                    "properties": {"subject": text, "reason": text},
                },
                "Reveal": {
                    "type": "object",
                    "required": ["handle", "reason"],
                    "properties": {
                        "handle": text,
                        "reason": {**text, "description": "why (reveal.min_reason characters)"},
                        "record": {**text, "description": "optional: must be the handle's"},
                        "field": {**text, "description": "optional: must be the handle's"},
                    },
                },
                "Revealed": {
                    "type": "object",
                    "required": ["record_id", "field", "category", "level", "value"],
                    "properties": {
                        "record_id": text,
                        "field": text,
                        "category": text,
                        "level": text,
                        "value": {},
                        "request_id": text,
                    },
                },
            },
        },
    }
