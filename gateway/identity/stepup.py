"""Step-up authentication (RFC 9470): tell the client which assurance is missing.

API clients get `401` with `WWW-Authenticate: Bearer error="insufficient_user_authentication"`
naming the `acr_values` and/or `max_age` the policy asked for; browsers (which
cannot act on that header) are redirected to the configured sign-in page with
the same parameters and a return URL.
"""

from __future__ import annotations

from urllib.parse import urlencode

from gateway.errors import StepUpRequired


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def step_up_challenge(exc: StepUpRequired, realm: str) -> dict[str, str]:
    """Response headers for a step-up refusal to an API client."""
    params = [
        f"realm={_quoted(realm)}",
        'error="insufficient_user_authentication"',
        f"error_description={_quoted(exc.message)}",
    ]
    if exc.acr_values:
        params.append(f"acr_values={_quoted(exc.acr_values)}")
    if exc.max_age is not None:
        params.append(f"max_age={int(exc.max_age)}")
    return {"WWW-Authenticate": "Bearer " + ", ".join(params)}


def wants_html(accept: str) -> bool:
    """A browser navigation (HTML preferred over JSON), not an API client."""
    return "text/html" in accept.lower()


def step_up_redirect(exc: StepUpRequired, redirect: str, return_to: str) -> str | None:
    """Where to send a browser for step-up, or None when no redirect is configured."""
    if not redirect:
        return None
    query: dict[str, str] = {"return_to": return_to}
    if exc.acr_values:
        query["acr_values"] = exc.acr_values
    if exc.max_age is not None:
        query["max_age"] = str(int(exc.max_age))
    sep = "&" if "?" in redirect else "?"
    return f"{redirect}{sep}{urlencode(query)}"
