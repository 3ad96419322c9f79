"""Validation of customer bodies sent to the demo CRM's write routes.

A legacy CRM rejects malformed writes with 400; the gateway's write-path tests
need that behaviour to tell "the gateway blocked it" from "the CRM refused it".
"""

from __future__ import annotations

from typing import Any

from gateway.demo.data import CUSTOMER_KEYS

_NUMBER_KEYS = frozenset({"annual_income", "total_assets", "balance"})
_STRUCTURED_KEYS = frozenset({"holdings", "consent"})
_STRING_KEYS = frozenset(CUSTOMER_KEYS) - _NUMBER_KEYS - _STRUCTURED_KEYS - {"id"}
_REQUIRED_ON_CREATE = ("name",)


class WriteError(ValueError):
    """The body is not an acceptable customer; the message says why (answered as 400)."""


def _check_holdings(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise WriteError("holdings must be a list of objects")


def _check_consent(value: Any) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
        raise WriteError("consent must be an object of booleans")


def validate_customer_body(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Return `body` if every key is a known customer field with a value of the right type.

    `partial` (PATCH) allows any subset; otherwise `name` is required. The id is
    assigned by the CRM and cannot be written.
    """
    if "id" in body:
        raise WriteError("id is assigned by the CRM and cannot be written")
    unknown = sorted(set(body) - set(CUSTOMER_KEYS))
    if unknown:
        raise WriteError(f"unknown fields: {', '.join(unknown)}")
    if not partial:
        missing = [k for k in _REQUIRED_ON_CREATE if k not in body]
        if missing:
            raise WriteError(f"missing required fields: {', '.join(missing)}")
    for key, value in body.items():
        if key in _STRING_KEYS and not isinstance(value, str):
            raise WriteError(f"{key} must be a string")
        if key in _NUMBER_KEYS and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise WriteError(f"{key} must be a number")
    if "holdings" in body:
        _check_holdings(body["holdings"])
    if "consent" in body:
        _check_consent(body["consent"])
    return body
