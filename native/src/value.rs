//! Is a whole value one identifier? As `gateway.core.detectors._classify_value` (the
//! specification), for values in the scan's domain (scan.rs); `ctx` is the field name
//! as Python lower-cases it. None: the value is Python's to classify.

use crate::checks::{self, Today};
use crate::numbers::{self, py_space};
use crate::scan::{self, Decoded};

pub struct Hit {
    pub category: &'static str,
    pub end: usize,
    pub detector: String,
    pub confidence: f64,
}

fn hit(category: &'static str, end: usize, detector: &str, confidence: f64) -> Option<Hit> {
    Some(Hit {
        category,
        end,
        detector: detector.to_string(),
        confidence,
    })
}

fn contains_any(ctx: &str, words: &[&str]) -> bool {
    words.iter().any(|w| ctx.contains(w))
}

fn strip(t: &[char]) -> &[char] {
    let start = t.iter().take_while(|&&c| py_space(c)).count();
    let end = t.len()
        - t[start..]
            .iter()
            .rev()
            .take_while(|&&c| py_space(c))
            .count();
    &t[start..end]
}

fn has_cjk(t: &[char]) -> bool {
    t.iter().any(|&c| scan::cjk(c))
}

fn string(t: &[char]) -> String {
    t.iter().collect()
}

/// `compact(value)`: `norm` is the value itself when ASCII, else its normalised form.
fn compact(norm: &[char]) -> Vec<char> {
    let alnum = !norm.is_empty()
        && norm
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || scan::cjk(c));
    let mut text: Vec<char> = if alnum {
        norm.to_vec()
    } else {
        let mut t: Vec<char> = norm
            .iter()
            .copied()
            .filter(|c| !" \t\r\n\u{c}\u{b}-·()（）\u{3000}\u{a0}".contains(*c))
            .collect();
        scan::upper_x(&mut t);
        t
    };
    if text.last() == Some(&'x') {
        *text.last_mut().unwrap() = 'X';
    }
    text
}

fn ascii_code(c: &[char], ctx: &str, n: usize) -> Option<Hit> {
    if c.len() == 18 && scan::uscc_at(c, 0) == Some(18) && checks::uscc_ok(c) {
        let person = c[0] == '9' && c[1] == '2';
        return hit(
            if person { "uscc_person" } else { "uscc_org" },
            n,
            "uscc",
            0.8,
        );
    }
    if ctx.is_empty() {
        return None;
    }
    if contains_any(ctx, scan::KW_PASSPORT) && scan::passport_full(c) {
        return hit("passport", n, "passport", 0.7);
    }
    if contains_any(ctx, scan::KW_SECURITIES)
        && c.len() == 10
        && scan::securities_at(c, 0) == Some(10)
    {
        return hit("securities_account", n, "securities_account", 0.7);
    }
    None
}

fn cjk_value(t: &[char], ctx: &str, n: usize) -> Option<Hit> {
    let p = scan::patterns();
    if n >= 7 && scan::plate_full(t) {
        return hit("licence_plate", n, "licence_plate", 0.8);
    }
    let text = string(t);
    if n >= 5 && p.address_full.is_match(&text) && p.unit.find_iter(&text).count() >= 2 {
        return hit("address", n, "address", 0.7);
    }
    if !ctx.is_empty()
        && contains_any(ctx, &["姓名", "户名", "联系人", "name", "xm", "khxm"])
        && p.name_value.is_match(&text)
    {
        return hit("name", n, "name_value", 0.6);
    }
    None
}

/// IPv4Address(s) of Python's ipaddress: four decimal octets, no leading zeros.
fn ipv4_int(s: &str) -> Option<u32> {
    let octets: Vec<&str> = s.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let mut value = 0u32;
    for o in octets {
        if o.is_empty()
            || o.len() > 3
            || !o.bytes().all(|b| b.is_ascii_digit())
            || (o != "0" && o.starts_with('0'))
        {
            return None;
        }
        let v: u32 = o.parse().ok()?;
        if v > 255 {
            return None;
        }
        value = value << 8 | v;
    }
    Some(value)
}

/// IPv6Address(s), an embedded IPv4 tail included.
fn ipv6(s: &str) -> bool {
    let mut parts: Vec<String> = s.split(':').map(str::to_string).collect();
    if parts.len() < 3 {
        return false;
    }
    if parts.last().unwrap().contains('.') {
        let Some(v4) = ipv4_int(&parts.pop().unwrap()) else {
            return false;
        };
        parts.push(format!("{:x}", (v4 >> 16) & 0xffff));
        parts.push(format!("{:x}", v4 & 0xffff));
    }
    scan::ipv6_valid(&parts.join(":"))
}

fn ip(v: &[char], n: usize) -> Option<Hit> {
    let ip_chars = v
        .iter()
        .all(|c| c.is_ascii_hexdigit() || *c == ':' || *c == '.');
    if !(v.contains(&'.') || v.contains(&':')) || !ip_chars || !(3..=45).contains(&v.len()) {
        return None;
    }
    let s = string(v);
    if ipv4_int(&s).is_some() {
        return hit("ip_address", n, "ipv4", 0.8);
    }
    if ipv6(&s) {
        return hit("ip_address", n, "ipv6", 0.8);
    }
    None
}

/// `_classify_value(value, key_hint)` with `ctx = key_hint.lower()`; None: Python decides.
pub fn classify(value: &str, ctx: &str, today: Today) -> Option<Option<Hit>> {
    let raw: Vec<char> = value.chars().collect();
    // Python reads `\d` and `isdigit` of the raw value in its own Unicode version
    if raw
        .iter()
        .any(|&c| !c.is_ascii() && !scan::cjk(c) && c.is_numeric())
    {
        return None;
    }
    let n = raw.len();
    if !(5..=256).contains(&n) {
        if (2..5).contains(&n) && has_cjk(&raw) {
            scan::normalize(value)?; // only values of the domain
            return Some(cjk_value(&raw, ctx, n));
        }
        return Some(None);
    }
    let mut v = strip(&raw);
    if v.len() > 1 && v[0] == '\'' && "+-=@0123456789".contains(v[1]) {
        v = &v[1..];
    }
    let vs = string(v);
    let p = scan::patterns();
    if vs.starts_with("eyJ") && p.jwt_full.is_match(&vs) {
        return Some(hit("credentials", n, "jwt", 0.95));
    }
    if vs.contains('=') && p.track2_full.is_match(&vs) {
        return Some(hit("credentials", n, "track2", 0.9));
    }
    let norm = scan::normalize(&vs)?;
    if vs.contains('@') {
        let ok = p.email_full.is_match(&string(&norm));
        return Some(if ok {
            hit("email", n, "email", 0.95)
        } else {
            None
        });
    }
    let ascii = vs.is_ascii();
    if ascii && p.datetime.is_match(&vs) {
        return Some(None);
    }
    let digits = if ascii { v } else { &norm[..] };
    if digits.iter().filter(|c| c.is_ascii_digit()).count() >= 5 {
        // compact() reads an ASCII value as it is, any other normalised
        let c = compact(if ascii { v } else { &norm[..] });
        let body = if c.first() == Some(&'+') {
            &c[1..]
        } else {
            &c[..]
        };
        let numeric = checks::is_digits(body)
            || (body.len() > 1
                && checks::is_digits(&body[..body.len() - 1])
                && body.last() == Some(&'X'));
        if numeric {
            if let Some(v) = numbers::classify_compact(&c, ctx, today) {
                return Some(hit(v.category, n, v.detector, v.confidence));
            }
        } else if c.iter().all(char::is_ascii) {
            if let Some(h) = ascii_code(&c, ctx, n) {
                return Some(Some(h));
            }
        }
    }
    if ascii && v.len() >= 8 && scan::b64_runs(v) == [(0, v.len())] {
        let letter = v.iter().any(|c| c.is_ascii_alphabetic());
        if letter || scan::hex_digits_run(v) {
            let text = match scan::decode_run(v) {
                Decoded::Foreign => return None,
                Decoded::Nothing => None,
                Decoded::Text(text) => Some(text),
            };
            if let Some(text) = text {
                let hits = if text.chars().count() < 5 {
                    Vec::new()
                } else {
                    scan::detect(&text, today)?
                };
                let mut best: Option<&scan::Found> = None;
                for h in &hits {
                    match best {
                        Some(b) if scan::priority(h.category) <= scan::priority(b.category) => {}
                        _ => best = Some(h),
                    }
                }
                if let Some(b) = best {
                    return Some(hit(
                        b.category,
                        n,
                        &format!("encoded:{}", b.detector),
                        b.confidence,
                    ));
                }
            }
        }
    }
    if ascii {
        return Some(ip(v, n));
    }
    if has_cjk(v) {
        let t = strip(&norm).to_vec();
        return Some(cjk_value(&t, ctx, n));
    }
    Some(None)
}
