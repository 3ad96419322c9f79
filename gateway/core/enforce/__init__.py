"""Applying a Decision to response bodies, record by record (see `_enforcer`)."""

from gateway.core.enforce._enforcer import Enforcer, build_enforcer

__all__ = ["Enforcer", "build_enforcer"]
