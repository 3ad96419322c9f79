//! The free-text scan, as `gateway.core.detectors._detect` (the specification):
//! normalise, collect every detector's candidates, keep the best where they overlap.
//!
//! Only text in a proven domain is scanned here: ASCII, CJK unified ideographs and
//! the characters of the domain table Python hands over (`set_domain`: each one
//! normalises to one ASCII, CJK or punctuation character, as Python's own
//! `normalize` maps it). There, normalisation keeps offsets, `\d` is `[0-9]`, `\s` is
//! Python's whitespace and `\w` is ASCII alphanumerics, `_` and CJK; any other
//! character, or an encoded run that decodes to non-ASCII text, returns None and
//! Python scans the text.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::checks::{self, Today};
use crate::numbers::{self, py_space};

pub struct Found {
    pub start: usize,
    pub end: usize,
    pub category: &'static str,
    pub detector: Cow<'static, str>,
    pub confidence: f64,
}

fn found(
    start: usize,
    end: usize,
    category: &'static str,
    detector: &'static str,
    confidence: f64,
) -> Found {
    Found {
        start,
        end,
        category,
        detector: Cow::Borrowed(detector),
        confidence,
    }
}

/// The normalised form of every BMP character the scan accepts beyond ASCII and CJK
/// (indexed by code point; 0: not in the domain).
static DOMAIN: OnceLock<Vec<u16>> = OnceLock::new();

/// Characters outside ASCII and CJK that the scan accepts, each with its normalised form.
/// Only BMP characters mapping to BMP characters are kept (the table holds no others).
pub fn set_domain(map: HashMap<char, char>) -> bool {
    let mut table = vec![0u16; 0x10000];
    for (c, t) in map {
        if (c as u32) < 0x10000 && (t as u32) < 0x10000 && t != '\0' {
            table[c as usize] = t as u16;
        }
    }
    DOMAIN.set(table).is_ok()
}

pub fn cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

// Python's `\s` inside a character class (str.isspace).
const SP: &str = "\t-\r\u{1c}-\u{20}\u{85}\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}";
const NUMERALS: &str = "〇零一二三四五六七八九幺壹贰叁肆伍陆柒捌玖";
const NUMERAL_DIGITS: &str = "001234567891123456789";

pub struct Patterns {
    cred_keyword: Regex,
    cred_value: Regex,
    pub jwt: Regex,
    pub track2: Regex,
    pub email: Regex,
    name_after: Regex,
    name_before: Regex,
    pub address: Regex,
    address_kw: Regex,
    pub unit: Regex,
    estate: Regex,
    unit_words: Regex,
    amount: Regex,
    has_unit: Regex,
    range_gap: Regex,
    param: Regex,
    uuid: Regex,
    hex: Regex,
    token_chars: Regex,
    file_name: Regex,
    pub datetime: Regex,
    pub jwt_full: Regex,
    pub track2_full: Regex,
    pub email_full: Regex,
    pub address_full: Regex,
    pub name_value: Regex,
}

fn re(p: &str) -> Regex {
    Regex::new(p).expect("pattern")
}

const COMPOUND: &str = "欧阳|司马|上官|诸葛|东方|皇甫|尉迟|公孙|慕容|长孙|宇文|司徒|令狐|夏侯|澹台|轩辕|端木|独孤|南宫|闻人|申屠|太史|百里|呼延|钟离|万俟|拓跋|赫连|东郭|西门|左丘|公羊|濮阳|淳于|司空";
const SINGLE: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余于杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝";
const NAME_CTX: &str = "(?:姓名|客户|户名|联系人|收件人|持卡人|申请人|借款人|投保人|被保险人|开户人|委托人|对接人|经办人|受益人|担保人|法定代表人|法人代表|代理人|监护人|配偶|收款人|付款人|汇款人|投资人|出资人|股东|实际控制人|实控人|负责人|签约人|授权人|紧急联系人|介绍人|推荐人)";
const STOP: &str = "手电身地的说在于已表称反来要先女今昨前后本该和与及等是有将也都就还把被给对向从到经总老主姐哥办去致打留预面卡号户账证住目名年确";
const PROVINCES: &str = "北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南|广东|海南|四川|贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆|香港|澳门";
const INCOME_CUES: &str =
    "年收入|月收入|年薪|月薪|税后收入|家庭收入|个人收入|收入|工资|营业额|营业收入|营收|年营收";
const ASSET_CUES: &str = "可投资资产|金融资产|家庭资产|个人资产|总资产|净资产|资产|存款|身家|意向投资|拟投资|计划投资|追加投资|投资了|投资";
const BALANCE_CUES: &str = "账户余额|余额";
const RISK_CUES: &[&str] = &[
    "风险承受能力",
    "风险测评",
    "风险评估",
    "风险评测",
    "测评结果",
    "评估结果",
    "风险等级",
    "风险偏好",
    "风险类型",
    "风险评级",
    "投资者类型",
    "投资者风险",
];
const BEARER_PARAMS: &str = "token|access_token|refresh_token|id_token|auth_token|authtoken|accesstoken|api_key|apikey|api-key|secret|client_secret|password|passwd|pwd|jwt|sig|signature|x-amz-signature|x-amz-security-token|x-amz-credential|x-goog-signature|x-goog-credential|share_token|public_token|sharetoken|sessionid|session_id|phpsessid|jsessionid";
const LONG_PARAMS: &str = "key|code|session|sid|ticket|share|invite|auth|hash|t|s|k";
const SHARE_SEGMENTS: &[&str] = &[
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
];
const FILE_TLDS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "js", "css", "ts", "py",
];

/// Context keywords of `patterns.KW_PASSPORT` and `KW_SECURITIES` (lower case).
pub const KW_PASSPORT: &[&str] = &[
    "护照",
    "passport",
    "通行证",
    "回乡证",
    "台胞证",
    "旅行证",
    "hzhm",
    "permit",
];
pub const KW_SECURITIES: &[&str] = &["证券", "股东", "资金账", "securit", "stock", "gdzh", "zjzh"];

pub fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let surname = format!("(?:{COMPOUND}|[{SINGLE}])");
        let admin = "[\u{4e00}-\u{9fff}]{1,7}?(?:自治州|地区|市|州|盟|区|县|旗)";
        let road = "[\u{4e00}-\u{9fff}0-9]{1,10}?(?:大街|大道|街道|路|街|巷|胡同|村|镇|乡|小区|花园|公寓|大厦)";
        let num = r"[0-9A-Za-z\-]{1,6}(?:号院|号楼|号|栋|幢|座|单元|室|楼|层|弄|组)";
        let prov = format!("(?:{PROVINCES})(?:省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区)?");
        let estate = "(?:[\u{4e00}-\u{9fff}--[住在于的是到为和与及址至往]]){1,6}?(?:小区|花园|公寓|新村|家园|苑|园|府|庭|湾|城|里|坊|公馆|大厦|广场|社区)";
        let block = "[0-9A-Za-z]{1,4}(?:号楼|栋|幢|座|号院|期|区)";
        let room = r"[0-9A-Za-z\-]{1,6}(?:单元|室|号|层|楼|户)";
        Patterns {
            cred_keyword: re("password|passwd|passcode|pwd|pin|cvv2?|cvn2?|cvc2?|otp|token|secret|api[_-]?key|access[_-]?key|密码|口令|验证码|校验码|动态码|安全码|有效期"),
            cred_value: re(&format!("^[{SP}]*(?:[:：=]|是|为|is)?[{SP}]*([^{SP}，。；;,、\"'“”]{{3,128}})")),
            jwt: re(r"eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),
            track2: re(r";?[0-9]{13,19}=[0-9]{7,}\??"),
            email: re(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.([A-Za-z]{2,24})"),
            name_after: re(&format!("{NAME_CTX}(?:是|为|叫|名|[:：]|[{SP}])*({surname})([\u{4e00}-\u{9fff}]{{1,2}})")),
            name_before: re(&format!("({surname})([\u{4e00}-\u{9fff}]{{1,2}}?)(?:先生|女士|小姐)")),
            address: re(&format!("{prov}(?:{admin}){{0,3}}(?:{road}){{0,3}}(?:{num})*")),
            address_kw: re(&format!("(?:地址|住址|家住|住在|居住在|户籍地|通讯地址)[:：{SP}]*((?:{admin}){{1,3}}(?:{road}){{0,3}}(?:{num})*|(?:{road}){{1,3}}(?:{num})*)")),
            unit: re("自治州|地区|市|州|盟|区|县|旗|大街|大道|街道|路|街|巷|胡同|村|镇|乡|号|栋|幢|单元|室|楼|层|弄"),
            estate: re(&format!("({estate})?(?:{block})+(?:{room})+")),
            unit_words: re("号楼|栋|幢|座|号院|单元|室|层|户"),
            amount: re(&format!(
                "(?i)({cues})(?:[为是有达约近超逾过大概左右在合计共计总计每年每月一年一个月：:{SP}]{{0,6}}?)((?:人民币|RMB|CNY|¥|￥)?[{SP}]*[0-9][0-9,，]*(?:\\.[0-9]+)?[{SP}]*(?:千万|百万|十万|万亿|亿|万|千)?[{SP}]*(?:元人民币|元|块钱|块|人民币|RMB|CNY)?)",
                cues = sorted_cues().join("|")
            )),
            has_unit: re("(?i)[万亿千元块]|人民币|RMB|CNY|[¥￥]"),
            range_gap: re(&format!("^[{SP}]*[至到~\\-－、,，和与][{SP}]*$")),
            param: re(&format!("(?i)[?&#;](?:(?P<secret>{BEARER_PARAMS})|(?P<long>{LONG_PARAMS}))=(?P<value>[^&#{SP}\"'<>;,]+)")),
            uuid: re("^[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}$"),
            hex: re("^[0-9a-fA-F]+$"),
            token_chars: re(r"^[A-Za-z0-9_\-~.]+$"),
            file_name: re(r"^[A-Za-z0-9_\-]+\.[A-Za-z0-9]{1,5}$"),
            datetime: re(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?$"),
            jwt_full: re(r"^eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*$"),
            track2_full: re(r"^;?[0-9]{13,19}=[0-9]{7,}\??$"),
            email_full: re(r"^[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.([A-Za-z]{2,24})$"),
            address_full: re(&format!("^(?:{prov}(?:{admin}){{0,3}}(?:{road}){{0,3}}(?:{num})*)$")),
            name_value: re(&format!("^(?:{surname})[\u{4e00}-\u{9fff}]{{1,3}}$")),
        }
    })
}

fn sorted_cues() -> Vec<&'static str> {
    let mut cues: Vec<&'static str> = INCOME_CUES
        .split('|')
        .chain(ASSET_CUES.split('|'))
        .chain(BALANCE_CUES.split('|'))
        .collect();
    // Python: sorted(dict of cues, key=len, reverse=True), stable over insertion order
    cues.sort_by_key(|c| std::cmp::Reverse(c.chars().count()));
    cues
}

fn cue_category(cue: &str) -> &'static str {
    if BALANCE_CUES.split('|').any(|c| c == cue) {
        "balance"
    } else if ASSET_CUES.split('|').any(|c| c == cue) {
        "assets"
    } else {
        "income"
    }
}

/// The text as characters with the byte -> character index map regexes need.
struct Text<'a> {
    chars: &'a [char],
    s: String,
    b2c: Vec<u32>,
}

impl<'a> Text<'a> {
    fn new(chars: &'a [char]) -> Self {
        let s: String = chars.iter().collect();
        let mut b2c = vec![0u32; s.len() + 1];
        let mut i = 0u32;
        for (b, _) in s.char_indices() {
            b2c[b] = i;
            i += 1;
        }
        b2c[s.len()] = i;
        Text { chars, s, b2c }
    }
    fn c(&self, byte: usize) -> usize {
        self.b2c[byte] as usize
    }
    fn has(&self, needle: &str) -> bool {
        self.s.contains(needle)
    }
    fn window(&self, lo: usize, hi: usize) -> String {
        self.chars[lo..hi].iter().collect()
    }
}

fn ascii_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn glued(t: &[char], start: usize, pred: impl Fn(char) -> bool) -> bool {
    start > 0 && pred(t[start - 1])
}

/// Does one of `labels` (ASCII letters compared case-insensitively) end where
/// `tail` (`\s*`, one optional character of `marks`, `\s*`) reaches `end`, inside
/// `[lo, end)`? (`LABEL\s*[marks]?\s*$` searched between lo and end.)
fn label_before(t: &[char], lo: usize, end: usize, labels: &[&str], marks: &[char]) -> bool {
    let mut a = end;
    while a > lo && py_space(t[a - 1]) {
        a -= 1;
    }
    let mut ends = vec![a];
    if a > lo && marks.contains(&t[a - 1]) {
        let mut c = a - 1;
        while c > lo && py_space(t[c - 1]) {
            c -= 1;
        }
        ends.push(c);
    }
    ends.iter().any(|&e| {
        labels.iter().any(|label| {
            let n = label.chars().count();
            e >= lo + n
                && t[e - n..e].iter().zip(label.chars()).all(|(&c, l)| {
                    c == l || (l.is_ascii_lowercase() && c == l.to_ascii_uppercase())
                })
        })
    })
}

// --- normalisation ------------------------------------------------------------------

/// `normalize(text).text` for text in the domain (offsets are the identity there).
pub fn normalize(text: &str) -> Option<Vec<char>> {
    let domain = DOMAIN.get()?;
    let ascii = text.is_ascii();
    let mut out: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() || cjk(c) {
            out.push(c);
        } else {
            let t = *domain.get(c as usize)?;
            if t == 0 {
                return None;
            }
            out.push(char::from_u32(t as u32)?);
        }
    }
    if !ascii {
        numeral_runs(&mut out);
    }
    upper_x(&mut out);
    Some(out)
}

fn numeral(c: char) -> Option<char> {
    NUMERALS
        .chars()
        .position(|n| n == c)
        .map(|i| NUMERAL_DIGITS.chars().nth(i).unwrap())
}

/// Numerals inside runs of five or more digits made digits (`_digits`).
pub fn numeral_runs(t: &mut [char]) {
    if !t.iter().any(|&c| numeral(c).is_some()) {
        return;
    }
    let digitish = |c: char| c.is_ascii_digit() || numeral(c).is_some();
    let gap = |c: char| matches!(c, ' ' | '-' | '·' | '\u{3000}');
    let n = t.len();
    let mut i = 0;
    while i < n {
        if !digitish(t[i]) {
            i += 1;
            continue;
        }
        // the longest chain of digits joined by gaps from i
        let mut count = 1;
        let mut last = i;
        let mut j = i + 1;
        loop {
            let mut k = j;
            while k < n && gap(t[k]) {
                k += 1;
            }
            if k < n && digitish(t[k]) {
                count += 1;
                last = k;
                j = k + 1;
            } else {
                break;
            }
        }
        if count >= 5 {
            for c in &mut t[i..=last] {
                if let Some(d) = numeral(*c) {
                    *c = d;
                }
            }
        }
        i = last + 1;
    }
}

pub fn upper_x(t: &mut [char]) {
    let n = t.len();
    for i in 1..n {
        if t[i] == 'x'
            && t[i - 1].is_ascii_digit()
            && !(i + 1 < n && t[i + 1].is_ascii_alphanumeric())
        {
            t[i] = 'X';
        }
    }
}

// --- detectors ------------------------------------------------------------------------

/// Every match of `regex` as a finding.
fn push_all(
    t: &Text,
    regex: &Regex,
    category: &'static str,
    detector: &'static str,
    confidence: f64,
    out: &mut Vec<Found>,
) {
    for m in regex.find_iter(&t.s) {
        out.push(found(
            t.c(m.start()),
            t.c(m.end()),
            category,
            detector,
            confidence,
        ));
    }
}

fn credentials(t: &Text, out: &mut Vec<Found>) {
    let p = patterns();
    // lower case changes only ASCII letters in the domain
    let low = t.s.to_ascii_lowercase();
    for kw in p.cred_keyword.find_iter(&low) {
        let (s, e) = (t.c(kw.start()), t.c(kw.end()));
        let first = kw.as_str().chars().next().unwrap();
        if first.is_ascii()
            && ((s > 0 && t.chars[s - 1].is_ascii_alphabetic())
                || (e < t.chars.len() && t.chars[e].is_ascii_alphabetic()))
        {
            continue;
        }
        if let Some(m) = p.cred_value.captures(&t.s[kw.end()..]) {
            let g = m.get(1).unwrap();
            if g.as_str().chars().any(ascii_alnum) {
                let base = kw.end();
                out.push(found(
                    t.c(base + g.start()),
                    t.c(base + g.end()),
                    "credentials",
                    "credential_keyword",
                    0.9,
                ));
            }
        }
    }
    if t.has("eyJ") {
        push_all(t, &p.jwt, "credentials", "jwt", 0.95, out);
    }
    if t.has("=") {
        push_all(t, &p.track2, "credentials", "track2", 0.9, out);
    }
}

fn b64_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '_' | '-')
}

/// `_B64_RUN.finditer`: (start, end) of each encoded-looking run.
pub fn b64_runs(t: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let n = t.len();
    let mut i = 0;
    while i < n {
        let c = t[i];
        if !(b64_char(c) || c == '=') {
            i += 1;
            continue;
        }
        // a block of the class: only its first character can start a match
        let s = i;
        let mut r = s;
        while r < n && b64_char(t[r]) {
            r += 1;
        }
        let mut k = r;
        while k < n && t[k] == '=' {
            k += 1;
        }
        let mut end_block = k;
        while end_block < n && (b64_char(t[end_block]) || t[end_block] == '=') {
            end_block += 1;
        }
        if r - s >= 8 && k - r <= 2 && end_block == k {
            out.push((s, k));
        }
        i = end_block;
    }
    out
}

pub fn hex_digits_run(run: &[char]) -> bool {
    // `(?:3[0-9])+` as a full match
    !run.is_empty()
        && run.len() % 2 == 0
        && run.chunks(2).all(|p| p[0] == '3' && p[1].is_ascii_digit())
}

pub enum Decoded {
    Text(String),
    Nothing,
    Foreign, // decoded to non-ASCII text: Python decides
}

fn decoded_text(data: &[u8]) -> Decoded {
    let Ok(text) = std::str::from_utf8(data) else {
        return Decoded::Nothing;
    };
    if !text.is_ascii() {
        return Decoded::Foreign;
    }
    if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Decoded::Nothing;
    }
    if text.bytes().filter(u8::is_ascii_digit).count() < 5 && !text.contains('@') {
        return Decoded::Nothing;
    }
    Decoded::Text(text.to_string())
}

fn b64_value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some((c - b'A') as u32),
        b'a'..=b'z' => Some((c - b'a') as u32 + 26),
        b'0'..=b'9' => Some((c - b'0') as u32 + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// `decode_run(run)`.
pub fn decode_run(run: &[char]) -> Decoded {
    if run.len() > 4096 {
        return Decoded::Nothing;
    }
    let all_hex = run.iter().all(|c| c.is_ascii_hexdigit());
    if all_hex
        && run.len() >= 10
        && run.len() % 2 == 0
        && (!run.iter().all(|c| c.is_ascii_digit()) || hex_digits_run(run))
    {
        let bytes: Vec<u8> = run
            .chunks(2)
            .map(|p| (p[0].to_digit(16).unwrap() * 16 + p[1].to_digit(16).unwrap()) as u8)
            .collect();
        if let d @ (Decoded::Text(_) | Decoded::Foreign) = decoded_text(&bytes) {
            return d;
        }
    }
    let body: Vec<char> = {
        let mut b = run.to_vec();
        while b.last() == Some(&'=') {
            b.pop();
        }
        b
    };
    if body.len() % 4 == 1 {
        return Decoded::Nothing;
    }
    let url = body.iter().any(|&c| c == '-' || c == '_');
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut data = Vec::with_capacity(body.len() * 3 / 4);
    for &c in &body {
        let c = match (url, c) {
            (true, '-') => '+',
            (true, '_') => '/',
            _ => c,
        };
        let Some(v) = b64_value(c as u8) else {
            return Decoded::Nothing;
        };
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            data.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    decoded_text(&data)
}

pub fn priority(category: &str) -> i32 {
    match category {
        "credentials" => 100,
        "id_number" => 90,
        "uscc_person" => 80,
        "bank_card" => 70,
        "mobile" | "landline" => 60,
        "uscc_org" => 58,
        "email" => 55,
        "passport" | "securities_account" => 52,
        "ip_address" => 50,
        "bank_account" | "licence_plate" => 45,
        "postal_code" => 40,
        "name" => 35,
        "risk_assessment" => 34,
        "balance" => 33,
        "assets" | "income" => 32,
        "address" => 30,
        _ => 0,
    }
}

/// `_encoded(t)`; None when a run decodes to text Python must read.
fn encoded(t: &Text, today: Today, out: &mut Vec<Found>) -> Option<()> {
    for (s, e) in b64_runs(t.chars) {
        let run = &t.chars[s..e];
        if !run.iter().any(|c| c.is_ascii_alphabetic()) && !hex_digits_run(run) {
            continue;
        }
        let text = match decode_run(run) {
            Decoded::Nothing => continue,
            Decoded::Foreign => return None,
            Decoded::Text(text) => text,
        };
        let mut chars: Vec<char> = text.chars().collect();
        upper_x(&mut chars);
        let inner = resolve(candidates(&chars, false, today)?);
        if let Some(best) = inner.iter().reduce(|a, b| {
            if priority(b.category) > priority(a.category) {
                b
            } else {
                a
            }
        }) {
            out.push(Found {
                start: s,
                end: e,
                category: best.category,
                detector: Cow::Owned(format!("encoded:{}", best.detector)),
                confidence: best.confidence,
            });
        }
    }
    Some(())
}

fn random_looking(seg: &str, minimum: usize) -> bool {
    let p = patterns();
    if seg.chars().count() < minimum || !p.token_chars.is_match(seg) || p.file_name.is_match(seg) {
        return false;
    }
    seg.chars().any(|c| c.is_ascii_digit()) && seg.chars().any(|c| c.is_ascii_alphabetic())
}

fn token_urls(t: &Text, out: &mut Vec<Found>) {
    let p = patterns();
    if t.has("=") {
        for m in p.param.captures_iter(&t.s) {
            let value = m.name("value").unwrap();
            let (s, e) = (t.c(value.start()), t.c(value.end()));
            if m.name("secret").is_some() {
                if e - s >= 4 {
                    out.push(found(s, e, "credentials", "token_url", 0.9));
                }
            } else if e - s >= 16 && random_looking(value.as_str(), 16) {
                out.push(found(s, e, "credentials", "token_url", 0.8));
            }
        }
    }
    if t.has("/") {
        let mut i = 0;
        while i < t.chars.len() {
            match path_at(t.chars, i) {
                Some((end, gs, ge)) => {
                    let path: String = t.chars[gs..ge].iter().collect();
                    path_tokens(&path, gs, out);
                    i = end;
                }
                None => i += 1,
            }
        }
    }
}

fn py_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || cjk(c)
}

/// `_PATH_RE` at `i`: (end, start and end of the path group).
fn path_at(t: &[char], i: usize) -> Option<(usize, usize, usize)> {
    let n = t.len();
    // a URL with an authority: `(?:scheme:)?//host/path`
    let mut starts = Vec::with_capacity(2);
    if t[i].is_ascii_alphabetic() {
        let mut r = i + 1;
        while r < n && (t[r].is_ascii_alphanumeric() || matches!(t[r], '+' | '.' | '-')) {
            r += 1;
        }
        if r < n && t[r] == ':' {
            starts.push(r + 1);
        }
    }
    starts.push(i);
    for q in starts {
        if !(q + 1 < n && t[q] == '/' && t[q + 1] == '/') {
            continue;
        }
        let mut h = q + 2;
        while h < n
            && (t[h].is_ascii_alphanumeric() || matches!(t[h], '.' | '-' | '[' | ']' | ':' | '@'))
        {
            h += 1;
        }
        if h == q + 2 || !(h < n && t[h] == '/') {
            continue;
        }
        let mut g = h + 1;
        while g < n
            && !(py_space(t[g]) || matches!(t[g], '"' | '\'' | '<' | '>' | '?' | '#' | '\\'))
        {
            g += 1;
        }
        return Some((g, h, g));
    }
    // a bare path of two or more segments, not glued to a word or another path
    if t[i] != '/'
        || (i > 0 && (py_word(t[i - 1]) || matches!(t[i - 1], '.' | '~' | '%' | '/' | '-')))
    {
        return None;
    }
    let seg = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-');
    let mut j = i + 1;
    while j < n && seg(t[j]) {
        j += 1;
    }
    if j == i + 1 || !(j < n && t[j] == '/') {
        return None;
    }
    while j < n && t[j] == '/' {
        j += 1;
        while j < n && (seg(t[j]) || t[j] == '%') {
            j += 1;
        }
    }
    Some((j, i, j))
}

fn path_tokens(path: &str, offset: usize, out: &mut Vec<Found>) {
    let p = patterns();
    let mut shared = false;
    let mut pos = 0;
    for seg in path.split('/') {
        let start = offset + pos;
        let n = seg.chars().count();
        pos += n + 1;
        if seg.is_empty() {
            continue;
        }
        let low = seg.to_lowercase();
        if SHARE_SEGMENTS.contains(&low.as_str()) {
            shared = true;
            continue;
        }
        if shared && random_looking(seg, 16) {
            out.push(found(start, start + n, "credentials", "token_url", 0.85));
        } else if random_looking(seg, 32)
            && low != seg
            && seg.to_uppercase() != seg
            && !p.uuid.is_match(seg)
            && !p.hex.is_match(seg)
        {
            out.push(found(start, start + n, "credentials", "token_url", 0.75));
        }
    }
}

pub fn free_after(t: &[char], e: usize) -> bool {
    !(e < t.len() && t[e].is_ascii_alphanumeric())
}

pub fn digits_at(t: &[char], p: usize, n: usize) -> bool {
    p + n <= t.len() && t[p..p + n].iter().all(char::is_ascii_digit)
}

fn passport_letter(c: char) -> bool {
    c.is_ascii_digit() || (c.is_ascii_uppercase() && c != 'I' && c != 'O')
}

/// PASSPORT_RE at `p`: its alternatives in order, each with the final look-ahead.
fn passport_at(t: &[char], p: usize) -> Option<usize> {
    passport_ends(t, p)
        .into_iter()
        .map(|n| p + n)
        .find(|&e| free_after(t, e))
}

/// `PASSPORT_RE.fullmatch(t)`.
pub fn passport_full(t: &[char]) -> bool {
    passport_ends(t, 0).contains(&t.len())
}

/// The lengths PASSPORT_RE's alternatives (without the look-ahead) match at `p`, in order.
fn passport_ends(t: &[char], p: usize) -> Vec<usize> {
    let c = |i: usize| t.get(p + i).copied().unwrap_or('\0');
    let mut ends: Vec<usize> = Vec::new();
    if c(0) == 'E' && passport_letter(c(1)) && digits_at(t, p + 2, 7) {
        ends.push(9);
    }
    if "EGDSP".contains(c(0)) && c(0) != '\0' && digits_at(t, p + 1, 8) {
        ends.push(9);
    }
    if "DSP".contains(c(0)) && c(0) != '\0' && c(1) == 'E' && digits_at(t, p + 2, 7) {
        ends.push(9);
    }
    if (c(0) == 'H' || c(0) == 'M') && digits_at(t, p + 1, 8) {
        if digits_at(t, p + 9, 2) {
            ends.push(11);
        }
        ends.push(9);
    }
    if c(0) == 'C' && passport_letter(c(1)) && digits_at(t, p + 2, 7) {
        ends.push(9);
    }
    if (c(0) == 'W' || c(0) == 'L') && digits_at(t, p + 1, 8) {
        ends.push(9);
    }
    ends
}

pub fn securities_at(t: &[char], p: usize) -> Option<usize> {
    let ok = (t[p] == 'A' || t[p] == 'B') && digits_at(t, p + 1, 9) && free_after(t, p + 10);
    ok.then_some(p + 10)
}

fn uscc_char(c: char) -> bool {
    c.is_ascii_digit() || (c.is_ascii_uppercase() && !"IOSVZ".contains(c))
}

/// USCC_RE at `p`: `[1-9A-HJ-NP-RTUWXY][1-9][0-9]{6}[0-9A-HJ-NP-RTUWXY]{10}(?![0-9A-Z])`.
pub fn uscc_at(t: &[char], p: usize) -> Option<usize> {
    if p + 18 > t.len() {
        return None;
    }
    let w = &t[p..p + 18];
    let ok = uscc_char(w[0])
        && w[0] != '0'
        && ('1'..='9').contains(&w[1])
        && w[2..8].iter().all(char::is_ascii_digit)
        && w[8..].iter().all(|&c| uscc_char(c))
        && !(p + 18 < t.len() && (t[p + 18].is_ascii_digit() || t[p + 18].is_ascii_uppercase()));
    ok.then_some(p + 18)
}

fn keyword_codes(t: &Text, out: &mut Vec<Found>) {
    type At = fn(&[char], usize) -> Option<usize>;
    let kinds: [(At, &[&str], &'static str); 2] = [
        (passport_at, KW_PASSPORT, "passport"),
        (securities_at, KW_SECURITIES, "securities_account"),
    ];
    for (at, keywords, cat) in kinds {
        for (s, e) in matches_of(t.chars, at) {
            if glued(t.chars, s, ascii_alnum) {
                continue;
            }
            let window = t.window(s.saturating_sub(20), s).to_ascii_lowercase();
            if keywords.iter().any(|k| window.contains(k)) {
                out.push(found(s, e, cat, cat, 0.7));
            }
        }
    }
}

fn usccs(t: &Text, out: &mut Vec<Found>) {
    for (s, e) in matches_of(t.chars, uscc_at) {
        if glued(t.chars, s, |c| c.is_ascii_digit() || c.is_ascii_uppercase()) {
            continue;
        }
        let code = &t.chars[s..e];
        if !checks::is_digits(code) && checks::uscc_ok(code) {
            let cat = if code[0] == '9' && code[1] == '2' {
                "uscc_person"
            } else {
                "uscc_org"
            };
            out.push(found(s, e, cat, "uscc", 0.8));
        }
    }
}

fn emails(t: &Text, out: &mut Vec<Found>) {
    for m in patterns().email.captures_iter(&t.s) {
        let whole = m.get(0).unwrap();
        let tld = m.get(1).unwrap().as_str().to_ascii_lowercase();
        if !FILE_TLDS.contains(&tld.as_str()) && !whole.as_str().starts_with('.') {
            out.push(found(
                t.c(whole.start()),
                t.c(whole.end()),
                "email",
                "email",
                0.95,
            ));
        }
    }
}

/// IPV4_RE at `p` (octets tried as the regex tries them), its end.
fn ipv4_at(t: &[char], p: usize) -> Option<usize> {
    fn octets(t: &[char], p: usize) -> Vec<usize> {
        let d = |i: usize| i < t.len() && t[i].is_ascii_digit();
        let mut lens = Vec::new();
        if d(p) && d(p + 1) && d(p + 2) {
            let v: u32 = t[p..p + 3]
                .iter()
                .fold(0, |n, c| n * 10 + c.to_digit(10).unwrap());
            if (100..=255).contains(&v) {
                lens.push(3);
            }
        }
        if d(p) && t[p] != '0' && d(p + 1) {
            lens.push(2);
        }
        if d(p) {
            lens.push(1);
        }
        lens
    }
    fn rest(t: &[char], p: usize, left: usize) -> Option<usize> {
        for len in octets(t, p) {
            let e = p + len;
            if left == 0 {
                let next_digit = e < t.len() && t[e].is_ascii_digit();
                let dot_digit = e + 1 < t.len() && t[e] == '.' && t[e + 1].is_ascii_digit();
                if !next_digit && !dot_digit {
                    return Some(e);
                }
            } else if e < t.len() && t[e] == '.' {
                if let Some(end) = rest(t, e + 1, left - 1) {
                    return Some(end);
                }
            }
        }
        None
    }
    rest(t, p, 3)
}

fn hex_run(t: &[char], p: usize) -> usize {
    let mut n = 0;
    while n < 4 && p + n < t.len() && t[p + n].is_ascii_hexdigit() {
        n += 1;
    }
    n
}

/// IPV6_RE at `p`, its end (greedy with backtracking, as the regex).
fn ipv6_at(t: &[char], p: usize) -> Option<usize> {
    fn reps(t: &[char], pos: usize, count: usize) -> Option<usize> {
        if count < 7 && pos < t.len() && t[pos] == ':' {
            let max = hex_run(t, pos + 1);
            for h in (0..=max).rev() {
                if let Some(end) = reps(t, pos + 1 + h, count + 1) {
                    return Some(end);
                }
            }
        }
        if count >= 2 && !(pos < t.len() && (t[pos].is_ascii_hexdigit() || t[pos] == ':')) {
            return Some(pos);
        }
        None
    }
    let max = hex_run(t, p);
    for g in (0..=max).rev() {
        if let Some(end) = reps(t, p + g, 0) {
            return Some(end);
        }
    }
    None
}

/// `ipaddress.IPv6Address(s)` accepts `s` (hex groups and colons only).
pub fn ipv6_valid(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() < 3 || parts.len() > 9 {
        return false;
    }
    let mut skip = None;
    for (i, part) in parts.iter().enumerate().take(parts.len() - 1).skip(1) {
        if part.is_empty() {
            if skip.is_some() {
                return false;
            }
            skip = Some(i);
        }
    }
    let (hi, lo) = if let Some(skip) = skip {
        let mut hi = skip;
        let mut lo = parts.len() - skip - 1;
        if parts[0].is_empty() {
            hi -= 1;
            if hi != 0 {
                return false;
            }
        }
        if parts[parts.len() - 1].is_empty() {
            lo -= 1;
            if lo != 0 {
                return false;
            }
        }
        if 8 < hi + lo + 1 {
            return false;
        }
        (hi, lo)
    } else {
        if parts.len() != 8 || parts[0].is_empty() || parts[7].is_empty() {
            return false;
        }
        (8, 0)
    };
    let ok = |h: &&str| !h.is_empty() && h.len() <= 4 && h.chars().all(|c| c.is_ascii_hexdigit());
    parts[..hi].iter().all(ok) && parts[parts.len() - lo..].iter().all(ok)
}

fn ipv6_ok(s: &str) -> bool {
    if !s.contains("::") && s.matches(':').count() != 7 {
        return false;
    }
    let parts: Vec<&str> = s.split(':').filter(|p| !p.is_empty()).collect();
    if parts.len() < 2
        || parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_digit()) && p.len() <= 2)
    {
        return false;
    }
    ipv6_valid(s)
}

fn ips(t: &Text, out: &mut Vec<Found>) {
    let c = t.chars;
    let n = c.len();
    let digit_dot_digit = (1..n.saturating_sub(1))
        .any(|i| c[i] == '.' && c[i - 1].is_ascii_digit() && c[i + 1].is_ascii_digit());
    if digit_dot_digit {
        let mut p = 0;
        while p < n {
            match ipv4_at(c, p) {
                Some(e) => {
                    let glue = glued(c, p, |x| x.is_ascii_digit() || x == '.');
                    if !glue
                        && !label_before(
                            c,
                            p.saturating_sub(12),
                            p,
                            &["version", "ver", "版本", "v"],
                            &[':', '：'],
                        )
                    {
                        out.push(found(p, e, "ip_address", "ipv4", 0.8));
                    }
                    p = e;
                }
                None => p += 1,
            }
        }
    }
    if t.has("::") || c.iter().filter(|&&x| x == ':').count() >= 7 {
        let mut p = 0;
        while p < n {
            match ipv6_at(c, p) {
                Some(e) => {
                    let s: String = c[p..e].iter().collect();
                    if !glued(c, p, |x| x.is_ascii_hexdigit() || x == ':') && ipv6_ok(&s) {
                        out.push(found(p, e, "ip_address", "ipv6", 0.8));
                    }
                    p = e;
                }
                None => p += 1,
            }
        }
    }
}

const PLATE_PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领";

fn plate_letter(c: char) -> bool {
    c.is_ascii_uppercase() && c != 'I' && c != 'O'
}

/// PLATE_RE at `p`: `[province][A-HJ-NP-Z][A-HJ-NP-Z0-9]{4,5}[挂学警港澳]?(?![A-Za-z0-9])`.
pub fn plate_at(t: &[char], p: usize) -> Option<usize> {
    plate_ends(t, p).into_iter().find(|&e| free_after(t, e))
}

/// `PLATE_RE.fullmatch(t)`.
pub fn plate_full(t: &[char]) -> bool {
    plate_ends(t, 0).contains(&t.len())
}

/// The ends PLATE_RE (without its look-ahead) can reach from `p`, in the order it tries them.
fn plate_ends(t: &[char], p: usize) -> Vec<usize> {
    let mut ends = Vec::new();
    if !(p < t.len() && PLATE_PROVINCES.contains(t[p]) && p + 1 < t.len() && plate_letter(t[p + 1]))
    {
        return ends;
    }
    let mut k = 0;
    while k < 5
        && p + 2 + k < t.len()
        && (plate_letter(t[p + 2 + k]) || t[p + 2 + k].is_ascii_digit())
    {
        k += 1;
    }
    for n in (4..=k).rev() {
        let e = p + 2 + n;
        if e < t.len() && "挂学警港澳".contains(t[e]) {
            ends.push(e + 1);
        }
        ends.push(e);
    }
    ends
}

/// `regex.finditer(t)` for a matcher at a position: (start, end) of each match.
fn matches_of(t: &[char], at: impl Fn(&[char], usize) -> Option<usize>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < t.len() {
        match at(t, p) {
            Some(e) => {
                out.push((p, e));
                p = e.max(p + 1);
            }
            None => p += 1,
        }
    }
    out
}

fn plates(t: &Text, out: &mut Vec<Found>) {
    if !t.chars.iter().any(char::is_ascii_uppercase) {
        return; // a plate's second character is a capital letter
    }
    for (s, e) in matches_of(t.chars, plate_at) {
        if glued(t.chars, s, ascii_alnum) {
            continue;
        }
        if t.chars[s..e].iter().filter(|c| c.is_ascii_digit()).count() >= 2 {
            out.push(found(s, e, "licence_plate", "licence_plate", 0.8));
        }
    }
}

fn given_name(given: &[char]) -> usize {
    if given.is_empty() || STOP.contains(given[0]) {
        return 0;
    }
    if given.len() > 1 && STOP.contains(given[1]) {
        return 1;
    }
    given.len()
}

fn names(t: &Text, out: &mut Vec<Found>) {
    let p = patterns();
    let before = t.has("先生") || t.has("女士") || t.has("小姐");
    for (regex, conf, on) in [(&p.name_after, 0.7, true), (&p.name_before, 0.6, before)] {
        if !on {
            continue;
        }
        for m in regex.captures_iter(&t.s) {
            let (g1, g2) = (m.get(1).unwrap(), m.get(2).unwrap());
            let given: Vec<char> = g2.as_str().chars().collect();
            let n = given_name(&given);
            if n > 0 {
                out.push(found(
                    t.c(g1.start()),
                    t.c(g2.start()) + n,
                    "name",
                    "name_context",
                    conf,
                ));
            }
        }
    }
}

fn addresses(t: &Text, out: &mut Vec<Found>) {
    let p = patterns();
    for m in p.address.find_iter(&t.s) {
        if p.unit.find_iter(m.as_str()).count() >= 2 {
            out.push(found(
                t.c(m.start()),
                t.c(m.end()),
                "address",
                "address",
                0.7,
            ));
        }
    }
    for m in p.address_kw.captures_iter(&t.s) {
        let g = m.get(1).unwrap();
        if p.unit.find_iter(g.as_str()).count() >= 2 {
            out.push(found(
                t.c(g.start()),
                t.c(g.end()),
                "address",
                "address_keyword",
                0.6,
            ));
        }
    }
}

fn estate_addresses(t: &Text, out: &mut Vec<Found>) {
    if !(t.has("栋")
        || t.has("幢")
        || t.has("座")
        || t.has("号楼")
        || t.has("单元")
        || t.has("号院"))
    {
        return;
    }
    let p = patterns();
    let c = t.chars;
    let mut at = 0;
    // finditer resumes after the digits the pattern's optional tail takes
    while let Some(m) = p.estate.captures_at(&t.s, at) {
        let whole = m.get(0).unwrap();
        let (s, mut e) = (t.c(whole.start()), t.c(whole.end()));
        at = whole.end();
        // `(?:[0-9]{3,4}(?![0-9]))?` at the end
        let mut d = 0;
        while e + d < c.len() && c[e + d].is_ascii_digit() {
            d += 1;
        }
        if d == 3 || d == 4 {
            e += d;
            at += d; // ASCII digits: one byte each
        }
        let text: String = c[s..e].iter().collect();
        let units: Vec<&str> = p.unit_words.find_iter(&text).map(|u| u.as_str()).collect();
        if units.len() < 2 {
            continue;
        }
        if m.get(1).is_none() && !units.iter().any(|u| matches!(*u, "单元" | "室" | "户")) {
            continue;
        }
        out.push(found(s, e, "address", "address_estate", 0.65));
    }
}

fn amounts(t: &Text, out: &mut Vec<Found>) {
    if ![
        "收入", "薪", "工资", "营", "资产", "存款", "身家", "投资", "余额",
    ]
    .iter()
    .any(|g| t.has(g))
    {
        return;
    }
    let p = patterns();
    for m in p.amount.captures_iter(&t.s) {
        let whole = m.get(0).unwrap();
        let amount = m.get(2).unwrap();
        if !p.has_unit.is_match(amount.as_str()) {
            continue;
        }
        let start0 = t.c(whole.start());
        let before = t.window(start0.saturating_sub(4), start0);
        let cue = m.get(1).unwrap().as_str();
        let product = PRODUCT_BEFORE;
        if matches!(cue, "投资" | "营收" | "营业额" | "营业收入")
            && product.iter().any(|p| before.contains(p))
        {
            continue;
        }
        let a: Vec<char> = amount.as_str().chars().collect();
        let lead = a.iter().take_while(|&&c| py_space(c)).count();
        let kept = a.len() - a.iter().rev().take_while(|&&c| py_space(c)).count();
        let base = t.c(amount.start());
        out.push(found(
            base + lead,
            base + kept,
            cue_category(cue),
            "amount_cue",
            0.7,
        ));
    }
}

const PRODUCT_BEFORE: &[&str] = &[
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
];
const PRODUCT_RISK: &[&str] = &["产品", "基金", "理财", "本品", "该品", "债券", "信托"];
const PERSON: &[&str] = &["客户", "投资者", "投资人", "本人", "其"];

/// The word lists this module copies from the Python detectors, by the Python name
/// they copy: a test holds them equal, so an edit on one side cannot go unnoticed.
pub fn word_lists() -> Vec<(&'static str, Vec<String>)> {
    let split = |s: &str| s.split('|').map(str::to_string).collect::<Vec<_>>();
    let chars = |s: &str| s.chars().map(String::from).collect::<Vec<_>>();
    let list = |l: &[&str]| l.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    vec![
        ("patterns._COMPOUND", split(COMPOUND)),
        ("patterns._SINGLE", chars(SINGLE)),
        (
            "patterns._NAME_CTX",
            split(NAME_CTX.trim_start_matches("(?:").trim_end_matches(')')),
        ),
        ("patterns._STOP", chars(STOP)),
        ("patterns._PROVINCES", split(PROVINCES)),
        ("patterns._FILE_TLDS", list(FILE_TLDS)),
        ("patterns.KW_PASSPORT", list(KW_PASSPORT)),
        ("patterns.KW_SECURITIES", list(KW_SECURITIES)),
        ("patterns.PLATE_PROVINCES", chars(PLATE_PROVINCES)),
        ("prose._INCOME_CUES", split(INCOME_CUES)),
        ("prose._ASSET_CUES", split(ASSET_CUES)),
        ("prose._BALANCE_CUES", split(BALANCE_CUES)),
        ("prose._RISK_CUE", list(RISK_CUES)),
        ("prose._RISK_TYPES", list(&RISK_TYPE_WORDS)),
        ("prose._PRODUCT_BEFORE", list(PRODUCT_BEFORE)),
        ("prose._PRODUCT_RISK", list(PRODUCT_RISK)),
        ("prose._PERSON", list(PERSON)),
        ("urls._BEARER_PARAMS", split(BEARER_PARAMS)),
        ("urls._LONG_PARAMS", split(LONG_PARAMS)),
        ("urls._SHARE_SEGMENTS", list(SHARE_SEGMENTS)),
        ("normalize._NUMERALS", chars(NUMERALS)),
    ]
}

const RISK_TYPE_WORDS: [&str; 7] = [
    "保守型",
    "谨慎型",
    "稳健型",
    "平衡型",
    "成长型",
    "进取型",
    "激进型",
];

fn starts_with(t: &[char], p: usize, word: &str) -> bool {
    let mut rest = t.get(p..).unwrap_or(&[]).iter();
    word.chars().all(|w| rest.next() == Some(&w))
}

fn risk_type_at(t: &[char], p: usize) -> Option<usize> {
    RISK_TYPE_WORDS
        .iter()
        .any(|w| starts_with(t, p, w))
        .then_some(p + 3)
}

fn skip_spaces(t: &[char], mut p: usize) -> usize {
    while p < t.len() && py_space(t[p]) {
        p += 1;
    }
    p
}

/// `\s*[（(]?\s*(?:types)` at `p`: the end of the type word.
fn type_after(t: &[char], p: usize) -> Option<usize> {
    let mut q = skip_spaces(t, p);
    if q < t.len() && (t[q] == '（' || t[q] == '(') {
        q = skip_spaces(t, q + 1);
    }
    risk_type_at(t, q)
}

fn close_paren(t: &[char], e: usize) -> usize {
    if e < t.len() && (t[e] == '）' || t[e] == ')') {
        e + 1
    } else {
        e
    }
}

fn grade_at(t: &[char], p: usize) -> bool {
    p + 1 < t.len() && (t[p] == 'C' || t[p] == 'R') && ('1'..='5').contains(&t[p + 1])
}

/// `_C_GRADE_RE` at `p`: `C[1-5](?:\s*[（(]?\s*(?:types)[）)]?)?(?![0-9A-Za-z])`.
fn c_grade_at(t: &[char], p: usize) -> Option<usize> {
    if !(t[p] == 'C' && grade_at(t, p)) {
        return None;
    }
    if let Some(e) = type_after(t, p + 2) {
        let closed = close_paren(t, e);
        if free_after(t, closed) {
            return Some(closed);
        }
        if closed != e && free_after(t, e) {
            return Some(e);
        }
    }
    free_after(t, p + 2).then_some(p + 2)
}

/// `_CUED_RE` at `p`: (end of the cue, start and end of the grade).
fn cued_at(t: &[char], p: usize) -> Option<(usize, usize, usize)> {
    let cue = RISK_CUES.iter().find(|c| starts_with(t, p, c))?;
    let c_end = p + cue.chars().count();
    let link = |c: char| "为是：:属于（(".contains(c) || py_space(c);
    let mut most = 0;
    while most < 4 && c_end + most < t.len() && link(t[c_end + most]) {
        most += 1;
    }
    for n in (0..=most).rev() {
        let q = c_end + n;
        // first alternative: an optional grade, then a type word, then an optional `)`
        if grade_at(t, q) {
            if let Some(e) = type_after(t, q + 2) {
                return Some((c_end, q, close_paren(t, e)));
            }
        }
        if let Some(e) = risk_type_at(t, q) {
            return Some((c_end, q, close_paren(t, e)));
        }
        // second: a bare grade
        if grade_at(t, q) && free_after(t, q + 2) {
            return Some((c_end, q, q + 2));
        }
    }
    None
}

fn risk_grades(t: &Text, out: &mut Vec<Found>) {
    let c = t.chars;
    let gate = (0..c.len().saturating_sub(1))
        .any(|i| c[i] == 'C' && ('1'..='5').contains(&c[i + 1]))
        || (1..c.len()).any(|i| c[i] == '型' && "守慎健衡长取进".contains(c[i - 1]))
        || t.has("风险")
        || t.has("测评");
    if !gate {
        return;
    }
    let p = patterns();
    let mut i = 0;
    while i < c.len() {
        let Some((c_end, g_start, g_end)) = cued_at(c, i) else {
            i += 1;
            continue;
        };
        let s0 = i;
        i = g_end.max(i + 1);
        let before = t.window(s0.saturating_sub(8), s0);
        if PRODUCT_RISK.iter().any(|x| before.contains(x)) {
            continue;
        }
        let cue: String = c[s0..c_end].iter().collect();
        if c[g_start] == 'R'
            && matches!(
                cue.as_str(),
                "风险等级" | "风险评级" | "风险类型" | "风险偏好"
            )
            && !PERSON.iter().any(|x| before.contains(x))
        {
            continue;
        }
        out.push(found(g_start, g_end, "risk_assessment", "risk_cue", 0.75));
    }
    let grades: Vec<(usize, usize)> = matches_of(c, c_grade_at)
        .into_iter()
        .filter(|&(s, _)| !glued(c, s, ascii_alnum))
        .collect();
    let mut legend = std::collections::HashSet::new();
    for w in grades.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.1 <= b.0 && p.range_gap.is_match(&t.window(a.1, b.0)) {
            legend.insert(a.0);
            legend.insert(b.0);
        }
    }
    for &(s, e) in &grades {
        if legend.contains(&s) {
            continue;
        }
        let cue = {
            let w = t.window(s.saturating_sub(12), s);
            RISK_CUES.iter().any(|k| w.contains(k))
        };
        if type_after(c, s + 2).is_some() || cue {
            out.push(found(s, e, "risk_assessment", "risk_grade", 0.7));
        }
    }
    // `(?:types)(?=投资者|客户|投资人)`
    let mut i = 0;
    while i < c.len() {
        match risk_type_at(c, i) {
            Some(e)
                if starts_with(c, e, "投资者")
                    || starts_with(c, e, "客户")
                    || starts_with(c, e, "投资人") =>
            {
                out.push(found(i, e, "risk_assessment", "risk_type", 0.6));
                i = e;
            }
            _ => i += 1,
        }
    }
}

fn five_digits(t: &[char]) -> bool {
    t.iter().filter(|c| c.is_ascii_digit()).count() >= 5
}

/// `_candidates(t, encoded=...)`; None when part of the text must be read by Python.
pub fn candidates(chars: &[char], with_encoded: bool, today: Today) -> Option<Vec<Found>> {
    let t = Text::new(chars);
    let mut out = Vec::new();
    credentials(&t, &mut out);
    if with_encoded && chars.len() >= 8 && !b64_runs(chars).is_empty() {
        encoded(&t, today, &mut out)?;
    }
    if t.has("=") || t.has("/") {
        token_urls(&t, &mut out);
    }
    if five_digits(chars) {
        for h in numbers::scan_numbers(chars, today) {
            out.push(found(
                h.start,
                h.end,
                h.verdict.category,
                h.verdict.detector,
                h.verdict.confidence,
            ));
        }
        if chars.iter().any(char::is_ascii_uppercase) {
            keyword_codes(&t, &mut out);
            usccs(&t, &mut out);
        }
    }
    if t.has("@") {
        emails(&t, &mut out);
    }
    if t.has(".") || t.has(":") {
        ips(&t, &mut out);
    }
    if chars.iter().any(|&c| cjk(c)) {
        plates(&t, &mut out);
        names(&t, &mut out);
        addresses(&t, &mut out);
        estate_addresses(&t, &mut out);
        amounts(&t, &mut out);
        risk_grades(&t, &mut out);
    }
    Some(out)
}

/// `_resolve`: the highest-priority, then longest, candidate wherever spans overlap.
pub fn resolve(mut found: Vec<Found>) -> Vec<Found> {
    if found.len() < 2 {
        return found;
    }
    found.sort_by_key(|f| {
        (
            -priority(f.category),
            f.start as i64 - f.end as i64,
            f.start,
        )
    });
    let mut kept: Vec<Found> = Vec::new();
    for cand in found {
        let i = kept.partition_point(|k| k.start <= cand.start);
        if i > 0 && kept[i - 1].end > cand.start {
            continue;
        }
        if i < kept.len() && kept[i].start < cand.end {
            continue;
        }
        kept.insert(i, cand);
    }
    kept
}

/// `_detect(text)` for text in the domain, else None.
pub fn detect(text: &str, today: Today) -> Option<Vec<Found>> {
    let chars = normalize(text)?;
    if chars
        .iter()
        .any(|&c| !c.is_ascii() && !cjk(c) && c.is_numeric())
    {
        return None; // (the domain holds no such character: a guard)
    }
    Some(resolve(candidates(&chars, true, today)?))
}
