"""Word-shaped identifiers: credentials, emails, IPs, plates, passports, names, addresses.

Every function takes normalised text and returns `(start, end, category,
detector, confidence)` tuples indexing that text. Each is gated by a cheap
membership test (an '@', a CJK character, a keyword) so the common case of a
short field costs a few substring checks.
"""

from __future__ import annotations

import ipaddress
import re

from gateway.core.detectors import checks

Found = tuple[int, int, str, str, float]

# Keywords that introduce a secret. Matched on lower-cased text with no leading
# look-behind, so the regex engine can skip positions by first character; the
# word boundary of the ASCII keywords is checked afterwards.
CREDENTIAL_KEYWORD = re.compile(
    r"password|passwd|passcode|pwd|pin|cvv2?|cvn2?|cvc2?|otp|token|secret|api[_-]?key"
    r"|access[_-]?key|密码|口令|验证码|校验码|动态码|安全码|有效期"
)
_CRED_VALUE = re.compile(r"\s*(?:[:：=]|是|为|is)?\s*([^\s，。；;,、\"'“”]{3,128})")
_HAS_ALNUM = re.compile(r"[0-9A-Za-z]")
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*")
TRACK2_RE = re.compile(r";?\d{13,19}=\d{7,}\??")

# Bounded repetitions (RFC 5321 local part <= 64, labels <= 63) keep a long run of
# address-like characters from costing quadratic time.
EMAIL_RE = re.compile(
    r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.([A-Za-z]{2,24})"
)
_FILE_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "js", "css", "ts", "py"})

IPV4_RE = re.compile(
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}(?!\d|\.\d)"
)
_DIGIT_DOT_DIGIT = re.compile(r"\d\.\d")
_VERSION_CTX = re.compile(r"(?:version|ver|版本|v)\s*[:：]?\s*$", re.IGNORECASE)
IPV6_RE = re.compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])")

PLATE_RE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领]"
    r"[A-HJ-NP-Z][A-HJ-NP-Z0-9]{4,5}[挂学警港澳]?(?![A-Za-z0-9])"
)

PASSPORT_RE = re.compile(
    r"(?:E[0-9A-HJ-NP-Z]\d{7}|[EGDSP]\d{8}|(?:DE|SE|PE)\d{7}|[HM]\d{8}(?:\d{2})?"
    r"|C[0-9A-HJ-NP-Z]\d{7}|W\d{8}|L\d{8})(?![A-Za-z0-9])"
)
KW_PASSPORT = re.compile(r"护照|passport|通行证|回乡证|台胞证|旅行证|hzhm|permit", re.IGNORECASE)
SECURITIES_RE = re.compile(r"[AB]\d{9}(?![A-Za-z0-9])")
KW_SECURITIES = re.compile(r"证券|股东|资金账|securit|stock|gdzh|zjzh", re.IGNORECASE)
# First character: registering authority (1-9, A-H, J-N, P-R, T, U, W, X, Y); second: the
# entity type, a non-zero digit in every authority's list; then the 6-digit region code.
USCC_RE = re.compile(r"[1-9A-HJ-NP-RTUWXY][1-9]\d{6}[0-9A-HJ-NP-RTUWXY]{10}(?![0-9A-Z])")

CJK_RE = re.compile(r"[\u4e00-\u9fff]")

_COMPOUND = (
    "欧阳|司马|上官|诸葛|东方|皇甫|尉迟|公孙|慕容|长孙|宇文|司徒|令狐|夏侯|澹台|轩辕|端木|独孤"
    "|南宫|闻人|申屠|太史|百里|呼延|钟离|万俟|拓跋|赫连|东郭|西门|左丘|公羊|濮阳|淳于|司空"
)
_SINGLE = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余于杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左"
    "柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶"
    "解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬"
    "边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
SURNAME = f"(?:{_COMPOUND}|[{_SINGLE}])"
COMPOUND_SURNAMES = frozenset(_COMPOUND.split("|"))
_NAME_CTX = (
    r"(?:姓名|客户|户名|联系人|收件人|持卡人|申请人|借款人|投保人|被保险人|开户人|委托人"
    r"|对接人|经办人|受益人|担保人|法定代表人|法人代表|代理人|监护人|配偶|收款人|付款人|汇款人"
    r"|投资人|出资人|股东|实际控制人|实控人|负责人|签约人|授权人|紧急联系人|介绍人|推荐人)"
)
NAME_AFTER_RE = re.compile(
    rf"{_NAME_CTX}(?:是|为|叫|名|[:：]|\s)*({SURNAME})([\u4e00-\u9fff]{{1,2}})"
)
NAME_BEFORE_RE = re.compile(rf"({SURNAME})([\u4e00-\u9fff]{{1,2}}?)(?:先生|女士|小姐)")
# Characters that start a following word rather than continue a given name.
_STOP = frozenset(
    "手电身地的说在于已表称反来要先女今昨前后本该和与及等是有将也都就还把被给对向从到"
    "经总老主姐哥办去致打留预面卡号户账证住目名年确"
)
NAME_KEYS = re.compile(r"姓名|户名|联系人|name|xm|khxm", re.IGNORECASE)
NAME_VALUE_RE = re.compile(rf"({SURNAME})([\u4e00-\u9fff]{{1,3}})")

_PROVINCES = (
    "北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南"
    "|广东|海南|四川|贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆|香港|澳门"
)
_ADMIN = r"[\u4e00-\u9fff]{1,7}?(?:自治州|地区|市|州|盟|区|县|旗)"
_ROAD = r"[\u4e00-\u9fff0-9]{1,10}?(?:大街|大道|街道|路|街|巷|胡同|村|镇|乡|小区|花园|公寓|大厦)"
_NUM = r"[0-9A-Za-z\-]{1,6}(?:号院|号楼|号|栋|幢|座|单元|室|楼|层|弄|组)"
PROVINCES = _PROVINCES
_PROV = rf"(?:{_PROVINCES})(?:省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区)?"
ADDRESS_RE = re.compile(rf"{_PROV}(?:{_ADMIN}){{0,3}}(?:{_ROAD}){{0,3}}(?:{_NUM})*")
ADDRESS_KW_RE = re.compile(
    rf"(?:地址|住址|家住|住在|居住在|户籍地|通讯地址)[:：\s]*"
    rf"((?:{_ADMIN}){{1,3}}(?:{_ROAD}){{0,3}}(?:{_NUM})*|(?:{_ROAD}){{1,3}}(?:{_NUM})*)"
)
UNIT_RE = re.compile(
    r"自治州|地区|市|州|盟|区|县|旗|大街|大道|街道|路|街|巷|胡同|村|镇|乡|号|栋|幢|单元|室|楼|层|弄"
)


def _ascii_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _glued(t: str, start: int, chars: str) -> bool:
    """Is the match at `start` glued to a preceding character from `chars`?

    Checked here rather than with a leading look-behind, which would stop the
    regex engine from skipping ahead by first character."""
    return start > 0 and t[start - 1] in chars


_HEX_COLON = "0123456789ABCDEFabcdef:"
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def credentials(t: str) -> list[Found]:
    out: list[Found] = []
    low = t.lower()
    if len(low) == len(t):  # lower() may lengthen rare characters; offsets must hold
        for kw in CREDENTIAL_KEYWORD.finditer(low):
            s, e = kw.span()
            if kw.group()[0].isascii() and (
                (s > 0 and _ascii_letter(low[s - 1])) or (e < len(low) and _ascii_letter(low[e]))
            ):
                continue
            m = _CRED_VALUE.match(t, e)
            if m and _HAS_ALNUM.search(m.group(1)):
                out.append((m.start(1), m.end(1), "credentials", "credential_keyword", 0.9))
    if "eyJ" in t:
        out.extend((m.start(), m.end(), "credentials", "jwt", 0.95) for m in JWT_RE.finditer(t))
    if "=" in t:
        out.extend(
            (m.start(), m.end(), "credentials", "track2", 0.9) for m in TRACK2_RE.finditer(t)
        )
    return out


def emails(t: str) -> list[Found]:
    return [
        (m.start(), m.end(), "email", "email", 0.95)
        for m in EMAIL_RE.finditer(t)
        if m.group(1).lower() not in _FILE_TLDS and not m.group().startswith(".")
    ]


def ips(t: str) -> list[Found]:
    out: list[Found] = []
    if _DIGIT_DOT_DIGIT.search(t) is not None:
        for m in IPV4_RE.finditer(t):
            if _glued(t, m.start(), "0123456789."):
                continue
            if not _VERSION_CTX.search(t, max(0, m.start() - 12), m.start()):
                out.append((m.start(), m.end(), "ip_address", "ipv4", 0.8))
    if "::" in t or t.count(":") >= 7:
        for m in IPV6_RE.finditer(t):
            if not _glued(t, m.start(), _HEX_COLON) and ipv6_ok(m.group()):
                out.append((m.start(), m.end(), "ip_address", "ipv6", 0.8))
    return out


def ipv6_ok(s: str) -> bool:
    """A real IPv6 address, not a clock time or a Rust/C++ path like a::b."""
    if "::" not in s and s.count(":") != 7:
        return False
    parts = [p for p in s.split(":") if p]
    if len(parts) < 2 or all(p.isdigit() and len(p) <= 2 for p in parts):
        return False
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


def plates(t: str) -> list[Found]:
    return [
        (m.start(), m.end(), "licence_plate", "licence_plate", 0.8)
        for m in PLATE_RE.finditer(t)
        if not (m.start() and t[m.start() - 1].isascii() and t[m.start() - 1].isalnum())
        and sum(ch.isdigit() for ch in m.group()) >= 2
    ]


def keyword_codes(t: str) -> list[Found]:
    """Passports, travel permits and securities accounts: only next to a keyword."""
    out: list[Found] = []
    for regex, kw, cat, det in (
        (PASSPORT_RE, KW_PASSPORT, "passport", "passport"),
        (SECURITIES_RE, KW_SECURITIES, "securities_account", "securities_account"),
    ):
        for m in regex.finditer(t):
            if _glued(t, m.start(), _ALNUM):
                continue
            if kw.search(t, max(0, m.start() - 20), m.start()):
                out.append((m.start(), m.end(), cat, det, 0.7))
    return out


def usccs(t: str) -> list[Found]:
    out: list[Found] = []
    for m in USCC_RE.finditer(t):
        code = m.group()
        if _glued(t, m.start(), _ALNUM[:36]):
            continue
        if not code.isdigit() and checks.uscc_ok(code):
            cat = "uscc_person" if code.startswith("92") else "uscc_org"
            out.append((m.start(), m.end(), cat, "uscc", 0.8))
    return out


def given_name(given: str) -> str:
    """Trim a captured given name where the next word begins; '' if it is no name."""
    if not given or given[0] in _STOP:
        return ""
    if len(given) > 1 and given[1] in _STOP:
        return given[:1]
    return given


def names(t: str) -> list[Found]:
    out: list[Found] = []
    for regex, conf in ((NAME_AFTER_RE, 0.7), (NAME_BEFORE_RE, 0.6)):
        if regex is NAME_BEFORE_RE and not ("先生" in t or "女士" in t or "小姐" in t):
            continue
        for m in regex.finditer(t):
            given = given_name(m.group(2))
            if given:
                out.append((m.start(1), m.start(2) + len(given), "name", "name_context", conf))
    return out


def addresses(t: str) -> list[Found]:
    out: list[Found] = []
    for m in ADDRESS_RE.finditer(t):
        if len(UNIT_RE.findall(m.group())) >= 2:
            out.append((m.start(), m.end(), "address", "address", 0.7))
    for m in ADDRESS_KW_RE.finditer(t):
        if len(UNIT_RE.findall(m.group(1))) >= 2:
            out.append((m.start(1), m.end(1), "address", "address_keyword", 0.6))
    return out
