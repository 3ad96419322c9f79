"""Detectors: reference vectors, false positives, normalised input, key rules."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from gateway.core.detectors import (
    Hit,
    category_for_key,
    checks,
    classify_value,
    detect,
    is_free_text_key,
)
from gateway.core.taxonomy import Taxonomy

ROOT = Path(__file__).resolve().parents[3]


def _id_check(body17: str) -> str:
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    return "10X98765432"[sum(int(c) * w for c, w in zip(body17, weights, strict=True)) % 11]


def _cats(text: str) -> list[tuple[str, str]]:
    return [(h.category, text[h.start : h.end]) for h in detect(text)]


# --- checksums -----------------------------------------------------------------


def test_reference_vectors_pass_their_checksums() -> None:
    assert checks.mod11_2_ok("11010519491231002X")
    assert checks.resident_id_ok("11010519491231002X")
    assert checks.uscc_ok("91110000600037341L")
    assert checks.luhn_ok("4111111111111111")
    assert checks.luhn_ok("6222600260001072444")
    assert checks.residence_permit_ok("810000199001010019")


@pytest.mark.parametrize(
    "bad",
    [
        "11010519491231002Y",  # not a check character
        "110105194912310021",  # wrong check digit
        "00010519491231002X",  # no such province
        "110105" + "20991231" + "001" + _id_check("11010520991231001"),  # born in the future
        "110105" + "19490230" + "001" + _id_check("11010519490230001"),  # 30 February
    ],
)
def test_invalid_ids_fail(bad: str) -> None:
    assert not checks.resident_id_ok(bad)


def test_uscc_rejects_wrong_check_and_forbidden_letters() -> None:
    assert not checks.uscc_ok("91110000600037341M")
    assert not checks.uscc_ok("9111000060003734IL")


@pytest.mark.parametrize("seg", ["130", "145", "165", "170", "192", "196", "199"])
def test_allocated_mobile_segments(seg: str) -> None:
    assert checks.mobile_ok(seg + "12345678")


@pytest.mark.parametrize("seg", ["142", "123", "154", "194", "110", "100"])
def test_unallocated_mobile_segments(seg: str) -> None:
    assert not checks.mobile_ok(seg + "12345678")
    assert classify_value(seg + "12345678") is None


# --- classify_value: whole values --------------------------------------------


@pytest.mark.parametrize(
    ("value", "key", "category", "detector"),
    [
        ("11010519491231002X", None, "id_number", "resident_id"),
        ("11010519491231002x", None, "id_number", "resident_id"),
        ("110105 19491231 002X", None, "id_number", "resident_id"),
        ("１１０１０５１９４９１２３１００２Ｘ", None, "id_number", "resident_id"),
        ("810000199001010019", None, "id_number", "residence_permit"),
        ("91110000600037341L", None, "uscc_org", "uscc"),
        ("4111111111111111", None, "bank_card", "bank_card"),
        ("6222 6002 6000 1072 444", None, "bank_card", "bank_card"),
        ("13812345678", None, "mobile", "mobile"),
        ("+86 138 1234 5678", None, "mobile", "mobile"),
        ("0086-138-1234-5678", None, "mobile", "mobile"),
        ("010-62345678", None, "landline", "landline"),
        ("(0755) 2345 6789", None, "landline", "landline"),
        ("zhangwei@example.com", None, "email", "email"),
        ("192.168.1.10", None, "ip_address", "ipv4"),
        ("2001:db8::1", None, "ip_address", "ipv6"),
        ("京A12345", None, "licence_plate", "licence_plate"),
        ("北京市海淀区中关村大街1号院3栋201室", None, "address", "address"),
        ("张伟", "custName", "name", "name_value"),
        ("欧阳娜娜", "姓名", "name", "name_value"),
        ("E12345678", "passportNo", "passport", "passport"),
        ("A123456789", "securities_account", "securities_account", "securities_account"),
        ("110105491231002", "idNo", "id_number", "legacy_id"),
        ("100080", "postcode", "postal_code", "postal_code"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghij", None, "credentials", "jwt"),
        (";6222600260001072444=2512101123?", None, "credentials", "track2"),
    ],
)
def test_classify_value_finds_whole_identifiers(
    value: str, key: str | None, category: str, detector: str
) -> None:
    hit = classify_value(value, key_hint=key)
    assert hit == Hit(category, 0, len(value), detector, hit.confidence if hit else 0.0)


def test_individual_business_uscc_is_personal() -> None:
    body = "92110105MA0000000"
    cs = checks.USCC_CHARSET
    total = sum(cs.index(c) * pow(3, i, 31) for i, c in enumerate(body))
    code = body + cs[(31 - total % 31) % 31]
    hit = classify_value(code)
    assert hit is not None
    assert hit.category == "uscc_person"


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("20240301123456", None),  # order number / timestamp-like
        ("1700000000000", None),  # unix ms timestamp
        ("1700000000", None),  # unix s timestamp
        ("4008001234", None),  # corporate 400 number
        ("400-800-1234", None),  # corporate 400 number, grouped
        ("8001234567", None),  # corporate 800 number
        ("110105491231002", None),  # 15-digit legacy ID without keyword
        ("E12345678", None),  # passport without keyword
        ("100080", None),  # postal code without keyword
        ("1.2.3", None),
        ("张伟", None),  # a name needs a name-like key
        ("12345", None),
        ("hello world", None),
        ("2024-03-01T10:00:00+08:00", None),
        ("6222600260001072445", None),  # Luhn fails, no card keyword
    ],
)
def test_classify_value_rejects_non_identifiers(value: str, key: str | None) -> None:
    assert classify_value(value, key_hint=key) is None


def test_non_luhn_unionpay_card_needs_keyword() -> None:
    assert classify_value("6214830000000000001") is None
    hit = classify_value("6214830000000000001", key_hint="cardNo")
    assert hit is not None
    assert hit.category == "bank_card"
    assert hit.confidence < 0.9


# --- detect: free text ---------------------------------------------------------


def test_detect_note_with_mixed_pii() -> None:
    text = (
        "客户张伟来电，手机13812345678，身份证 110105 19491231 002x，卡号4111111111111111，"
        "邮箱zhangwei@example.com，住址北京市海淀区中关村大街1号院3栋201室，车牌京A12345，"
        "登录IP 192.168.1.10，查询密码: abc123。"
    )
    found = _cats(text)
    assert found == [
        ("name", "张伟"),
        ("mobile", "13812345678"),
        ("id_number", "110105 19491231 002x"),
        ("bank_card", "4111111111111111"),
        ("email", "zhangwei@example.com"),
        ("address", "北京市海淀区中关村大街1号院3栋201室"),
        ("licence_plate", "京A12345"),
        ("ip_address", "192.168.1.10"),
        ("credentials", "abc123"),
    ]


def test_hits_are_sorted_and_non_overlapping() -> None:
    hits = detect("身份证11010519491231002X 电话13812345678 卡6222600260001072444")
    assert [h.start for h in hits] == sorted(h.start for h in hits)
    for a, b in itertools.pairwise(hits):
        assert a.end <= b.start


def test_full_width_spans_index_the_original_text() -> None:
    text = "手机：１３８ １２３４ ５６７８。"
    (hit,) = detect(text)
    assert hit.category == "mobile"
    assert text[hit.start : hit.end] == "１３８ １２３４ ５６７８"


def test_expanded_characters_do_not_shift_spans() -> None:
    text = "㈱⑩号客户，手机13812345678"
    (hit,) = [h for h in detect(text) if h.category == "mobile"]
    assert text[hit.start : hit.end] == "13812345678"


def test_plus86_prefix_is_part_of_the_span() -> None:
    text = "call +86 138-1234-5678 now"
    (hit,) = detect(text)
    assert text[hit.start : hit.end] == "+86 138-1234-5678"


@pytest.mark.parametrize(
    "text",
    [
        "订单号 20240301123456789012 已发货",
        "时间戳 1700000000000 毫秒",
        "version 1.2.3.4 released",
        "版本 v10.0.0.1",
        "客服热线 400-800-1234",
        "数字 6222020200112345678 9 个",  # 19 digits, not Luhn, no keyword
        "金额 120000.55 元",
        "日期 2024-03-01 10:00:00",
        "1110105194912310029",  # 19 digits containing a valid 18-digit ID
        "110105194912310029" + "1",
        "价格 138 1234 56789",  # not a 3-4-4 grouping
        "ratio 13:45:12",
    ],
)
def test_no_false_positives(text: str) -> None:
    assert detect(text) == []


def test_digit_boundaries_are_enforced() -> None:
    assert detect("编号 113812345678") == []
    assert detect("编号 138123456789") == []
    assert [h.category for h in detect("abc13812345678xyz")] == ["mobile"]


def test_credential_outranks_card_inside_track2() -> None:
    text = "磁道 ;4111111111111111=25121011234567? end"
    assert [h.category for h in detect(text)] == ["credentials"]


def test_id_outranks_everything_it_overlaps() -> None:
    # an all-digit 18-character run that passes the ID checks is an ID, not a USCC or account
    assert [h.category for h in detect("账号 11010519491231002X")] == ["id_number"]


def test_keyword_context_for_weak_detectors() -> None:
    assert _cats("护照号码 E12345678 有效") == [("passport", "E12345678")]
    assert _cats("码 E12345678 有效") == []
    assert _cats("邮编 100080") == [("postal_code", "100080")]
    assert _cats("身份证 110105491231002") == [("id_number", "110105491231002")]
    assert _cats("股东账户 A123456789") == [("securities_account", "A123456789")]


def test_names_near_context_words() -> None:
    assert _cats("联系人：欧阳娜娜，") == [("name", "欧阳娜娜")]
    assert _cats("王伟先生来电") == [("name", "王伟")]
    assert _cats("客户张伟手机已停机") == [("name", "张伟")]
    assert _cats("客户经理来电") == []
    assert _cats("客户要求回电") == []


def test_credential_keywords_in_text() -> None:
    assert _cats("password=hunter22 ok") == [("credentials", "hunter22")]
    assert _cats("验证码 482913") == [("credentials", "482913")]
    assert _cats("spinning wheel 1234") == []


def test_every_detector_category_exists_in_the_default_taxonomy() -> None:
    from gateway.core.detectors import PRIORITY

    tax = Taxonomy.load(ROOT / "config" / "taxonomy.yaml")
    for cat in PRIORITY:
        assert tax.category(cat).name == cat


# --- field names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "category"),
    [
        ("mobile", "mobile"),
        ("phone", "mobile"),
        ("sjhm", "mobile"),
        ("tel", "mobile"),
        ("landline", "landline"),
        ("officePhone", "landline"),
        ("idNo", "id_number"),
        ("id_number", "id_number"),
        ("zjhm", "id_number"),
        ("证件号码", "id_number"),
        ("cardNo", "bank_card"),
        ("yhkh", "bank_card"),
        ("银行卡号", "bank_card"),
        ("creditCardNo", "bank_card"),
        ("password", "credentials"),
        ("query_password", "credentials"),
        ("pwd", "credentials"),
        ("pin", "credentials"),
        ("cvv2", "credentials"),
        ("密码", "credentials"),
        ("验证码", "credentials"),
        ("api_key", "credentials"),
        ("accessToken", "credentials"),
        ("income", "income"),
        ("annual_income", "income"),
        ("收入", "income"),
        ("balance", "balance"),
        ("余额", "balance"),
        ("total_assets", "assets"),
        ("address", "address"),
        ("地址", "address"),
        ("email", "email"),
        ("邮箱", "email"),
        ("name", "name"),
        ("custName", "name"),
        ("khxm", "name"),
        ("姓名", "name"),
        ("companyName", "employer"),
        ("employer", "employer"),
        ("birth_date", "birth_date"),
        ("gender", "gender"),
        ("securities_account", "securities_account"),
        ("holdings", "holdings"),
        ("risk_level", "risk_assessment"),
        ("loginIp", "ip_address"),
        ("ipAddress", "ip_address"),
        ("zip", "postal_code"),
        ("creditCode", "uscc_person"),
        ("customer_no", "customer_no"),
        ("plateNo", "licence_plate"),
    ],
)
def test_category_for_key(key: str, category: str) -> None:
    assert category_for_key(key) == category


@pytest.mark.parametrize(
    "key",
    ["id", "owner", "department", "created_at", "grade", "tier", "spinner", "hotel", "username"],
)
def test_uninformative_keys(key: str) -> None:
    assert category_for_key(key) is None


def test_free_text_keys() -> None:
    assert is_free_text_key("notes")
    assert is_free_text_key("customerRemark")
    assert is_free_text_key("备注")
    assert not is_free_text_key("mobile")


@pytest.mark.parametrize(
    "text",
    [
        "a" * 20_000 + "@",
        "a" * 10_000 + ":" + "b" * 10_000 + "::",
        "1:" * 10_000,
        "1 " * 5_000,
        "北京" + "中" * 20_000,
        "客户" * 10_000,
    ],
)
def test_pathological_inputs_finish_without_hits(text: str) -> None:
    # Quadratic backtracking here would run into the suite's timeout.
    assert detect(text) == []


def test_many_hits_in_a_long_text() -> None:
    text = "客户张伟 手机13812345678 " * 1_000
    hits = detect(text)
    assert len(hits) == 2_000
    assert all(a.end <= b.start for a, b in itertools.pairwise(hits))


def test_encoded_runs_that_hold_an_identifier_are_that_identifier() -> None:
    import base64

    from gateway.core.detectors import decode_run

    card = "6222600260001072444"
    b64 = base64.b64encode(card.encode()).decode()
    assert decode_run(b64) == card
    assert decode_run(b64.rstrip("=")) == card
    assert decode_run(card.encode().hex()) == card  # hex of digits is digits
    assert decode_run("dGhpcyBpcyBub3QgYSBudW1iZXI=") is None  # text without a number
    assert decode_run("9f86d081884c7d659a2feaa0c55ad015") is None  # binary
    hits = detect(f"参考 {b64} 已核对")
    assert [(h.category, h.detector) for h in hits] == [("bank_card", "encoded:bank_card")]
    assert classify_value(b64) is not None
    assert detect("日期 2024-05-17-2024-06-01 电话 138-1234-5678") != []  # phones still found


# --- landlines are never read out of ids, decimals or timestamps -------------------


@pytest.mark.parametrize(
    "text",
    [
        "首次响应时长 3600.0215512345 秒",  # a decimal's fraction
        "took 0.02155123456 s",
        "02155123456.5 ms",  # a number followed by its fraction
        "updated 2026-11-27T02:43:41.0215512345+08:00",  # sub-second digits
        "case 7f3c2a10-0215-5123-4567-89abcdef0123 tree",  # inside a UUID
        "node ab0215512345cd",  # glued to hex letters
        "sha 0a3f0215512345ff",
        "发票代码 044031900111",  # a code by its label
        "订单号：02155123456",
    ],
)
def test_landline_digits_inside_ids_decimals_and_timestamps_are_no_landline(text: str) -> None:
    assert [c for c, _ in _cats(text)] == []


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("电话021-55123456。", "021-55123456"),
        ("座机 0755 8888 6666", "0755 8888 6666"),
        ("tel:02155123456", "02155123456"),
        ("联系电话：010-62345678，工作日", "010-62345678"),
    ],
)
def test_landlines_in_their_own_shape_are_still_found(text: str, span: str) -> None:
    assert ("landline", span) in _cats(text)
