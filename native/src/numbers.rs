//! Number-shaped identifiers, as gateway/core/detectors/numbers.py (the specification).
//!
//! Text is handled as a slice of characters so that every index is the code-point
//! index Python uses. The caller guarantees that the only numeric characters in the
//! text are ASCII digits (`\d` of Python's `re` is then `[0-9]`, `str.isdigit` is
//! ASCII); anything else is left to the Python scan.

use crate::checks::{self, Today};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub category: &'static str,
    pub detector: &'static str,
    pub confidence: f64,
    pub checked: bool,
}

const fn verdict(
    category: &'static str,
    detector: &'static str,
    confidence: f64,
    checked: bool,
) -> Verdict {
    Verdict {
        category,
        detector,
        confidence,
        checked,
    }
}

pub struct NumberHit {
    pub start: usize,
    pub end: usize,
    pub verdict: Verdict,
}

const MAX_GROUPS: usize = 6;
const MAX_LEN: usize = 22;
const MIN_LEN: usize = 5;
const CONTEXT: usize = 20;

const KW_ID: &[&str] = &[
    "身份", "证件", "公民", "idno", "id_no", "id no", "idcard", "id card", "sfz", "zjhm",
    "identity",
];
const KW_CARD: &[&str] = &[
    "卡号",
    "银行卡",
    "信用卡",
    "借记卡",
    "储蓄卡",
    "card",
    "yhk",
    "账号",
    "帐号",
];
const KW_ACCOUNT: &[&str] = &[
    "账号",
    "帐号",
    "账户",
    "帐户",
    "开户行",
    "户名",
    "account",
    "acct",
];
const KW_SECURITIES: &[&str] = &[
    "证券",
    "股东",
    "资金账",
    "一码通",
    "securit",
    "stock",
    "gdzh",
    "zjzh",
];
const KW_POSTAL: &[&str] = &["邮编", "邮政编码", "postcode", "postal", "zip", "yzbm"];
const KW_PHONE: &[&str] = &[
    "电话", "座机", "固话", "传真", "tel", "phone", "fax", "lxdh",
];
const KW_TW_PERMIT: &[&str] = &["台胞证", "台湾居民来往"];
// `_NUMBER_LABEL` without its tail (`\s*[:：#]?\s*$`, matched by hand); lower case.
const NUMBER_LABELS: &[&str] = &[
    "发票",
    "代码",
    "编号",
    "编码",
    "单号",
    "订单",
    "订单号",
    "工单",
    "合同号",
    "流水",
    "流水号",
    "批次",
    "批次号",
    "序列号",
    "条形码",
    "code",
    "no",
    "no.",
    "ref",
];

/// The keyword lists copied from numbers.py, by their Python names (see scan::word_lists).
pub fn word_lists() -> Vec<(&'static str, Vec<String>)> {
    let list = |l: &[&str]| l.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    vec![
        ("numbers.KW_ID", list(KW_ID)),
        ("numbers.KW_CARD", list(KW_CARD)),
        ("numbers.KW_ACCOUNT", list(KW_ACCOUNT)),
        ("numbers.KW_SECURITIES", list(KW_SECURITIES)),
        ("numbers.KW_POSTAL", list(KW_POSTAL)),
        ("numbers.KW_PHONE", list(KW_PHONE)),
        ("numbers.KW_TW_PERMIT", list(KW_TW_PERMIT)),
    ]
}

fn any_in(ctx: &str, keywords: &[&str]) -> bool {
    keywords.iter().any(|k| ctx.contains(k))
}

fn starts(s: &[char], prefix: &str) -> bool {
    let mut it = s.iter();
    prefix.chars().all(|p| it.next() == Some(&p))
}

/// `classify_compact`: what a compacted number is, or None; `ctx` is lower-case context.
pub fn classify_compact(c: &[char], ctx: &str, today: Today) -> Option<Verdict> {
    if starts(c, "+86") {
        return checks::mobile_ok(&c[3..]).then_some(verdict("mobile", "mobile", 0.95, false));
    }
    let n = c.len();
    if n == 18 {
        if checks::residence_permit_ok(c, today) {
            return Some(verdict("id_number", "residence_permit", 0.9, true));
        }
        if checks::resident_id_ok(c, today) {
            return Some(verdict("id_number", "resident_id", 0.95, true));
        }
        if checks::permanent_residence_ok(c, today) {
            return Some(verdict("id_number", "permanent_residence", 0.85, true));
        }
        if c[1] != '0' && checks::uscc_ok(c) {
            let cat = if starts(c, "92") {
                "uscc_person"
            } else {
                "uscc_org"
            };
            return Some(verdict(cat, "uscc", 0.8, true));
        }
    }
    if !checks::is_digits(c) {
        return None;
    }
    if (15..=19).contains(&n) && checks::card_iin_ok(c) && checks::luhn_ok(c) {
        return Some(verdict("bank_card", "bank_card", 0.9, true));
    }
    if (16..=19).contains(&n) && starts(c, "62") && any_in(ctx, KW_CARD) {
        return Some(verdict("bank_card", "bank_card_keyword", 0.6, false));
    }
    if n == 11 {
        if checks::mobile_ok(c) {
            return Some(verdict("mobile", "mobile", 0.9, false));
        }
    } else if n == 13 && starts(c, "86") {
        if checks::mobile_ok(&c[2..]) {
            return Some(verdict("mobile", "mobile", 0.9, false));
        }
    } else if n == 15 {
        if starts(c, "0086") && checks::mobile_ok(&c[4..]) {
            return Some(verdict("mobile", "mobile", 0.9, false));
        }
        if checks::legacy_id_ok(c, today) && any_in(ctx, KW_ID) {
            return Some(verdict("id_number", "legacy_id", 0.6, false));
        }
    }
    if checks::corporate_number(c) {
        return None;
    }
    if checks::landline_area(c) != 0 {
        return Some(verdict("landline", "landline", 0.85, false));
    }
    if (n == 7 || n == 8) && ('2'..='8').contains(&c[0]) && any_in(ctx, KW_PHONE) {
        return Some(verdict("landline", "landline_keyword", 0.5, false));
    }
    if n == 8 && any_in(ctx, KW_TW_PERMIT) {
        return Some(verdict("passport", "tw_permit", 0.6, false));
    }
    if n == 6 && c[0] != '9' && any_in(ctx, KW_POSTAL) {
        return Some(verdict("postal_code", "postal_code", 0.6, false));
    }
    if (n == 10 || n == 12) && any_in(ctx, KW_SECURITIES) {
        return Some(verdict(
            "securities_account",
            "securities_account",
            0.5,
            false,
        ));
    }
    if (10..=25).contains(&n) && any_in(ctx, KW_ACCOUNT) {
        return Some(verdict("bank_account", "bank_account", 0.5, false));
    }
    None
}

fn grouping_ok(category: &str, lengths: &[usize]) -> bool {
    let mut lengths = lengths;
    if lengths.first() == Some(&0) {
        lengths = &lengths[1..];
        if lengths == [11] {
            return true;
        }
    }
    match category {
        "mobile" => lengths == [3, 4, 4] || lengths == [3, 8] || lengths == [7, 4],
        "landline" => {
            lengths.len() >= 2 && (lengths[0] == 3 || lengths[0] == 4) && {
                let rest: usize = lengths[1..].iter().sum();
                rest == 7 || rest == 8
            }
        }
        _ => lengths.len() == 1,
    }
}

/// Python's `str.isspace` (the `\s` of its `re` on str patterns).
pub fn py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r' | '\x1c'..='\x20' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}'
            | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

fn ascii_alpha(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphabetic())
}

fn is_hex(c: char) -> bool {
    c.is_ascii_hexdigit()
}

/// `_UUID_RE` (8-4-4-4-12 hex) matching at `p`, within `end`.
fn uuid_at(text: &[char], p: usize, end: usize) -> bool {
    if p + 36 > end {
        return false;
    }
    text[p..p + 36].iter().enumerate().all(|(i, &c)| {
        if matches!(i, 8 | 13 | 18 | 23) {
            c == '-'
        } else {
            is_hex(c)
        }
    })
}

fn not_a_landline(text: &[char], dash: bool, start: usize, end: usize) -> bool {
    let before = if start > 0 {
        Some(text[start - 1])
    } else {
        None
    };
    let after = text.get(end).copied();
    if before == Some('.') && start >= 2 && text[start - 2].is_ascii_digit() {
        return true;
    }
    if after == Some('.') && end + 1 < text.len() && text[end + 1].is_ascii_digit() {
        return true;
    }
    if ascii_alpha(before) || ascii_alpha(after) {
        return true;
    }
    if dash {
        // finditer over the window: non-overlapping, leftmost first
        let (lo, hi) = (start.saturating_sub(36), (end + 36).min(text.len()));
        let mut p = lo;
        while p < hi {
            if uuid_at(text, p, hi) {
                if p <= start && end <= p + 36 {
                    return true;
                }
                p += 36;
            } else {
                p += 1;
            }
        }
    }
    false
}

/// `_NUMBER_LABEL.search(text, start - 8, start)`: a label, then `\s*[:：#]?\s*` to `start`.
fn number_label(text: &[char], start: usize) -> bool {
    let lo = start.saturating_sub(8);
    let mut a = start;
    while a > lo && py_space(text[a - 1]) {
        a -= 1;
    }
    let mut ends = vec![a];
    if a > lo && matches!(text[a - 1], ':' | '：' | '#') {
        let mut c = a - 1;
        ends.push(c);
        while c > lo && py_space(text[c - 1]) {
            c -= 1;
            ends.push(c);
        }
    }
    // every end the tail can leave: spaces before the end are matched by `\s*` too
    let mut all = Vec::new();
    for &e in &ends {
        let mut p = e;
        all.push(p);
        while p > lo && py_space(text[p - 1]) {
            p -= 1;
            all.push(p);
        }
    }
    for &e in &all {
        for label in NUMBER_LABELS {
            let n = label.chars().count();
            if e >= lo + n
                && text[e - n..e].iter().zip(label.chars()).all(|(&t, l)| {
                    t == l || (l.is_ascii_lowercase() && t == l.to_ascii_uppercase())
                })
            {
                return true;
            }
        }
    }
    false
}

fn single(text: &[char], start: usize, end: usize, ctx: &str, today: Today) -> Option<NumberHit> {
    let compact = &text[start..end];
    let mut end = end;
    let mut v = classify_compact(compact, ctx, today);
    if v.is_none() && compact.last() == Some(&'X') {
        v = classify_compact(&compact[..compact.len() - 1], ctx, today);
        end -= 1;
    }
    v.map(|verdict| NumberHit {
        start,
        end,
        verdict,
    })
}

/// A token of `TOKEN_RE` (`(?:\+86[ \-]?)?\d+(?:[ \-·]\d+)*X?`) at `p`: its end.
fn token_at(text: &[char], p: usize) -> Option<usize> {
    let n = text.len();
    let digit = |i: usize| i < n && text[i].is_ascii_digit();
    let mut i = p;
    if i + 3 <= n && text[i] == '+' && text[i + 1] == '8' && text[i + 2] == '6' {
        if digit(i + 3) {
            i += 3;
        } else if i + 3 < n && matches!(text[i + 3], ' ' | '-') && digit(i + 4) {
            i += 4;
        }
    }
    if !digit(i) {
        return None;
    }
    while digit(i) {
        i += 1;
    }
    while i + 1 < n && matches!(text[i], ' ' | '-' | '·') && digit(i + 1) {
        i += 1;
        while digit(i) {
            i += 1;
        }
    }
    if i < n && text[i] == 'X' {
        i += 1;
    }
    Some(i)
}

/// `_GROUP_RE.finditer(text, start, end)` (`\+86|\d+X?`).
fn groups(text: &[char], start: usize, end: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = start;
    while i < end {
        if i + 3 <= end && text[i] == '+' && text[i + 1] == '8' && text[i + 2] == '6' {
            out.push((i, i + 3));
            i += 3;
        } else if text[i].is_ascii_digit() {
            let s = i;
            while i < end && text[i].is_ascii_digit() {
                i += 1;
            }
            if i < end && text[i] == 'X' {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

fn scan_groups(
    text: &[char],
    groups: &[(usize, usize)],
    ctx: &str,
    today: Today,
) -> Vec<NumberHit> {
    let mut out = Vec::new();
    let (mut i, k) = (0, groups.len());
    let mut compact: Vec<char> = Vec::with_capacity(MAX_LEN + 8);
    while i < k {
        let mut next = None;
        let mut j = (i + MAX_GROUPS).min(k);
        while j > i {
            compact.clear();
            for &(s, e) in &groups[i..j] {
                compact.extend_from_slice(&text[s..e]);
            }
            if !(MIN_LEN..=MAX_LEN).contains(&compact.len()) {
                j -= 1;
                continue;
            }
            if j - i == 1 {
                if let Some(hit) = single(text, groups[i].0, groups[i].1, ctx, today) {
                    out.push(hit);
                    next = Some(j);
                    break;
                }
                j -= 1;
                continue;
            }
            let mut v = classify_compact(&compact, ctx, today);
            let mut end = groups[j - 1].1;
            if v.is_none() && compact.last() == Some(&'X') {
                v = classify_compact(&compact[..compact.len() - 1], ctx, today);
                end -= 1;
            }
            let Some(verdict) = v else {
                j -= 1;
                continue;
            };
            if !verdict.checked {
                let mut lengths: Vec<usize> = groups[i..j]
                    .iter()
                    .map(|&(s, e)| {
                        if e - s == 3 && text[s] == '+' {
                            0
                        } else {
                            e - s
                        }
                    })
                    .collect();
                let last = lengths.len() - 1;
                lengths[last] -= groups[j - 1].1 - end;
                if !grouping_ok(verdict.category, &lengths) {
                    j -= 1;
                    continue;
                }
            }
            out.push(NumberHit {
                start: groups[i].0,
                end,
                verdict,
            });
            next = Some(j);
            break;
        }
        match next {
            Some(j) => i = j,
            None => i += 1,
        }
    }
    out
}

/// `scan_numbers(text)`: every number identifier in normalised text.
pub fn scan_numbers(text: &[char], today: Today) -> Vec<NumberHit> {
    let mut out = Vec::new();
    let n = text.len();
    let mut p = 0;
    while p < n {
        let Some(t_end) = token_at(text, p) else {
            p += 1;
            continue;
        };
        let t_start = p;
        p = t_end;
        if t_end - t_start < 5 {
            continue;
        }
        let ctx: String = text[t_start.saturating_sub(CONTEXT)..t_start]
            .iter()
            .collect::<String>()
            .to_lowercase();
        let token = &text[t_start..t_end];
        if token.iter().all(|c| c.is_ascii_alphanumeric()) {
            if let Some(hit) = single(text, t_start, t_end, &ctx, today) {
                out.push(hit);
            }
        } else {
            let g = groups(text, t_start, t_end);
            out.extend(scan_groups(text, &g, &ctx, today));
        }
    }
    let dash = text.contains(&'-');
    out.retain(|h| {
        h.verdict.category != "landline"
            || !(not_a_landline(text, dash, h.start, h.end) || number_label(text, h.start))
    });
    out
}
