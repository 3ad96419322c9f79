"""String masking operators, one per Chinese display convention (reference §4).

Every operator maps a string to its masked form and is idempotent: applied to
its own output it returns that output unchanged. Operators that keep positions
(phone, ID, card) get this for free, since `*` survives normalisation and sits
where digits were; operators that shorten (names keep a fixed `*` count per
character, addresses cut at an administrative unit, bands) recognise their own
output. Fixed-format identifiers keep their length (it helps users and reveals
nothing the format does not); names, addresses and accounts use short fixed
masks so length does not leak.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable

from gateway.core.detectors.patterns import COMPOUND_SURNAMES, PROVINCES
from gateway.core.masking.bands import (
    AGE_BAND_RE,
    BAND_LABELS,
    BANDS,
    REDACTED,
    age_band,
    amount_band,
    band_of,
    birth_year,
    parse_amount,
)
from gateway.core.normalize import compact, normalize_str, strip_country_code

__all__ = [
    "AGE_BAND_RE",
    "BANDS",
    "BAND_LABELS",
    "GENERALISERS",
    "OPERATORS",
    "REDACTED",
    "band_of",
    "parse_amount",
]

Operator = Callable[[str], str]


def _norm(s: str) -> str:
    return s.strip() if s.isascii() else normalize_str(s).strip()


def thirds(s: str) -> str:
    """Alipay's default rule: keep the first ceil(n/3) and the last floor(n/3) characters."""
    n = len(s)
    if n <= 1:
        return "*" * n
    head, tail = -(-n // 3), n // 3
    return s[:head] + "*" * (n - head - tail) + s[n - tail :]


def _keep(s: str, head: int, tail: int) -> str:
    n = len(s)
    if head + tail >= n:
        return thirds(s)
    return s[:head] + "*" * (n - head - tail) + s[n - tail :]


def fixed(s: str) -> str:
    return REDACTED


def _is_latin(s: str) -> bool:
    return s.isascii()


def name_surname(s: str) -> str:
    """张** / 欧阳** / Z**** S**: keep the surname (or initials), one * per other character."""
    t = _norm(s)
    if _is_latin(t):
        return " ".join(w[:1] + "*" * (len(w) - 1) for w in t.split())
    if len(t) <= 1:
        return "*" * len(t)
    sur = 2 if t[:2] in COMPOUND_SURNAMES and len(t) > 2 else 1
    return t[:sur] + "*" * (len(t) - sur)


def name_last(s: str) -> str:
    """*三 / **堂 / * Hanks: keep only the last character (latin: mask the first segment)."""
    t = _norm(s)
    words = t.split()
    if _is_latin(t) and len(words) > 1:
        return "* " + " ".join(words[1:])
    if len(t) <= 1:
        return "*" * len(t)
    return "*" * (len(t) - 1) + t[-1]


def mobile_3_4(s: str) -> str:
    d = strip_country_code(compact(s))
    return _keep(d, 3, 4) if len(d) == 11 else thirds(d)


def mobile_3_2(s: str) -> str:
    d = strip_country_code(compact(s))
    return _keep(d, 3, 2) if len(d) == 11 else thirds(d)


def landline_area_4(s: str) -> str:
    """010-****5678: area code, then only the last 4 of the subscriber number."""
    d = compact(s)
    area = 3 if d[:2] in ("01", "02") else 4 if d[:1] == "0" else 0
    if area and len(d) - area >= 6:
        return d[:area] + "-" + _keep(d[area:], 0, 4)
    return _keep(d, 0, 4) if len(d) > 6 else thirds(d)


def landline_4_2(s: str) -> str:
    d = compact(s)
    return _keep(d, 4, 2) if len(d) > 8 else thirds(d)


def id_6_4(s: str) -> str:
    """110105********002X: region kept, birth date and sequence hidden."""
    d = compact(s)
    return _keep(d, 6, 4) if len(d) >= 14 else thirds(d)


def id_1_1(s: str) -> str:
    d = compact(s)
    return _keep(d, 1, 1) if len(d) >= 3 else "*" * len(d)


def _letters(d: str) -> int:
    n = 0
    while n < min(2, len(d)) and d[n].isalpha():
        n += 1
    return n


def passport_3(s: str) -> str:
    """E*****789: the document-type letters and the last 3 characters."""
    d = compact(s)
    lead = _letters(d)
    return _keep(d, lead, 3) if len(d) - lead > 4 else thirds(d)


def passport_type(s: str) -> str:
    """E********: only the document-type letters (at most 2) stay; a value that is
    all letters is no passport number and gets the generic thirds rule."""
    d = compact(s)
    lead = min(_letters(d), 2)
    if lead >= len(d):
        return thirds(d)
    return d[:lead] + "*" * (len(d) - lead)


def email_first(s: str) -> str:
    t = _norm(s)
    local, at, domain = t.rpartition("@")
    if not at:
        return thirds(t)
    return local[:1] + "***@" + domain


def email_first_tld(s: str) -> str:
    t = _norm(s)
    local, at, domain = t.rpartition("@")
    if not at:
        return thirds(t)
    tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
    return local[:1] + "***@***." + tld


# A CJK character other than the unit suffixes (one negated class: fast to match).
_CJK_UNIT = r"[^\x00-\u4dff\ua000-\U0010ffff省市区县州旗]{1,7}?"
_ADDRESS_PARTS = re.compile(
    rf"(?P<prov>(?:{PROVINCES})(?:省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区)?)?"
    rf"(?P<city>{_CJK_UNIT}(?:自治州|地区|市|州|盟))?"
    rf"(?P<dist>{_CJK_UNIT}(?:区|县|旗|市))?"
)


def _address_cut(s: str, level: str) -> str:
    t = _norm(s)
    m = _ADDRESS_PARTS.match(t)
    if m is None:
        return ""
    order = ("dist", "city", "prov") if level == "dist" else ("city", "prov")
    for group in order:
        if m.group(group):
            return t[: m.end(group)]
    return ""


def address_district(s: str) -> str:
    """北京市海淀区****: kept down to the district or county (SPC 法释〔2016〕19号)."""
    return _address_cut(s, "dist") + "****"


def address_city(s: str) -> str:
    return _address_cut(s, "city") + "****"


def address_generalise(s: str) -> str:
    return _address_cut(s, "dist") or "****"


def postal_4(s: str) -> str:
    d = compact(s)
    return _keep(d, 4, 0) if len(d) > 4 else "*" * len(d)


def plate_2_1(s: str) -> str:
    """京A***5: region and city letter, fixed mask, last character."""
    t = compact(s)
    return t[:2] + "***" + t[-1] if len(t) >= 4 else "*" * len(t)


def plate_region(s: str) -> str:
    t = compact(s)
    return t[:1] + "****" if t else t


def _ip_parts(t: str) -> tuple[list[str], str]:
    if ":" in t:
        with contextlib.suppress(ValueError):
            t = ipaddress.IPv6Address(t).exploded
        return t.split(":"), ":"
    return t.split("."), "."


def ip_network(s: str) -> str:
    """192.168.1.* (keep the /24) or the first four IPv6 groups."""
    parts, sep = _ip_parts(_norm(s))
    keep = 3 if sep == "." else 4
    if len(parts) != (4 if sep == "." else 8):
        return thirds(_norm(s))
    return sep.join(parts[:keep] + ["*"] * (len(parts) - keep))


def ip_first(s: str) -> str:
    parts, sep = _ip_parts(_norm(s))
    if len(parts) != (4 if sep == "." else 8):
        return thirds(_norm(s))
    return sep.join(parts[:1] + ["*"] * (len(parts) - 1))


def uscc_8_1(s: str) -> str:
    """92110105*********X: registration authority and region kept."""
    d = compact(s)
    return _keep(d, 8, 1) if len(d) == 18 else thirds(d)


def card_6_4(s: str) -> str:
    """622202******1234: at most the BIN and the last 4 (PCI DSS, JR/T 0171)."""
    d = compact(s)
    return _keep(d, 6, 4) if len(d) >= 12 else _keep(d, 0, 4) if len(d) > 4 else "*" * len(d)


def card_last4(s: str) -> str:
    d = compact(s)
    return _keep(d, 0, 4) if len(d) > 4 else "*" * len(d)


def account_last4(s: str) -> str:
    """******1234: fixed mask, so the account length does not leak."""
    d = compact(s)
    return "******" + d[-4:] if len(d) > 4 else "****"


OPERATORS: dict[str, Operator] = {
    "thirds": thirds,
    "fixed": fixed,
    "name_surname": name_surname,
    "name_last": name_last,
    "id_6_4": id_6_4,
    "id_1_1": id_1_1,
    "passport_3": passport_3,
    "passport_type": passport_type,
    "mobile_3_4": mobile_3_4,
    "mobile_3_2": mobile_3_2,
    "landline_area_4": landline_area_4,
    "landline_4_2": landline_4_2,
    "email_first": email_first,
    "email_first_tld": email_first_tld,
    "address_district": address_district,
    "address_city": address_city,
    "postal_4": postal_4,
    "birth_year": birth_year,
    "age_band": age_band,
    "plate_2_1": plate_2_1,
    "plate_region": plate_region,
    "ip_network": ip_network,
    "ip_first": ip_first,
    "uscc_8_1": uscc_8_1,
    "amount_band": amount_band,
    "card_6_4": card_6_4,
    "card_last4": card_last4,
    "account_last4": account_last4,
}

# GENERALISE per kind; kinds without one use their strict MASK (more restrictive).
GENERALISERS: dict[str, Operator] = {
    "amount": amount_band,
    "birth_date": age_band,
    "address": address_generalise,
    "postal_code": postal_4,
    "ip": ip_network,
}
