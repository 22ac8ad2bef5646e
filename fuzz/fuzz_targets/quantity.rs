//! `quantity::format_f64` and `quantity::format_int` on every bit pattern.
//!
//! Invariants: never panic; NaN and infinities are errors, every finite value is Ok; the text is
//! canonical DecimalSI (`-?[1-9][0-9]*` + suffix, or `0`); `format_int` is exact; `format_f64`
//! is exact down to nano and otherwise rounds the shortest decimal of the magnitude up to the
//! next nano.
#![no_main]

use flux_metrics::api::quantity::{format_f64, format_int};
use libfuzzer_sys::fuzz_target;

const SUFFIXES: [(&str, i32); 9] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

fuzz_target!(|data: [u8; 16]| {
    let bits = u64::from_le_bytes(data[..8].try_into().unwrap());
    let int = i64::from_le_bytes(data[8..].try_into().unwrap());

    let v = f64::from_bits(bits);
    match format_f64(v) {
        Ok(text) => {
            assert!(v.is_finite(), "{v:?} formatted as {text:?}");
            let (neg, digits, exp) = split(&text);
            assert_eq!(neg, v < 0.0 && text != "0", "sign of {v:?} → {text:?}");
            let mag = v.abs();
            if mag >= 1e8 {
                // The shortest digits reach at most 1e-8: no rounding, so the text reads back
                // as exactly the same f64.
                let back: f64 = format!("{digits}e{exp}").parse().unwrap();
                assert_eq!(back, mag, "{v:?} → {text:?}");
            } else if mag > 0.0 {
                // Below 1e8 everything fits in u128 nanos: the text must be the shortest
                // decimal of |v|, in nanos, rounded up.
                assert!(exp >= -9);
                let mut nanos: u128 = digits.parse().unwrap();
                for _ in 0..exp + 9 {
                    nanos *= 10;
                }
                assert_eq!(nanos, ceil_nanos(mag), "{v:?} → {text:?}");
            }
        }
        Err(e) => {
            assert!(!v.is_finite(), "finite {v:?} rejected: {e}");
            let _ = e.to_string();
        }
    }

    let text = format_int(int);
    let (neg, digits, exp) = split(&text);
    assert_eq!(neg, int < 0, "{int} → {text:?}");
    assert!(exp >= 0, "integer {int} → {text:?} has a fractional suffix");
    let mut value: i128 = digits.parse().unwrap();
    for _ in 0..exp {
        value *= 10;
    }
    if neg {
        value = -value;
    }
    assert_eq!(value, i128::from(int), "{int} → {text:?}");
});

/// Splits canonical quantity text into sign, digits and the suffix's base-10 exponent, checking
/// its shape: `0`, or an optional `-`, digits without a leading zero, an optional suffix, where
/// the suffix is the largest one whose mantissa is an integer (no trailing `000` before it,
/// except at E, the largest).
fn split(text: &str) -> (bool, &str, i32) {
    if text == "0" {
        return (false, "0", 0);
    }
    let (neg, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (digits, exp) = match SUFFIXES.iter().find(|(s, _)| rest.ends_with(s)) {
        Some(&(s, e)) => (&rest[..rest.len() - s.len()], e),
        None => (rest, 0),
    };
    assert!(
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        "{text:?} is not a quantity"
    );
    assert!(!digits.starts_with('0'), "{text:?} has a leading zero");
    if exp < 18 {
        assert!(!digits.ends_with("000"), "{text:?} is not canonical: a larger suffix fits");
    }
    (neg, digits, exp)
}

/// The shortest decimal text of `mag` (0 < mag < 1e8) in units of 1e-9, rounded up.
fn ceil_nanos(mag: f64) -> u128 {
    let sci = format!("{mag:e}");
    let (mantissa, e) = sci.split_once('e').unwrap();
    let (int_part, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int_part}{frac}");
    // mag = digits × 10^(e − |frac|); in nanos, × 10^(e − |frac| + 9).
    let shift = e.parse::<i64>().unwrap() - frac.len() as i64 + 9;
    if shift >= 0 {
        let mut n: u128 = digits.parse().unwrap();
        for _ in 0..shift {
            n *= 10;
        }
        return n;
    }
    let drop = usize::try_from(-shift).unwrap();
    let keep = digits.len().saturating_sub(drop);
    let floor: u128 = if keep == 0 { 0 } else { digits[..keep].parse().unwrap() };
    let rest_nonzero = digits[keep..].bytes().any(|b| b != b'0');
    floor + u128::from(rest_nonzero)
}
