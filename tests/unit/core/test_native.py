"""The compiled detectors (native/) against their Python specification.

Every compiled function must return exactly what the Python function it mirrors
returns: same spans, categories, detectors and confidences, in the same order.
Hypothesis builds texts from the pieces number detection turns on (valid and
broken identifiers, groupings, separators, keywords, labels, UUIDs, decimals,
letters glued to digits, CJK, other scripts' digits), and the corpora and the
demo CRM's notes are compared too. `make test` builds the extension (cargo is a
test dependency), so a missing one fails here rather than hiding behind the
fallback.
"""

from __future__ import annotations

import base64
import os
import random
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.core.detectors import (
    Hit,
    checks,
    detect,
    native,
    python_classify_value,
    python_detect,
)
from gateway.core.normalize import normalize
from gateway.demo.checksums import luhn_check_digit, resident_id_check_char
from gateway.demo.data import generate_customers, generate_note

pytestmark = pytest.mark.skipif(
    not native.status()[0] and native.status()[1].startswith("turned off"),
    reason="compiled detectors turned off by CRM_GATEWAY_PYTHON_DETECTORS=1",
)

CORPORA = Path(__file__).parent / "corpora"


def _compiled(text: str) -> list[native.Found] | None:
    from gateway.core import _native

    today = date.today()
    return _native.scan_numbers(text, (checks.IMPORT_YEAR, today.year, today.month, today.day))


def _same(text: str) -> None:
    expected = native.python_scan_numbers(text)
    got = _compiled(text)
    if got is None:  # handed back to Python: only for other scripts' digits
        assert any(not c.isascii() and c.isnumeric() for c in text), text
        assert native.scan_numbers(text) == expected
        return
    assert got == expected, text


def test_the_extension_is_built_and_used() -> None:
    running, why = native.status()
    assert running, why
    assert native.scan_numbers("tel 13812345678") == [(4, 15, "mobile", "mobile", 0.9)]


# --- pieces -------------------------------------------------------------------------


def _resident_id(rng: random.Random, birth: date | None = None) -> str:
    region = rng.choice(["110105", "310104", "440305", "510107", "710000", "810000", "999999"])
    born = birth or date(1940, 1, 1) + timedelta(days=rng.randrange(30000))
    body = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return body + resident_id_check_char(body)


def _card(rng: random.Random) -> str:
    prefix = rng.choice(["6222", "6217", "4111", "5105", "2221", "3530", "3400", "9559", "60"])
    body = prefix + "".join(rng.choice("0123456789") for _ in range(rng.choice([10, 11, 14, 15])))
    return body + luhn_check_digit(body)


def _uscc(rng: random.Random) -> str:
    chars = checks.USCC_CHARSET
    body = rng.choice("9159") + rng.choice("123") + f"{rng.randrange(10**6):06d}"
    body += "".join(rng.choice(chars) for _ in range(9))
    total = sum(chars.index(c) * pow(3, i, 31) for i, c in enumerate(body))
    return body + chars[(31 - total % 31) % 31]


def _grouped(rng: random.Random, number: str) -> str:
    """`number` cut into groups the way people write it, or at random."""
    seps = [" ", "-", "·", "  ", "--", ""]
    cuts = sorted(rng.sample(range(1, len(number)), k=min(len(number) - 1, rng.randrange(4))))
    parts = [number[a:b] for a, b in zip([0, *cuts], [*cuts, len(number)], strict=True)]
    return (
        rng.choice(seps).join(parts)
        if rng.random() < 0.5
        else "".join(p + rng.choice(seps) for p in parts).rstrip()
    )


# fmt: off
KEYWORDS = [
    "身份证", "证件号", "卡号", "银行卡", "账号", "账户", "户名", "account", "ACCT", "证券",
    "股东", "一码通", "邮编", "zip", "电话", "Tel", "传真", "台胞证", "idno", "stock",
    "资金账号", "ID card",
]
# fmt: on
LABELS = ["发票代码", "编号", "订单号", "Code", "NO.", "no", "ref", "流水"]
WORDS = [
    "张三",
    "客户",
    "，",
    "。",
    "先生",
    "备注：",
    "的",
    "一二三四五",
    "〇",
    "abc",
    "Rd",
    "No",
    "K",
    "İ",
    "ß",
    "Σ",
]
SINGLES = [" ", "  ", "\t", "\n", "-", "·", "+", "X", "/", "@", "(", "）", "#", "=", "&", "%"]
OTHER_DIGITS = ["١٢٣٤٥٦", "１３８", "²", "Ⅻ", "𝟘𝟙", "߀"]
STAMPS = ["2024-11-05", "2024-11-05T10:00:00.123456Z", "12:30", "1.2.3.4"]


def _uuid(rng: random.Random) -> str:
    a, b, c, d, e = (rng.getrandbits(n) for n in (32, 16, 16, 16, 48))
    return f"{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}"


def _piece(rng: random.Random) -> str:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 24)))
    today = date.today()
    mobile_head = rng.choice(["138", "145", "154", "199", "194", "174", "170"])
    area = rng.choice(["010", "021", "0755", "0571", "0101", "020"])
    makers = [
        lambda: _resident_id(rng),
        lambda: _resident_id(rng, today + timedelta(days=rng.choice([-1, 0, 1]))),
        lambda: _resident_id(rng)[:-1] + rng.choice("x0123456789X"),
        lambda: _card(rng),
        lambda: mobile_head + digits[:8].ljust(8, "7"),
        lambda: rng.choice(["+86", "+86 ", "+86-", "86", "0086", "+8"]) + "1391234" + digits[:4],
        lambda: area + rng.choice(["-", " ", ""]) + rng.choice("2345678019") + digits[:7],
        lambda: _uscc(rng),
        lambda: rng.choice(["400", "800", "95"]) + digits[:7],
        lambda: _grouped(rng, rng.choice([_card(rng), _resident_id(rng), "13812345678", digits])),
        lambda: digits,
        lambda: digits + rng.choice(["X", "x", "XA", "a", ".5", ".", "元"]),
        lambda: rng.choice(["3600.", "1.", "v", "ab", "0x", "."]) + digits,
        lambda: rng.choice(KEYWORDS) + rng.choice(["", ":", "：", " ", "是"]),
        lambda: rng.choice(LABELS) + rng.choice(["", ":", " : ", "#", "：", " \n", "\x1c"]),
        lambda: _uuid(rng),
        lambda: rng.choice(STAMPS),
        lambda: rng.choice(WORDS),
        lambda: rng.choice(SINGLES),
        lambda: rng.choice(OTHER_DIGITS),
    ]
    return rng.choice(makers)()


@st.composite
def texts(draw: st.DrawFn) -> str:
    rng = random.Random(draw(st.integers(0, 2**32)))
    return "".join(_piece(rng) for _ in range(draw(st.integers(1, 14))))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts())
@example("联系电话 010-62345678，身份证 11010519491231002X")
@example("卡号 6222 0200 0000 0000 000 备用 138 1234 5678")
@example("+86 138 1234 5678 / 0086-13812345678 / 861381234567")
@example("发票代码: 044031900111 订单号#02165432109")
@example("3600.0215512345 ab02165432109 02165432109.5")
@example("id 123e4567-e89b-12d3-a456-021654321098")
def test_scan_numbers_equals_the_python_scan(text: str) -> None:
    _same(text)
    _same(normalize(text).text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789 -·+86X.x:#：号码电话abc\n\x1c"), max_size=60))
def test_scan_numbers_equals_on_dense_digit_text(text: str) -> None:
    _same(text)


def _corpus_and_demo_lines() -> list[str]:
    """Every line of the prose corpora, and the demo CRM's notes and field values."""
    lines = [
        line.split("\t")[0]
        for name in ("prose_positive.tsv", "prose_negative.txt")
        for line in (CORPORA / name).read_text(encoding="utf-8").splitlines()
    ]
    for i, customer in enumerate(generate_customers(count=200)):
        lines.append(generate_note(7, i, customer)["text"])
        lines.extend(str(v) for v in customer.values())
    return lines


def test_scan_numbers_equals_on_the_corpora_and_demo_notes() -> None:
    lines = _corpus_and_demo_lines()
    compared = 0
    for line in lines:
        text = normalize(line).text
        _same(text)
        compared += _compiled(text) is not None
    assert compared == len(lines)


def test_a_long_text_is_scanned_with_the_gil_released_and_equal() -> None:
    rng = random.Random(5)
    text = " ".join(_piece(rng) for _ in range(3000))
    assert len(text) > 4096
    _same(text)


def test_free_text_detection_is_unchanged_by_the_compiled_scan() -> None:
    text = "客户张三，电话 138-1234-5678，身份证 11010519491231002X，卡号 6222020000000000008"
    hits = detect(text)
    assert [(h.category, text[h.start : h.end]) for h in hits] == [
        ("name", "张三"),
        ("mobile", "138-1234-5678"),
        ("id_number", "11010519491231002X"),
        ("bank_card", "6222020000000000008"),
    ]


def test_without_the_extension_the_python_scan_runs_and_says_so() -> None:
    script = (
        "from gateway.core.detectors import detect, native\n"
        "print(native.status())\n"
        "print([(h.category, h.start, h.end) for h in detect('电话 13812345678')])\n"
    )
    env = {**os.environ, "CRM_GATEWAY_PYTHON_DETECTORS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [
        "(False, 'turned off by CRM_GATEWAY_PYTHON_DETECTORS=1')",
        "[('mobile', 3, 14)]",
    ]


# --- the whole free-text scan -------------------------------------------------------------

NAMES_CTX = ["客户", "联系人", "紧急联系人", "配偶", "姓名：", "户名是", "法定代表人"]
PEOPLE = ["张三", "欧阳敏", "王小明", "李", "司马光明", "赵先生", "钱女士说", "孙手机"]
PLACES = [
    "北京市朝阳区建国路88号",
    "广东省深圳市南山区科技园路1号3栋201室",
    "住址：朝阳区和平街5号楼2单元301",
    "锦绣苑29栋2单元2403室",
    "阳光花园3号楼1202",
    "A栋3层",
    "家住幸福小区5栋",
    "上海市",
]
MONEY = [
    "年收入约60万元",
    "可投资资产300万",
    "余额：12,345.67元",
    "起投金额5万元",
    "投资了 20 万",
    "月薪 2万 ",
    "工资RMB 8000",
    "营收1亿",
]
RISK = [
    "风险测评结果为C3稳健型",
    "C4（成长型）",
    "C1保守型至C5激进型",
    "风险等级R3",
    "客户风险等级R2",
    "稳健型投资者",
    "产品风险等级R4",
    "C2",
    "测评结果：进取型",
]
CODES = [
    "京A12345",
    "粤B·D12345",
    "沪AD12345学",
    "护照E12345678",
    "passport G12345678",
    "股东A123456789",
    "stock B123456789",
    "91350100M000100Y43",
    "92440300MA5F00000X",
]
SECRETS = [
    "password: hunter22",
    "密码是abc123",
    "PIN=1234",
    "token abc",
    "api-key=XyZ123456",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
    ";6222020000000000008=2512101?",
    "验证码 832145",
    "cvv2 123",
]
NET = [
    "a.b@example.com",
    "x@y.png",
    ".dot@x.cn",
    "10.1.2.3",
    "256.1.1.1",
    "1.2.3.4.5",
    "v1.2.3.4",
    "version: 10.0.0.1",
    "fe80::1",
    "2001:db8::ff00:42:8329",
    "12:30:45",
    "a::b",
    "::",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::",
    "https://x.cn/portal/invoice/AbCdEfGh12345678IjKl",
    "/share/abcdefgh12345678",
    "?token=abcd&sig=XYZ1234567890abcdEF",
    "/api/v1/users/42",
    "http://h/a/b?code=AbCdEfGhIjKlMnOp12",
    "#k=abcdefghijklmnop1234",
    "/x/AbCdEfGhIjKlMnOpQrStUvWxYz123456",
    "/x/123e4567-e89b-12d3-a456-426614174000",
]
FULL_WIDTH = [
    "１３８１２３４５６７８",
    "（",
    "）",
    "：",
    "，",
    "＠",
    "．",
    "－",
    "\u3000",
    "\u00a0",
]
SPOKEN = "一二三四五六七八九〇零幺 -·"
PUNCT = list("的在是，。；、“”《》【】")
DENSE = "0123456789abcdefABCXx:.@/=+-_ 张三客户号栋室型C风险：，（）"
FOREIGN = ["é", "ü", "ñ", "Ω", "я", "々", "\u200b", "\u0301", "\U0001f600", "ｶ", "Ⅻ", "〇"]


def _encoded_piece(rng: random.Random) -> str:
    inner = rng.choice(["13812345678", "a.b@example.com", "11010519491231002X", "hello", "张三"])
    data = inner.encode()
    kind = rng.randrange(4)
    if kind == 0:
        return base64.b64encode(data).decode()
    if kind == 1:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")
    if kind == 2:
        return data.hex()
    return base64.b64encode(bytes(rng.getrandbits(8) for _ in range(rng.randrange(6, 20)))).decode()


def _scan_piece(rng: random.Random) -> str:
    kind = rng.randrange(14)
    if kind == 0:
        return rng.choice(NAMES_CTX) + rng.choice(PEOPLE)
    if kind == 1:
        return rng.choice(PLACES)
    if kind == 2:
        return rng.choice(MONEY)
    if kind == 3:
        return rng.choice(RISK)
    if kind == 4:
        return rng.choice(CODES)
    if kind == 5:
        return rng.choice(SECRETS)
    if kind == 6:
        return rng.choice(NET)
    if kind == 7:
        return rng.choice(FULL_WIDTH)
    if kind == 8:
        return _encoded_piece(rng)
    if kind == 9 and rng.random() < 0.2:
        return rng.choice(FOREIGN)
    if kind == 10:
        return "".join(
            rng.choice("一二三四五六七八九〇零幺 -·") for _ in range(rng.randrange(3, 9))
        )
    if kind == 11:
        return rng.choice(
            ["的", "在", "是", "，", "。", "；", "、", "“", "”", "《", "》", "【", "】"]
        )
    return _piece(rng)


@st.composite
def notes(draw: st.DrawFn) -> str:
    rng = random.Random(draw(st.integers(0, 2**32)))
    glue = draw(st.sampled_from(["", " ", "，", "\n"]))
    return glue.join(_scan_piece(rng) for _ in range(draw(st.integers(1, 12))))


def _same_scan(text: str) -> bool:
    """Whether the compiled scan read `text` (else it handed it back, for a reason)."""
    expected = python_detect(text)
    found = native.detect(text)
    if found is None:
        return False
    got = [Hit(cat, s, e, det, conf) for s, e, cat, det, conf in found]
    assert got == expected, text
    return True


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notes())
@example("客户张三，电话 138-1234-5678，身份证 11010519491231002X，卡号 6222020000000000008")
@example("联系人：欧阳敏先生，住址：北京市朝阳区建国路88号院3号楼2单元1201室")
@example("年收入约60万元，风险测评结果为C3稳健型，C1保守型至C5激进型")
@example(
    "https://crm.example.cn/portal/invoice/Zx8Kq2Lm9Np4Rs7Tv1Wy3Ab5Cd6Ef0Gh?sig=abcdEFGH12345678"
)
@example("MTM4MTIzNDU2Nzg= 3133383132333435363738 fe80::1 10.0.0.1 a.b@example.com")
@example("１３８　１２３４　５６７８，一三九一二三四五六七八")
def test_the_compiled_scan_equals_the_python_scan(text: str) -> None:
    _same_scan(text)


@settings(max_examples=1500, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from("0123456789abcdefABCXx:.@/=+-_ 张三客户号栋室型C风险：，（）"),
        max_size=80,
    )
)
def test_the_compiled_scan_equals_on_dense_text(text: str) -> None:
    _same_scan(text)


def test_the_compiled_scan_reads_the_corpora_and_demo_notes_alike() -> None:
    lines = _corpus_and_demo_lines()
    read = sum(_same_scan(line) for line in lines)
    assert read == len(lines)  # none of them needs the Python scan


def test_text_outside_the_domain_is_handed_back_to_python() -> None:
    for text in ("café 13812345678", "电话\u200b13812345678", "〇一二三四五", "😀 13812345678"):
        assert native.detect(text) is None
        assert detect(text) == python_detect(text)
    # an encoded run that decodes to non-ASCII text is Python's to read
    run = base64.b64encode("张三 13812345678".encode()).decode()
    assert native.detect(f"note {run}") is None


def test_the_domain_maps_each_character_as_normalize_does() -> None:
    from gateway.core.normalize import normalize

    for ch, target in native.scan_domain().items():
        norm = normalize(ch)
        assert norm.text == target and norm.offsets is None, repr(ch)


_MASK_PAGES = """
import hashlib, random, sys
from pathlib import Path
import orjson
from gateway.core.catalog import Catalog
from gateway.core.detectors import native
from gateway.core.enforce import build_enforcer
from gateway.core.masking import Masker
from gateway.core.model import Subject
from gateway.core.static_policy import static_decision
from gateway.core.taxonomy import Taxonomy
from gateway.demo.data import generate_customers, generate_note

root = Path(sys.argv[1])
taxonomy = Taxonomy.load(root / "config" / "taxonomy.yaml")
catalog = Catalog.load(root / "config" / "crm" / "demo.yaml")
masker = Masker(taxonomy, b"differential-key-0123456789abcdef")
customers = generate_customers(seed=11, count=240)
for i, c in enumerate(customers):
    c["notes"] = generate_note(11, i, c)["text"] + sys.argv[2].split("\\x1f")[i % 40]
digest = hashlib.sha256()
for clearance in ("L0", "L2", "L3"):
    subject = Subject(id="u-sales-01", clearance=clearance)
    decision = static_decision(taxonomy, subject, method="GET")
    for route in ("customer_list", None):
        for p in range(0, len(customers), 20):
            page = {"count": 20, "results": customers[p : p + 20]}
            enforcer = build_enforcer(
                taxonomy=taxonomy, route=catalog.route(route) if route else None,
                decision=decision, subject_id="u", masker=masker,
            )
            digest.update(orjson.dumps(enforcer.rewrite_document(page)))
            digest.update(orjson.dumps(enforcer.report.to_audit(), option=orjson.OPT_SORT_KEYS))
print(native.status()[0], digest.hexdigest())
"""


def test_masked_pages_and_reports_are_identical_with_either_scan() -> None:
    """The whole enforcer on demo CRM pages (notes extended with generated free text),
    for three clearances, on a catalogued route and as unknown keys: the same bytes
    and the same audit report whether the compiled or the Python scan runs."""
    rng = random.Random(9)
    extra = "\x1f".join(" ".join(_scan_piece(rng) for _ in range(6)) for _ in range(40))
    root = str(Path(__file__).resolve().parents[3])
    runs = []
    for flag in ("0", "1"):
        env = {**os.environ, "CRM_GATEWAY_PYTHON_DETECTORS": flag}
        out = subprocess.run(
            [sys.executable, "-c", _MASK_PAGES, root, extra],
            env=env, capture_output=True, text=True, check=True, cwd=root,
        )  # fmt: skip
        runs.append(out.stdout.split())
    (compiled, digest_compiled), (python, digest_python) = runs
    assert (compiled, python) == ("True", "False")
    assert digest_compiled == digest_python


@pytest.mark.parametrize(
    "unit",
    ["1:", "abcd:", "a::b:", "12 ", "1.2.", "QUJD", "客户张三", "风险测评为为", "/a/b", "a@b.",
     "京A1", "password ", "花园1栋1单元", "收入1,1,", "+86 ", "C3稳健型至", "?t=", "eyJhbGci."],
)  # fmt: skip
def test_long_repetitive_text_is_scanned_alike(unit: str) -> None:
    """Repetition that makes backtracking matchers work hardest (the compiled matchers
    of look-around patterns are hand-written): same hits, long texts with the GIL
    released (more than 4 KB)."""
    text = unit * (6000 // len(unit))
    assert _same_scan(text)


# --- whole values -------------------------------------------------------------------------

KEY_HINTS = [
    None, "mobile", "phone", "name", "khxm", "passport_no", "gdzh", "id_number", "card", "zip",
    "tel", "account", "证券账号", "姓名", "Remark", "TEL", "台胞证", "Contact_Name", "yzbm",
]  # fmt: skip


def _same_value(value: str, key: str | None) -> bool:
    """Whether the compiled classifier decided `value` (and then as Python does)."""
    done, found = native.classify_value(value, key.lower() if key else "")
    if not done:
        return False
    assert (None if found is None else Hit(*found)) == python_classify_value(value, key), value
    return True


@st.composite
def values(draw: st.DrawFn) -> tuple[str, str | None]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    value = "".join(_scan_piece(rng) for _ in range(rng.randint(1, 3)))
    value = draw(st.sampled_from(["", " ", "'", "\t"])) + value + draw(st.sampled_from(["", " "]))
    return value, draw(st.sampled_from(KEY_HINTS))


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values())
@example(("13812345678", None))
@example(("'+8613812345678", "mobile"))
@example(("张三", "name"))
@example(("欧阳小明", "khxm"))
@example(("京A12345", None))
@example(("北京市朝阳区建国路88号", None))
@example(("E12345678", "passport"))
@example(("A123456789", "gdzh"))
@example(("MTM4MTIzNDU2Nzg=", None))
@example(("::ffff:10.1.2.3", None))
@example(("010.1.2.3", None))
@example(("2024-11-05T10:00:00Z", None))
@example(("91350100M000100Y43", None))
def test_the_compiled_classifier_equals_the_python_one(value: tuple[str, str | None]) -> None:
    _same_value(*value)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=st.sampled_from(DENSE), max_size=30), st.sampled_from(KEY_HINTS))
def test_the_compiled_classifier_equals_on_dense_values(value: str, key: str | None) -> None:
    _same_value(value, key)


def test_the_compiled_classifier_decides_every_demo_value_alike() -> None:
    decided = total = 0
    for customer in generate_customers(count=300):
        for key, value in customer.items():
            if isinstance(value, str):
                total += 1
                decided += _same_value(value, key)
    assert decided == total


def _python_word_lists() -> dict[str, list[str]]:
    from gateway.core import normalize
    from gateway.core.detectors import numbers, patterns, prose, urls

    def alternatives(regex: str) -> list[str]:
        return regex.removeprefix("(?:").removesuffix(")").split("|")

    lists = {
        "patterns._COMPOUND": alternatives(patterns._COMPOUND),
        "patterns._SINGLE": list(patterns._SINGLE),
        "patterns._NAME_CTX": alternatives(patterns._NAME_CTX),
        "patterns._STOP": sorted(patterns._STOP),
        "patterns._PROVINCES": alternatives(patterns._PROVINCES),
        "patterns._FILE_TLDS": sorted(patterns._FILE_TLDS),
        "patterns.KW_PASSPORT": alternatives(patterns.KW_PASSPORT.pattern),
        "patterns.KW_SECURITIES": alternatives(patterns.KW_SECURITIES.pattern),
        "patterns.PLATE_PROVINCES": list(
            patterns.PLATE_RE.pattern[1 : patterns.PLATE_RE.pattern.index("]")]
        ),
        "prose._INCOME_CUES": alternatives(prose._INCOME_CUES),
        "prose._ASSET_CUES": alternatives(prose._ASSET_CUES),
        "prose._BALANCE_CUES": alternatives(prose._BALANCE_CUES),
        "prose._RISK_CUE": alternatives(prose._RISK_CUE),
        "prose._RISK_TYPES": alternatives(prose._RISK_TYPES),
        "prose._PRODUCT_BEFORE": list(prose._PRODUCT_BEFORE),
        "prose._PRODUCT_RISK": list(prose._PRODUCT_RISK),
        "prose._PERSON": list(prose._PERSON),
        "urls._BEARER_PARAMS": alternatives(urls._BEARER_PARAMS),
        "urls._LONG_PARAMS": alternatives(urls._LONG_PARAMS),
        "urls._SHARE_SEGMENTS": sorted(urls._SHARE_SEGMENTS),
        "normalize._NUMERALS": list(normalize._NUMERALS),
    }
    for name in ("KW_ID", "KW_CARD", "KW_ACCOUNT", "KW_SECURITIES", "KW_POSTAL", "KW_PHONE"):
        lists[f"numbers.{name}"] = alternatives(getattr(numbers, name).pattern)
    lists["numbers.KW_TW_PERMIT"] = alternatives(numbers.KW_TW_PERMIT.pattern)
    return lists


def test_the_word_lists_copied_into_the_compiled_code_are_the_python_ones() -> None:
    """An edit to a keyword, cue or surname list on one side only fails here (the
    generated texts may never spell the word that was added)."""
    from gateway.core import _native

    sets = {"patterns._STOP", "patterns._FILE_TLDS", "urls._SHARE_SEGMENTS"}
    compiled = {
        name: sorted(words) if name in sets else words for name, words in _native.word_lists()
    }
    assert compiled == _python_word_lists()


class PanicException(BaseException):
    """What PyO3 raises for a Rust panic (a BaseException, matched by name)."""


class _Panicking:
    VERSION = "test"

    def __getattr__(self, name: str) -> object:
        def panic(*_args: object) -> object:
            raise PanicException("index out of bounds")

        return panic


@pytest.mark.parametrize(
    ("content_type", "body", "limits"),
    [
        ("application/json", "json", "LIMITS"),
        ("application/json", "json", "STREAM_NOW"),
        ("text/csv; charset=utf-8", "csv", "LIMITS"),
    ],
)
def test_a_panic_in_the_compiled_detectors_refuses_the_body(
    monkeypatch: pytest.MonkeyPatch, content_type: str, body: str, limits: str
) -> None:
    """A Rust panic reaches Python as a BaseException, which the response path would
    pass on as a cancellation: it is made an ordinary error, so the rewrite fails
    (the handler then refuses the response) and no byte of the CRM's body is
    returned, buffered or streamed, JSON or CSV."""
    from gateway.core.catalog import Catalog
    from gateway.core.enforce import build_enforcer
    from gateway.core.masking import Masker
    from gateway.core.model import Subject
    from gateway.core.rewrite import RewriteError
    from gateway.core.static_policy import static_decision
    from gateway.core.taxonomy import Taxonomy
    from tests.unit.core.codecs import helpers

    root = Path(__file__).resolve().parents[3]
    taxonomy = Taxonomy.load(root / "config" / "taxonomy.yaml")
    catalog = Catalog.load(root / "config" / "crm" / "demo.yaml")
    decision = static_decision(taxonomy, Subject(id="u-sales-01", clearance="L2"), method="GET")
    note = "客户来电，手机13912345678，请回电"
    if body == "csv":
        route, data = "customer_export_csv", f"id,name,notes\nC000001,张伟,{note}\n".encode()
    else:
        page = {"count": 1, "results": [{"id": "C000001", "name": "张伟", "notes": note}]}
        route, data = "customer_list", orjson.dumps(page)
    enforcer = build_enforcer(
        taxonomy=taxonomy,
        route=catalog.route(route),
        decision=decision,
        subject_id="u",
        masker=Masker(taxonomy, b"panic-test-key-0123456789abcdef01"),
    )
    monkeypatch.setattr(native, "_NATIVE", _Panicking())
    detectors_module = sys.modules["gateway.core.detectors"]
    detectors_module._detect_memo.cache_clear()
    detectors_module._classify_memo.cache_clear()
    with pytest.raises(RewriteError):
        helpers.run(data, content_type, enforcer, limits=getattr(helpers, limits))
