"""Bearer secrets inside URLs: whoever holds the link holds the access.

BottleCRM's invoice `public_url` (`/portal/invoice/<token_urlsafe(32)>`) opens
the unmasked invoice to anyone, signed download links carry `sig=`/`X-Amz-Signature=`,
magic links carry `token=`. Such a URL is a credential (L5: never shown), but
only its secret part is: the detector returns the span of the query value or of
the path segment, so the rest of the link (and the masking around it) stays
readable.

Two findings:
- a query or fragment parameter named like a secret (`token`, `access_token`,
  `sig`, `signature`, `key`, `api_key`, `password`, ...) with a value of a
  plausible length;
- a random-looking path segment: 16+ characters after a sharing keyword segment
  (`/public/`, `/portal/`, `/share/`, `/invite/`, `/reset/`, ...), or 32+
  characters of mixed case and digits anywhere in a URL path (never a UUID, a
  hex digest or a lower-case slug outside a sharing path: record ids, content
  hashes, readable names).
"""

from __future__ import annotations

import re

Found = tuple[int, int, str, str, float]

# Parameter names whose value is always a secret (any length from 4).
_BEARER_PARAMS = (
    "token|access_token|refresh_token|id_token|auth_token|authtoken|accesstoken"
    "|api_key|apikey|api-key|secret|client_secret|password|passwd|pwd|jwt"
    "|sig|signature|x-amz-signature|x-amz-security-token|x-amz-credential"
    "|x-goog-signature|x-goog-credential|share_token|public_token|sharetoken"
    "|sessionid|session_id|phpsessid|jsessionid"
)
# Names that are secrets only with a long value (`key=name` is a sort key, not a secret).
_LONG_PARAMS = "key|code|session|sid|ticket|share|invite|auth|hash|t|s|k"
_PARAM_RE = re.compile(
    rf"[?&#;](?:(?P<secret>{_BEARER_PARAMS})|(?P<long>{_LONG_PARAMS}))=(?P<value>[^&#\s\"'<>;,]+)",
    re.IGNORECASE,
)
_PATH_RE = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//[A-Za-z0-9.\-\[\]:@]+(?P<p1>/[^\s\"'<>?#\\]*)"
    r"|(?<![\w.~%/-])(?P<p2>/[A-Za-z0-9._~\-]+(?:/[A-Za-z0-9._~%\-]*)+)"
)
_SHARE_SEGMENTS = frozenset(
    {
        "public",
        "portal",
        "share",
        "shared",
        "s",
        "p",
        "invite",
        "invitation",
        "invitations",
        "reset",
        "reset-password",
        "password-reset",
        "magic",
        "magic-link",
        "verify",
        "confirm",
        "activate",
        "unsubscribe",
        "download",
        "downloads",
        "dl",
        "token",
        "tokens",
        "t",
        "link",
        "links",
        "signed",
        "access",
        "sign-in",
        "login",
    }
)
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-~.]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_FILE_NAME = re.compile(r"[\w\-]+\.[A-Za-z0-9]{1,5}")


def _random_looking(seg: str, minimum: int) -> bool:
    if len(seg) < minimum or not _TOKEN_CHARS.fullmatch(seg) or _FILE_NAME.fullmatch(seg):
        return False
    has_digit = any(c.isdigit() for c in seg)
    has_alpha = any(c.isalpha() for c in seg)
    return has_digit and has_alpha


def token_urls(t: str) -> list[Found]:
    """Spans of URL-borne secrets in `t` (see the module docstring)."""
    out: list[Found] = []
    if "=" in t:
        for m in _PARAM_RE.finditer(t):
            value = m.group("value")
            if m.group("secret") is not None:
                if len(value) >= 4:
                    out.append((m.start("value"), m.end("value"), "credentials", "token_url", 0.9))
            elif len(value) >= 16 and _random_looking(value, 16):
                out.append((m.start("value"), m.end("value"), "credentials", "token_url", 0.8))
    if "/" in t:
        for m in _PATH_RE.finditer(t):
            group = "p1" if m.group("p1") is not None else "p2"
            out.extend(_path_tokens(m.group(group), m.start(group)))
    return out


def _path_tokens(path: str, offset: int) -> list[Found]:
    out: list[Found] = []
    shared = False
    pos = 0
    for seg in path.split("/"):
        start = offset + pos
        pos += len(seg) + 1
        if not seg:
            continue
        low = seg.lower()
        if low in _SHARE_SEGMENTS:
            shared = True
            continue
        if shared and _random_looking(seg, 16):
            out.append((start, start + len(seg), "credentials", "token_url", 0.85))
        elif (
            _random_looking(seg, 32)
            and seg.lower() != seg
            and seg.upper() != seg
            and not _UUID.fullmatch(seg)
            and not _HEX.fullmatch(seg)
        ):
            out.append((start, start + len(seg), "credentials", "token_url", 0.75))
    return out
