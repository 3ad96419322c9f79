"""The console's two message catalogs (zh, en) and the choice between them.

Catalogs are JSON files beside this module with the same keys; a key missing
from the chosen catalog is an error (the unit tests render every page in both
languages and compare the key sets). The language comes from `?lang=` (then
remembered in a cookie), the cookie, `Accept-Language`, else the configured default.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

LANGUAGES = ("zh", "en")
LANG_COOKIE = "crmgw_console_lang"


class MissingMessage(KeyError):
    """A template asked for a key the catalog lacks."""


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    raw = resources.files("gateway.admin.console").joinpath(f"messages/{lang}.json").read_bytes()
    data: Any = orjson.loads(raw)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"messages/{lang}.json: a flat object of strings")
    return data


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._messages = catalog(lang)

    def __call__(self, key: str, **values: Any) -> str:
        try:
            text = self._messages[key]
        except KeyError:
            raise MissingMessage(f"{self.lang}: no message {key!r}") from None
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self._messages


def choose(request: web.Request, default: str) -> tuple[str, bool]:
    """(language, whether to remember it in the cookie)."""
    asked = request.query.get("lang", "")
    if asked in LANGUAGES:
        return asked, True
    cookie = request.cookies.get(LANG_COOKIE, "")
    if cookie in LANGUAGES:
        return cookie, False
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary, False
    return default, False
