"""The security team's web pages under `{prefix}/admin/ui/` (issue 17, item 10).

Server-rendered (Jinja2, autoescaped), bilingual (zh, en), no build step and no
inline script or style: one CSS and one JS file are served from the package. The
pages call the same services as the JSON admin API (`Governance`,
`AccessService`, the review module, the revocation list); they add sessions
(`sessions.py`), CSRF tokens and an Origin check (`guard.py`) and nothing else.
"""

from gateway.admin.console.routes import add_console_routes

__all__ = ["add_console_routes"]
