"""`crm-gateway users publish-directory FILE`: share a checked directory through Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.errors import ConfigError
from gateway.identity.directory import Directory, csv_to_dict
from gateway.settings import Settings
from gateway.state.directory import DirectoryStore


def _document(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = csv_to_dict(text) if path.suffix.lower() == ".csv" else yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return dict(data)


async def publish_directory(settings: Settings, path: Path) -> int:
    """Validate `path` exactly as a gateway would, then publish it; returns the new version."""
    if not settings.redis.url:
        raise ConfigError("publishing the directory needs redis.url")
    Directory.load(path)  # every problem is reported before anything is published
    store = await DirectoryStore.open(settings.redis.url)
    try:
        return await store.publish(_document(path))
    finally:
        await store.close()
