"""BottleCRM settings for end-to-end tests: SQLite file, no Redis, no outbound mail.

Runs inside the BottleCRM virtualenv (Python 3.12), never in the gateway's.
Everything the packaged `crm.settings` hard-codes for production (PostgreSQL,
a Redis Celery broker, server.log in the working directory) is redirected to
`BOTTLECRM_DATA_DIR`, so one test session owns one throwaway directory.

Tenant isolation then rests on BottleCRM's ORM filters only: its PostgreSQL
row-level-security migrations skip themselves on SQLite.
"""

import os
from pathlib import Path
from typing import Any

from crm.settings import *  # noqa: F403
from crm.settings import LOGGING, REST_FRAMEWORK
from django.db.backends.signals import connection_created

DATA_DIR = Path(os.environ.get("BOTTLECRM_DATA_DIR", "."))

DEBUG = os.environ.get("CRM_DEBUG", "False").lower() == "true"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SECRET_KEY = os.environ.get(
    "BOTTLECRM_SECRET_KEY", "e2e-only-secret-key-not-for-production-0123456789abcdef"
)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATA_DIR / "bottlecrm.sqlite3"),
        # The gunicorn threads share one file; wait for the writer rather than fail.
        "OPTIONS": {"timeout": 20},
    }
}

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"

# Console only: no mail leaves the machine, and the sign-in codes land in the server log.
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}

MEDIA_ROOT = str(DATA_DIR / "media")
MEDIA_URL = "/media/"
# WhiteNoise warns on every request when STATIC_ROOT is missing; nothing is served from it.
STATIC_ROOT = str(DATA_DIR / "static")
os.makedirs(STATIC_ROOT, exist_ok=True)

# Tests sign in many times from one address.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].update(
    {"magic_link_ip": "1000/hour", "magic_link_global": "10000/hour"}
)

# The packaged log handlers write server.log / security_audit.log in the working directory.
for _handler in LOGGING["handlers"].values():
    if _handler.get("class") == "logging.FileHandler":
        _handler["filename"] = str(DATA_DIR / Path(_handler["filename"]).name)

# Cheap hashing: seeded users have throwaway passwords.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _set_config(_name: str, value: Any, _is_local: Any) -> Any:
    """Stand-in for PostgreSQL's set_config(), which the RLS middleware calls per request."""
    return value


def _register_set_config(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("set_config", 3, _set_config)


connection_created.connect(_register_set_config, dispatch_uid="e2e-sqlite-set-config")
