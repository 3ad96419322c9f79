"""Facts written in Chinese prose: amounts with a cue, risk grades, residential addresses.

Field names cover structured amounts (`annual_income: 600000`); these detectors
find the same facts in notes and remarks, where a person's income or risk grade
is written out (`年收入约60万元`, `C2 稳健型`). None has a checksum, so each
needs a cue: an amount is only an income or an asset next to the word that says
so, a bare `R3` or `稳健型` is a product's rating unless a customer's
assessment introduces it. Product terms (`起投金额5万元`, `最低投资1万元`,
`售价199元`) carry no cue and are left alone.

Every function takes normalised text containing CJK and returns `Found` tuples
indexing that text. Each is gated by a substring test so a remark without the
cue characters costs one `in` per cue family.
"""

from __future__ import annotations

import itertools
import re

Found = tuple[int, int, str, str, float]

# Cue -> category. Longest alternatives first so `可投资资产` is read as assets, not `投资`.
_INCOME_CUES = (
    "年收入|月收入|年薪|月薪|税后收入|家庭收入|个人收入|收入|工资|营业额|营业收入|营收|年营收"
)
_ASSET_CUES = (
    "可投资资产|金融资产|家庭资产|个人资产|总资产|净资产|资产|存款|身家|意向投资|拟投资|计划投资"
    "|追加投资|投资了|投资"
)
_BALANCE_CUES = "账户余额|余额"
_CUE_CATEGORY = {
    **dict.fromkeys(_INCOME_CUES.split("|"), "income"),
    **dict.fromkeys(_ASSET_CUES.split("|"), "assets"),
    **dict.fromkeys(_BALANCE_CUES.split("|"), "balance"),
}
_CUES = sorted(_CUE_CATEGORY, key=len, reverse=True)
# Cheap gate: the characters every cue contains one of.
_CUE_GATE = re.compile(r"收入|薪|工资|营|资产|存款|身家|投资|余额")

# A cue, up to 6 linking characters (`约`, `大概有`, `在`, `：`), then the amount with a
# unit. A unit (元, 万, 亿, 块) is required: `投资3个项目` is no amount.
_AMOUNT_RE = re.compile(
    rf"({'|'.join(_CUES)})"
    r"(?:[为是有达约近超逾过大概左右在合计共计总计每年每月一年一个月：:\s]{0,6}?)"
    r"((?:人民币|RMB|CNY|¥|￥)?\s*\d[\d,，]*(?:\.\d+)?\s*(?:千万|百万|十万|万亿|亿|万|千)?"
    r"\s*(?:元人民币|元|块钱|块|人民币|RMB|CNY)?)",
    re.IGNORECASE,
)
_HAS_UNIT = re.compile(r"[万亿千元块]|人民币|RMB|CNY|[¥￥]", re.IGNORECASE)
# Product terms: the amount belongs to a product, not a person.
_PRODUCT_BEFORE = (
    "最低",
    "起投",
    "单笔",
    "每笔",
    "门槛",
    "认购起点",
    "起点",
    "产品",
    "项目",
    "基金",
)


def amounts(t: str) -> list[Found]:
    if _CUE_GATE.search(t) is None:
        return []
    out: list[Found] = []
    for m in _AMOUNT_RE.finditer(t):
        amount = m.group(2)
        if _HAS_UNIT.search(amount) is None:
            continue
        before = t[max(0, m.start() - 4) : m.start()]
        cue = m.group(1)
        if cue in ("投资", "营收", "营业额", "营业收入") and any(
            p in before for p in _PRODUCT_BEFORE
        ):
            continue
        start = m.start(2) + (len(amount) - len(amount.lstrip()))
        end = m.start(2) + len(amount.rstrip())
        out.append((start, end, _CUE_CATEGORY[cue], "amount_cue", 0.7))
    return out


_RISK_TYPES = "保守型|谨慎型|稳健型|平衡型|成长型|进取型|激进型"
# C1..C5 with its type word, or after an assessment cue; the type word alone only
# after a cue or before 投资者/客户 (a `稳健型理财产品` is a product).
_RISK_CUE = (
    r"(?:风险承受能力|风险测评|风险评估|风险评测|测评结果|评估结果|风险等级|风险偏好"
    r"|风险类型|风险评级|投资者类型|投资者风险)"
)
_LINK = r"[为是：:\s属于（(]{0,4}"
_C_GRADE_RE = re.compile(rf"C[1-5](?:\s*[（(]?\s*(?:{_RISK_TYPES})[）)]?)?(?![0-9A-Za-z])")
_C_TYPE_AFTER = re.compile(rf"\s*[（(]?\s*(?:{_RISK_TYPES})")
_CUED_RE = re.compile(
    rf"({_RISK_CUE}){_LINK}((?:[CR][1-5]\s*[（(]?\s*)?(?:{_RISK_TYPES})[）)]?|[CR][1-5](?![0-9A-Za-z]))"
)
_PRODUCT_CUES = frozenset(("风险等级", "风险评级", "风险类型", "风险偏好"))
_PERSON = ("客户", "投资者", "投资人", "本人", "其")
_PRODUCT_RISK = ("产品", "基金", "理财", "本品", "该品", "债券", "信托")
_TYPE_PERSON_RE = re.compile(rf"(?:{_RISK_TYPES})(?=投资者|客户|投资人)")
_RISK_CUE_RE = re.compile(_RISK_CUE)
_RANGE_GAP = re.compile(r"\s*[至到~\-－、,，和与]\s*")
_RISK_GATE = re.compile(r"C[1-5]|[守慎健衡长取进]型|风险|测评")


def risk_grades(t: str) -> list[Found]:
    if _RISK_GATE.search(t) is None:
        return []
    out: list[Found] = []
    for m in _CUED_RE.finditer(t):
        before = t[max(0, m.start() - 8) : m.start()]
        if any(p in before for p in _PRODUCT_RISK):
            continue  # a product's rating (R1-R5 on a fund), not the customer's
        if (
            m.group(2)[0] == "R"
            and m.group(1) in _PRODUCT_CUES
            and not any(p in before for p in _PERSON)
        ):
            continue  # R1-R5 rate products; after a bare `风险等级` it is a product's
        out.append((m.start(2), m.end(2), "risk_assessment", "risk_cue", 0.75))
    grades = [
        m
        for m in _C_GRADE_RE.finditer(t)
        if not (m.start() and t[m.start() - 1].isascii() and t[m.start() - 1].isalnum())
    ]
    legend: set[int] = set()  # `C1保守型至C5激进型`: a scale being explained, not a grade
    for a, b in itertools.pairwise(grades):
        if _RANGE_GAP.fullmatch(t, a.end(), b.start()):
            legend.update((a.start(), b.start()))
    for m in grades:
        s = m.start()
        if s in legend:
            continue
        if _C_TYPE_AFTER.match(t, s + 2) or _RISK_CUE_RE.search(t, max(0, s - 12), s):
            out.append((s, m.end(), "risk_assessment", "risk_grade", 0.7))
    for m in _TYPE_PERSON_RE.finditer(t):
        out.append((m.start(), m.end(), "risk_assessment", "risk_type", 0.6))
    return out


# A residential address without province or city: estate name, then building,
# unit and room (`锦绣苑29栋2单元2403室`, `阳光花园3号楼1202`).
_ESTATE = (
    r"(?:(?![住在于的是到为和与及址至往])[\u4e00-\u9fff]){1,6}?"
    r"(?:小区|花园|公寓|新村|家园|苑|园|府|庭|湾|城|里|坊|公馆|大厦|广场|社区)"
)
_BLOCK = r"[0-9A-Za-z]{1,4}(?:号楼|栋|幢|座|号院|期|区)"
_ROOM = r"[0-9A-Za-z\-]{1,6}(?:单元|室|号|层|楼|户)"
_ESTATE_RE = re.compile(rf"({_ESTATE})?(?:{_BLOCK})+(?:{_ROOM})+(?:[0-9]{{3,4}}(?![0-9]))?")
_ESTATE_GATE = re.compile(r"[栋幢座]|号楼|单元|号院")
_HOME_UNITS = frozenset(("单元", "室", "户"))
_UNIT_WORDS = re.compile(r"号楼|栋|幢|座|号院|单元|室|层|户")


def estate_addresses(t: str) -> list[Found]:
    if _ESTATE_GATE.search(t) is None:
        return []
    out: list[Found] = []
    for m in _ESTATE_RE.finditer(t):
        units = _UNIT_WORDS.findall(m.group())
        if len(units) < 2:
            continue
        # Without an estate name, `A栋3层` is an office floor: a home needs a unit or room.
        if m.group(1) is None and not any(u in _HOME_UNITS for u in units):
            continue
        out.append((m.start(), m.end(), "address", "address_estate", 0.65))
    return out
