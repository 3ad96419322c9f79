//! Validation of Chinese identifiers, as gateway/core/detectors/checks.py (the
//! specification): every function takes a compacted value as characters and is pure.

/// The dates a birth date is checked against: the year the Python process started
/// (a year before it is certainly not in the future) and today, both from Python.
#[derive(Clone, Copy)]
pub struct Today {
    pub import_year: i32,
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl From<(i32, i32, u32, u32)> for Today {
    /// (the year the Python process started, today's year, month, day)
    fn from((import_year, year, month, day): (i32, i32, u32, u32)) -> Self {
        Today {
            import_year,
            year,
            month,
            day,
        }
    }
}

const ID_PROVINCES: [&str; 34] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82",
];
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const LUHN_DOUBLE: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];

pub fn is_digits(s: &[char]) -> bool {
    !s.is_empty() && s.iter().all(|c| c.is_ascii_digit())
}

fn number(s: &[char]) -> i32 {
    s.iter()
        .fold(0, |n, c| n * 10 + c.to_digit(10).unwrap_or(0) as i32)
}

fn starts(s: &[char], prefix: &str) -> bool {
    let mut it = s.iter();
    prefix.chars().all(|p| it.next() == Some(&p))
}

fn eq(s: &[char], text: &str) -> bool {
    s.len() == text.chars().count() && starts(s, text)
}

/// Lexicographic comparison of `s` with an ASCII string, as Python compares str.
fn cmp(s: &[char], text: &str) -> std::cmp::Ordering {
    s.iter().copied().cmp(text.chars())
}

fn between(s: &[char], lo: &str, hi: &str) -> bool {
    cmp(s, lo).is_ge() && cmp(s, hi).is_le()
}

fn province(s: &[char]) -> bool {
    s.len() >= 2 && ID_PROVINCES.iter().any(|p| starts(s, p))
}

pub fn mod11_2_ok(s: &[char]) -> bool {
    if s.len() != 18 || !is_digits(&s[..17]) {
        return false;
    }
    let total: u32 = s[..17]
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    ID_CHECK[(total % 11) as usize] as char == s[17]
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

pub fn date_ok(year: i32, month: u32, day: u32, today: Today) -> bool {
    if year < 1880 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    // Python's date() accepts years up to 9999
    if year > 9999 || day > days_in_month(year, month) {
        return false;
    }
    if year < today.import_year {
        return true;
    }
    (year, month, day) <= (today.year, today.month, today.day)
}

fn birth_ok(s: &[char], today: Today) -> bool {
    date_ok(
        number(&s[6..10]),
        number(&s[10..12]) as u32,
        number(&s[12..14]) as u32,
        today,
    )
}

pub fn resident_id_ok(s: &[char], today: Today) -> bool {
    s.len() == 18 && province(s) && is_digits(&s[..17]) && birth_ok(s, today) && mod11_2_ok(s)
}

pub fn residence_permit_ok(s: &[char], today: Today) -> bool {
    s.len() == 18
        && (starts(s, "810000") || starts(s, "820000") || starts(s, "830000"))
        && is_digits(&s[..17])
        && birth_ok(s, today)
        && mod11_2_ok(s)
}

pub fn permanent_residence_ok(s: &[char], today: Today) -> bool {
    s.len() == 18 && s[0] == '9' && is_digits(&s[..17]) && birth_ok(s, today) && mod11_2_ok(s)
}

pub fn legacy_id_ok(s: &[char], today: Today) -> bool {
    s.len() == 15
        && is_digits(s)
        && province(s)
        && date_ok(
            1900 + number(&s[6..8]),
            number(&s[8..10]) as u32,
            number(&s[10..12]) as u32,
            today,
        )
}

fn uscc_index(c: char) -> Option<u32> {
    USCC_CHARSET
        .iter()
        .position(|&b| b as char == c)
        .map(|i| i as u32)
}

pub fn uscc_ok(s: &[char]) -> bool {
    if s.len() != 18 || !is_digits(&s[2..8]) {
        return false;
    }
    let mut total = 0u32;
    let mut weight = 1u32; // 3^i mod 31
    for &c in &s[..17] {
        match uscc_index(c) {
            Some(i) => total += i * weight,
            None => return false,
        }
        weight = weight * 3 % 31;
    }
    match uscc_index(s[17]) {
        Some(check) => (31 - total % 31) % 31 == check,
        None => false,
    }
}

pub fn luhn_ok(digits: &[char]) -> bool {
    let mut total = 0u32;
    for (i, c) in digits.iter().rev().enumerate() {
        let d = c.to_digit(10).unwrap_or(0);
        total += if i % 2 == 0 {
            d
        } else {
            LUHN_DOUBLE[d as usize]
        };
    }
    total % 10 == 0
}

pub fn card_iin_ok(d: &[char]) -> bool {
    let n = d.len();
    if starts(d, "62") || starts(d, "60") || starts(d, "955") {
        return (16..=19).contains(&n);
    }
    if d.first() == Some(&'4') {
        return n == 16 || n == 19;
    }
    let two = &d[..n.min(2)];
    let four = &d[..n.min(4)];
    if between(two, "51", "55") || between(four, "2221", "2720") {
        return n == 16;
    }
    if eq(two, "34") || eq(two, "37") {
        return n == 15;
    }
    if between(four, "3528", "3589") {
        return (16..=19).contains(&n);
    }
    false
}

fn mobile_segment(d: &[char]) -> bool {
    let (a, b, c) = (d[0], d[1], d[2]);
    if a != '1' {
        return false;
    }
    match b {
        '3' | '8' => true,
        '4' => matches!(c, '5' | '7' | '9'),
        '5' => c != '4',
        '6' => matches!(c, '2' | '5' | '6' | '7'),
        '7' => !matches!(c, '4' | '9'),
        '9' => c != '4',
        _ => false,
    }
}

pub fn mobile_ok(d: &[char]) -> bool {
    d.len() == 11 && is_digits(d) && mobile_segment(d)
}

pub fn landline_area(d: &[char]) -> usize {
    if d.len() < 10 || d[0] != '0' || !is_digits(d) {
        return 0;
    }
    let area = match d[1] {
        '1' if d[2] == '0' => 3,
        '2' => 3,
        '3'..='9' => 4,
        _ => 0,
    };
    if area == 0 {
        return 0;
    }
    let subscriber = &d[area..];
    if (7..=8).contains(&subscriber.len()) && ('2'..='8').contains(&subscriber[0]) {
        area
    } else {
        0
    }
}

pub fn corporate_number(d: &[char]) -> bool {
    (d.len() == 10 && (starts(d, "400") || starts(d, "800")))
        || ((5..=8).contains(&d.len()) && starts(d, "95"))
}
