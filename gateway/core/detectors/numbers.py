"""Number-shaped identifiers: IDs, cards, phones, accounts, postal codes.

A *token* is a run of digits (optionally `+86` in front, `X` at the end) whose
groups may be separated by single spaces, hyphens or middle dots. Digit
boundaries are absolute: a token never starts or ends inside a longer digit run,
so a 19-digit card never yields an 18-digit "ID".

Each token is tried as a whole and then as contiguous sub-runs of its groups
(longest first), because free text glues numbers together ("13812345678 2024").
A candidate without a checksum (mobile, landline) is accepted across groups only
in its usual grouping (3-4-4, area-subscriber), which keeps spaced prices and
dates from being stitched into phone numbers.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from gateway.core.detectors import checks

# No look-behind: finditer consumes whole digit runs (\d+ is greedy), so a match
# can only start where the previous character is not a digit, and the regex
# engine can skip non-digit positions by first character.
TOKEN_RE = re.compile(r"(?:\+86[ \-]?)?\d+(?:[ \-·]\d+)*X?")
_GROUP_RE = re.compile(r"\+86|\d+X?")
_MAX_GROUPS = 6
_MAX_LEN = 22
_MIN_LEN = 5

KW_ID = re.compile(r"身份|证件|公民|idno|id_no|id no|idcard|id card|sfz|zjhm|identity")
KW_CARD = re.compile(r"卡号|银行卡|信用卡|借记卡|储蓄卡|card|yhk|账号|帐号")
KW_ACCOUNT = re.compile(r"账号|帐号|账户|帐户|开户行|户名|account|acct")
KW_SECURITIES = re.compile(r"证券|股东|资金账|一码通|securit|stock|gdzh|zjzh")
KW_POSTAL = re.compile(r"邮编|邮政编码|postcode|postal|zip|yzbm")
KW_PHONE = re.compile(r"电话|座机|固话|传真|tel|phone|fax|lxdh")
KW_TW_PERMIT = re.compile(r"台胞证|台湾居民来往")


class Verdict(NamedTuple):
    category: str
    detector: str
    confidence: float
    checked: bool  # validated by a checksum (safe to stitch across any grouping)


def classify_compact(c: str, ctx: str) -> Verdict | None:
    """What a compacted number is, or None. `ctx` is lower-case context (keywords)."""
    if c.startswith("+86"):
        return Verdict("mobile", "mobile", 0.95, False) if checks.mobile_ok(c[3:]) else None
    n = len(c)
    if n == 18:
        if checks.residence_permit_ok(c):
            return Verdict("id_number", "residence_permit", 0.9, True)
        if checks.resident_id_ok(c):
            return Verdict("id_number", "resident_id", 0.95, True)
        if checks.permanent_residence_ok(c):
            return Verdict("id_number", "permanent_residence", 0.85, True)
        if c[1] != "0" and checks.uscc_ok(c):  # entity type is never 0
            cat = "uscc_person" if c.startswith("92") else "uscc_org"
            return Verdict(cat, "uscc", 0.8, True)
    if not c.isdigit():
        return None
    if 15 <= n <= 19 and checks.card_iin_ok(c) and checks.luhn_ok(c):
        return Verdict("bank_card", "bank_card", 0.9, True)
    if 16 <= n <= 19 and c.startswith("62") and KW_CARD.search(ctx):
        return Verdict("bank_card", "bank_card_keyword", 0.6, False)
    if n == 11:
        if checks.mobile_ok(c):
            return Verdict("mobile", "mobile", 0.9, False)
    elif n == 13 and c.startswith("86"):
        if checks.mobile_ok(c[2:]):
            return Verdict("mobile", "mobile", 0.9, False)
    elif n == 15:
        if c.startswith("0086") and checks.mobile_ok(c[4:]):
            return Verdict("mobile", "mobile", 0.9, False)
        if checks.legacy_id_ok(c) and KW_ID.search(ctx):
            return Verdict("id_number", "legacy_id", 0.6, False)
    if checks.corporate_number(c):
        return None
    if checks.landline_area(c):
        return Verdict("landline", "landline", 0.85, False)
    if n in (7, 8) and c[0] in "2345678" and KW_PHONE.search(ctx):
        return Verdict("landline", "landline_keyword", 0.5, False)
    if n == 8 and KW_TW_PERMIT.search(ctx):
        return Verdict("passport", "tw_permit", 0.6, False)
    if n == 6 and c[0] != "9" and KW_POSTAL.search(ctx):
        return Verdict("postal_code", "postal_code", 0.6, False)
    if n in (10, 12) and KW_SECURITIES.search(ctx):
        return Verdict("securities_account", "securities_account", 0.5, False)
    if 10 <= n <= 25 and KW_ACCOUNT.search(ctx):
        return Verdict("bank_account", "bank_account", 0.5, False)
    return None


def _grouping_ok(category: str, lengths: tuple[int, ...]) -> bool:
    """Usual groupings for numbers without a checksum."""
    if lengths and lengths[0] == 0:  # leading +86 group
        lengths = lengths[1:]
        if lengths == (11,):
            return True
    if category == "mobile":
        return lengths in ((3, 4, 4), (3, 8), (7, 4))
    if category == "landline":
        return len(lengths) >= 2 and lengths[0] in (3, 4) and sum(lengths[1:]) in (7, 8)
    return len(lengths) == 1


# A label that names the number as a code, not a phone (`发票代码 044031900111`).
_NUMBER_LABEL = re.compile(
    r"(?:发票|代码|编号|编码|单号|订单号?|工单|合同号|流水号?|批次号?|序列号|条形码|"
    r"code|no\.?|ref)\s*[:：#]?\s*$",
    re.IGNORECASE,
)
_UUID_RE = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)


def _not_a_landline(text: str, start: int, end: int) -> bool:
    """Digits a landline reading must not take: a decimal's fraction (`3600.0215512345`,
    an ISO timestamp's microseconds), a run glued to ASCII letters (hex ids, hashes),
    a number followed by a fraction, or a part of a UUID. A landline has no checksum,
    so only its usual shape (own token, area code first) is read as one."""
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    if before == "." and start >= 2 and text[start - 2].isdigit():
        return True
    if after == "." and end + 1 < len(text) and text[end + 1].isdigit():
        return True
    if (before.isascii() and before.isalpha()) or (after.isascii() and after.isalpha()):
        return True
    if "-" in text:
        for m in _UUID_RE.finditer(text, max(0, start - 36), min(len(text), end + 36)):
            if m.start() <= start and end <= m.end():
                return True
    return False


class NumberHit(NamedTuple):
    start: int
    end: int
    verdict: Verdict


def _single(text: str, start: int, end: int, ctx: str) -> NumberHit | None:
    compact = text[start:end]
    verdict = classify_compact(compact, ctx)
    if verdict is None and compact[-1] == "X":  # a letter glued to the number
        verdict = classify_compact(compact[:-1], ctx)
        end -= 1
    return None if verdict is None else NumberHit(start, end, verdict)


def scan_numbers(text: str, context: int = 20) -> list[NumberHit]:
    """All number identifiers in normalised `text` (spans index `text`)."""
    out: list[NumberHit] = []
    for tok in TOKEN_RE.finditer(text):
        t_start, t_end = tok.span()
        if t_end - t_start < 5:
            continue
        ctx = text[max(0, t_start - context) : t_start].lower()
        token = tok.group()
        if token.isalnum():  # one group, the common case
            hit = _single(text, t_start, t_end, ctx)
            if hit is not None:
                out.append(hit)
        else:
            groups = [
                (g.start(), g.end(), g.group()) for g in _GROUP_RE.finditer(text, t_start, t_end)
            ]
            out.extend(_scan_groups(text, groups, ctx))
    return [
        h
        for h in out
        if h.verdict.category != "landline"
        or not (
            _not_a_landline(text, h.start, h.end)
            or _NUMBER_LABEL.search(text, max(0, h.start - 8), h.start)
        )
    ]


def _scan_groups(text: str, groups: list[tuple[int, int, str]], ctx: str) -> list[NumberHit]:
    """Longest-first over contiguous runs of groups; accepted runs do not overlap."""
    out: list[NumberHit] = []
    i, k = 0, len(groups)
    while i < k:
        for j in range(min(k, i + _MAX_GROUPS), i, -1):
            compact = "".join(g[2] for g in groups[i:j])
            if not _MIN_LEN <= len(compact) <= _MAX_LEN:
                continue
            if j - i == 1:
                hit = _single(text, groups[i][0], groups[i][1], ctx)
                if hit is None:
                    continue
                out.append(hit)
                break
            verdict = classify_compact(compact, ctx)
            end = groups[j - 1][1]
            if verdict is None and compact[-1] == "X":
                verdict = classify_compact(compact[:-1], ctx)
                end -= 1
            if verdict is None:
                continue
            if not verdict.checked:
                lengths = [0 if g[2] == "+86" else len(g[2]) for g in groups[i:j]]
                lengths[-1] -= groups[j - 1][1] - end  # a glued X is not part of the number
                if not _grouping_ok(verdict.category, tuple(lengths)):
                    continue
            out.append(NumberHit(groups[i][0], end, verdict))
            break
        else:
            i += 1
            continue
        i = j
    return out
