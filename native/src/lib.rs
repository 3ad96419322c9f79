//! crm-gateway's compiled detectors (module `gateway.core._native`).
//!
//! Each function mirrors a Python function of `gateway.core.detectors`, which stays
//! the executable specification: tests/unit/core/test_native.py asserts equal results
//! on generated text. A function returns None for input outside the domain it was
//! proven on, and the caller then runs the Python code.

// `is_multiple_of` is newer than the Rust of Debian stable, which builds the image
#![allow(clippy::manual_is_multiple_of)]

use pyo3::prelude::*;

mod checks;
mod numbers;
mod scan;
mod value;

use std::collections::HashMap;

use checks::Today;

/// Texts longer than this are scanned with the GIL released.
const DETACH_CHARS: usize = 4096;

type Found = (usize, usize, &'static str, &'static str, f64);

/// `work` on `text`, with the GIL released when the text is long enough to pay for it.
fn scanned<T: Send>(py: Python<'_>, text: &str, work: impl FnOnce() -> T + Send) -> T {
    if text.len() > DETACH_CHARS {
        py.allow_threads(work)
    } else {
        work()
    }
}
type Scanned = (usize, usize, &'static str, String, f64);
type Classified = (&'static str, usize, usize, String, f64);

/// `numbers.scan_numbers(text)` as `(start, end, category, detector, confidence)`, or
/// None when `text` holds a numeric character other than an ASCII digit (Python's
/// `\d` and `str.isdigit` read those, in its own Unicode version: left to Python).
#[pyfunction]
fn scan_numbers(py: Python<'_>, text: &str, today: (i32, i32, u32, u32)) -> Option<Vec<Found>> {
    let today = Today::from(today);
    let work = || {
        let chars: Vec<char> = text.chars().collect();
        if chars.iter().any(|c| !c.is_ascii() && c.is_numeric()) {
            return None;
        }
        let hits = numbers::scan_numbers(&chars, today);
        Some(
            hits.into_iter()
                .map(|h| {
                    (
                        h.start,
                        h.end,
                        h.verdict.category,
                        h.verdict.detector,
                        h.verdict.confidence,
                    )
                })
                .collect(),
        )
    };
    scanned(py, text, work)
}

/// Hand over the characters outside ASCII and CJK the scan may read, each with its
/// normalised form (computed by Python from its own Unicode database). Once.
#[pyfunction]
fn set_domain(map: HashMap<char, char>) -> bool {
    scan::set_domain(map)
}

/// `detectors._detect(text)` as `(start, end, category, detector, confidence)`, or None
/// when `text` is outside the domain (see scan.rs): Python scans it then.
#[pyfunction]
fn detect(py: Python<'_>, text: &str, today: (i32, i32, u32, u32)) -> Option<Vec<Scanned>> {
    let today = Today::from(today);
    let work = || {
        scan::detect(text, today).map(|hits| {
            hits.into_iter()
                .map(|f| {
                    (
                        f.start,
                        f.end,
                        f.category,
                        f.detector.into_owned(),
                        f.confidence,
                    )
                })
                .collect()
        })
    };
    scanned(py, text, work)
}

/// `detectors._classify_value(value, key_hint)` with `ctx = key_hint.lower()` (or ""):
/// `(True, hit or None)`, or `(False, None)` when Python must classify the value.
#[pyfunction]
fn classify_value(
    value: &str,
    ctx: &str,
    today: (i32, i32, u32, u32),
) -> (bool, Option<Classified>) {
    let today = Today::from(today);
    match value::classify(value, ctx, today) {
        None => (false, None),
        Some(found) => (
            true,
            found.map(|h| (h.category, 0, h.end, h.detector, h.confidence)),
        ),
    }
}

/// The word lists the compiled detectors copy from the Python ones, by Python name.
#[pyfunction]
fn word_lists() -> Vec<(&'static str, Vec<String>)> {
    let mut lists = scan::word_lists();
    lists.extend(numbers::word_lists());
    lists
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(scan_numbers, m)?)?;
    m.add_function(wrap_pyfunction!(set_domain, m)?)?;
    m.add_function(wrap_pyfunction!(detect, m)?)?;
    m.add_function(wrap_pyfunction!(classify_value, m)?)?;
    m.add_function(wrap_pyfunction!(word_lists, m)?)?;
    Ok(())
}
