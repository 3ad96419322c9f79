"""Field-name rules: what a CRM field holds, judged by its key alone.

Legacy CRMs name fields in English (`mobile`, `idNo`), pinyin initials (`sjhm`
手机号码, `zjhm` 证件号码, `yhkh` 银行卡号, `khxm` 客户姓名) or Chinese. A key is
lower-cased, split into camelCase/underscore tokens and joined; a rule matches
on the joined key exactly, on a whole token, or on a substring. Rules are
ordered: credentials first (any key that names a secret is a secret, whatever
its value looks like), then the specific before the general (`creditCardNo`
is a card, not credit; `companyName` is an employer, not a name).

Results are memoised: a catalog has a few hundred distinct keys at most.
"""

from __future__ import annotations

import re
from functools import lru_cache

_TOKEN_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[\u4e00-\u9fff]+")

# (category, exact joined keys, whole tokens, substrings)
_RULES: tuple[tuple[str, frozenset[str], frozenset[str], tuple[str, ...]], ...] = tuple(
    (cat, frozenset(exact.split()), frozenset(tokens.split()), tuple(subs.split()))
    for cat, exact, tokens, subs in (
        (
            "credentials",
            "pin cvv cvn cvc otp mm jymm cxmm",
            "pin otp cvv cvv2 cvn cvn2 cvc cvc2",
            "password passwd passcode pwd secret token apikey accesskey privatekey 密码 口令 "
            "验证码 校验码 动态码 安全码 有效期 expiry expdate track2 磁道 smscode verifycode",
        ),
        ("uscc_person", "uscc tyshxydm shxydm", "uscc", "creditcode 信用代码"),
        (
            "bank_card",
            "pan yhkh xykh",
            "pan",
            "cardno cardnum bankcard creditcard debitcard 银行卡 信用卡 借记卡 卡号",
        ),
        (
            "id_number",
            "zjhm sfzh sfzhm zjh",
            "ssn",
            "idno idnum idcard certno certnum certificateno identity nationalid 证件号 身份证",
        ),
        ("passport", "hzhm txzh", "", "passport 护照 通行证 permitno"),
        (
            "securities_account",
            "gdzh zjzh",
            "",
            "securities stockaccount fundaccount capitalaccount 股东 证券账 资金账 一码通",
        ),
        (
            "bank_account",
            "yhzh zh",
            "iban",
            "bankaccount acctno accountno accountnum 银行账 账号 帐号",
        ),
        ("balance", "ye kyzj", "", "balance 余额 可用资金"),
        ("income", "nsr sr", "", "income salary wage 收入 工资"),
        ("assets", "zzc zc aum", "aum", "asset networth 资产"),
        ("holdings", "cc", "", "holding 持仓 position"),
        ("transactions", "jyls", "", "transaction trade txn 流水 成交 委托"),
        ("credit", "zx", "", "credit loan debt 征信 借贷 贷款"),
        ("risk_assessment", "fxdj", "", "risk suitability 风险 适当性"),
        ("email", "yx dzyx", "", "email mail 邮箱"),
        (
            "landline",
            "gddh",
            "fax",
            "landline fixedphone officephone homephone workphone 座机 固话 固定电话 传真",
        ),
        (
            "mobile",
            "sjhm sjh lxdh dh",
            "tel",
            "mobile cellphone phone telephone 手机 电话 contactno",
        ),
        ("postal_code", "yzbm yb", "zip", "postcode postalcode zipcode 邮编 邮政编码"),
        ("ip_address", "", "ip", "ipaddr loginip clientip"),
        ("address", "dz zz", "addr", "address 地址 住址 residence domicile 户籍"),
        ("birth_date", "csrq", "dob", "birth 出生 生日"),
        ("licence_plate", "cphm cph", "", "plate 车牌 carno"),
        ("employer", "gzdw dw", "", "employer company workunit 工作单位 单位"),
        ("occupation", "zy zw", "job", "occupation profession 职业 职务"),
        ("marital", "hyzk", "", "marital marriage 婚姻"),
        ("nationality", "gj mz", "", "nationality nation ethnic 国籍 民族"),
        ("gender", "xb", "sex", "gender 性别"),
        (
            "customer_no",
            "khh khbh",
            "",
            "customerno custno customerid custid clientid 客户号 客户编号",
        ),
        ("name", "xm khxm", "name", "fullname realname 姓名 户名 联系人"),
    )
)

_FREE_TEXT = frozenset(
    {"notes", "note", "remark", "remarks", "memo", "comment", "comments", "description"}
    | {"desc", "text", "content", "message", "msg", "备注", "附言", "说明", "留言", "摘要"}
)
_NOT_NAME = frozenset({"filename", "hostname", "username", "productname", "stockname"})


def _tokens(key: str) -> list[str]:
    return [t.lower() for t in _TOKEN_RE.findall(key)]


@lru_cache(maxsize=4096)
def category_for_key(key: str) -> str | None:
    """The category a field holds, judged by its name; None when the name says nothing."""
    tokens = _tokens(key)
    joined = "".join(tokens)
    if not joined:
        return None
    token_set = frozenset(tokens)
    for cat, exact, toks, subs in _RULES:
        if joined in exact or not token_set.isdisjoint(toks) or any(s in joined for s in subs):
            if cat == "name" and joined in _NOT_NAME:
                return None
            return cat
    return None


@lru_cache(maxsize=4096)
def is_free_text_key(key: str) -> bool:
    """Fields that hold prose (notes, remarks): scan them with `detect`, mask only the hits."""
    tokens = _tokens(key)
    return bool(tokens) and ("".join(tokens) in _FREE_TEXT or tokens[-1] in _FREE_TEXT)
