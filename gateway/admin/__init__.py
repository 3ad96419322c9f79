"""Admin endpoints under `/_gateway/`: answered by the gateway, never forwarded to the CRM."""

from gateway.admin.routes import add_routes

__all__ = ["add_routes"]
