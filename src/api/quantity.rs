//! Kubernetes `resource.Quantity` text: the canonical form (DecimalSI) of metric values, as
//! apimachinery's `Quantity.MarshalJSON` writes it (`"1500m"`, `"2k"`, `"100E"`), worked on
//! decimal digit strings, never float arithmetic, so values print exactly; and [`parse`], which
//! reads any Quantity text as apimachinery's `ParseQuantity` does (the rehearsal writes of
//! `--allow-writes` are Quantities).

/// Why a value has no Quantity text.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuantityError {
    /// NaN and infinities have no Quantity form.
    #[error("cannot format {value} as a Kubernetes quantity: only finite numbers are quantities")]
    NotFinite {
        /// The value as Rust prints it (`NaN`, `inf`, `-inf`).
        value: String,
    },
    /// Text that is not a Quantity.
    #[error(
        "{text:?} is not a Kubernetes quantity: {reason} (write a number with an optional suffix, as in \"300m\", \"2\", \"1.5k\", \"4Gi\" or \"5e3\")"
    )]
    Syntax {
        /// The text (cut to its first 64 characters).
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Binary SI suffixes, powers of 1024, from apimachinery `suffix.go`.
const BINARY_SUFFIXES: [(i32, &str); 6] = [
    (10, "Ki"),
    (20, "Mi"),
    (30, "Gi"),
    (40, "Ti"),
    (50, "Pi"),
    (60, "Ei"),
];

/// Reads Quantity text as apimachinery's `ParseQuantity` does: an optional sign, digits with an
/// optional fraction (`1.5`, `.5`, `1.`), then one suffix: decimal SI (`n u m k M G T P E`),
/// binary SI (`Ki Mi Gi Ti Pi Ei`) or a decimal exponent (`e3`, `E-2`); no spaces. One
/// difference, on purpose: a number needs at least one digit (`ParseQuantity` reads `"m"` and
/// `"."` as 0).
///
/// # Errors
/// [`QuantityError::Syntax`] naming what is wrong; [`QuantityError::NotFinite`] for values
/// beyond a float's range.
pub fn parse(text: &str) -> Result<f64, QuantityError> {
    let fail = |reason| QuantityError::Syntax {
        text: crate::util::text::excerpt(text, 64),
        reason,
    };
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        Some(_) => (false, text),
        None => return Err(fail("it is empty")),
    };
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let int_len = digits(rest);
    let (int, mut rest) = rest.split_at(int_len);
    let mut frac = "";
    if let Some(after) = rest.strip_prefix('.') {
        let n = digits(after);
        frac = &after[..n];
        rest = &after[n..];
    }
    if int.is_empty() && frac.is_empty() {
        return Err(fail("it has no digits"));
    }
    let int = if int.is_empty() { "0" } else { int };
    let number = format!("{}{int}.{frac}", if negative { "-" } else { "" });
    let (exp10, exp2) = match rest {
        "" => (0, 0),
        _ => {
            if let Some(&(e, _)) = SUFFIXES.iter().find(|&&(_, s)| s == rest && !s.is_empty()) {
                (e, 0)
            } else if let Some(&(e, _)) = BINARY_SUFFIXES.iter().find(|&&(_, s)| s == rest) {
                (0, e)
            } else {
                match rest.strip_prefix(['e', 'E']).map(str::parse::<i64>) {
                    Some(Ok(e)) => (e, 0),
                    _ => {
                        return Err(fail(
                            "its suffix is none of n u m k M G T P E, Ki Mi Gi Ti Pi Ei or an exponent",
                        ));
                    }
                }
            }
        }
    };
    let value: f64 = format!("{number}0e{exp10}")
        .parse()
        .map_err(|_| fail("its exponent is too large"))?;
    let value = value * 2f64.powi(exp2);
    if !value.is_finite() {
        return Err(QuantityError::NotFinite {
            value: text.to_owned(),
        });
    }
    Ok(value)
}

/// DecimalSI suffixes by base-10 exponent, from apimachinery `suffix.go`.
const SUFFIXES: [(i64, &str); 10] = [
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];

/// Smallest and largest exponents that have a suffix.
const MIN_EXP: i64 = -9;
const MAX_EXP: i64 = 18;

/// Canonical Kubernetes Quantity text of an integer: 0 → `"0"`, 4 → `"4"`, 1500 → `"1500"`,
/// 2000 → `"2k"`, 1000000 → `"1M"`, -3000 → `"-3k"`; `i64::MIN` and `i64::MAX` are exact.
pub fn format_int(v: i64) -> String {
    // i128 so that |i64::MIN| is representable.
    canonical(v < 0, &i128::from(v).unsigned_abs().to_string(), 0)
}

/// Canonical Kubernetes Quantity text of a float: 0.25 → `"250m"`, 1.5 → `"1500m"`,
/// 10.25 → `"10250m"`, 0.000001 → `"1u"`, 2.0 → `"2"`, 1e20 → `"100E"`.
///
/// Works on the shortest decimal text that reads back as `v`, so 0.1 is `"100m"`, not the
/// binary value's long expansion. Digits below nano round the magnitude up to the next nano
/// (1e-12 → `"1n"`, -1e-12 → `"-1n"`), as apimachinery's `ParseQuantity` does. Values larger
/// than Kubernetes can hold (about 9.2E) still get an exact `E` text rather than a cap.
///
/// # Errors
/// [`QuantityError::NotFinite`] for NaN and infinities.
pub fn format_f64(v: f64) -> Result<String, QuantityError> {
    if !v.is_finite() {
        return Err(QuantityError::NotFinite {
            value: v.to_string(),
        });
    }
    if v == 0.0 {
        return Ok("0".to_owned());
    }
    // `{:e}` prints the shortest round-trip digits: "1.025e1", "5e-324", "1.7976931348623157e308".
    let text = format!("{:e}", v.abs());
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The exponent of a finite f64 is within ±324; 0 is a harmless fallback that the
    // tests prove is never taken.
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let digits = format!("{int_part}{frac_part}");
    let frac_len = i64::try_from(frac_part.len()).unwrap_or(0);
    Ok(canonical(v < 0.0, &digits, exponent - frac_len))
}

/// Canonical text of ±`digits` × 10^`exp`, where `digits` is a non-empty run of ASCII digits.
fn canonical(negative: bool, digits: &str, exp: i64) -> String {
    let mut digits = digits.trim_start_matches('0').to_owned();
    if digits.is_empty() {
        return "0".to_owned();
    }
    let mut exp = exp;
    strip_trailing_zeros(&mut digits, &mut exp);
    if exp < MIN_EXP {
        round_up_to_nano(&mut digits, &mut exp);
        strip_trailing_zeros(&mut digits, &mut exp);
    }
    // Lower the exponent to a multiple of 3, then to at most E: the largest suffix whose
    // mantissa is an integer.
    let mut lower_by = exp.rem_euclid(3);
    if exp - lower_by > MAX_EXP {
        lower_by = exp - MAX_EXP;
    }
    push_zeros(&mut digits, lower_by);
    exp -= lower_by;
    let suffix = SUFFIXES
        .iter()
        .find(|&&(e, _)| e == exp)
        .map_or("", |&(_, s)| s);
    let sign = if negative { "-" } else { "" };
    format!("{sign}{digits}{suffix}")
}

fn strip_trailing_zeros(digits: &mut String, exp: &mut i64) {
    let kept = digits.trim_end_matches('0').len();
    *exp += (digits.len() - kept) as i64;
    digits.truncate(kept);
}

fn push_zeros(digits: &mut String, n: i64) {
    for _ in 0..n {
        digits.push('0');
    }
}

/// Drops the digits below 10^-9 and, since they are not all zero (trailing zeros are
/// already stripped), adds one nano to the magnitude.
fn round_up_to_nano(digits: &mut String, exp: &mut i64) {
    let cut = usize::try_from(MIN_EXP - *exp).unwrap_or(usize::MAX);
    let keep = digits.len().saturating_sub(cut);
    digits.truncate(keep);
    *exp = MIN_EXP;
    // Add one to the decimal string, carrying.
    let mut bytes = std::mem::take(digits).into_bytes();
    let mut carry = true;
    for b in bytes.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            carry = false;
            break;
        }
    }
    if carry {
        bytes.insert(0, b'1');
    }
    *digits = String::from_utf8(bytes).unwrap_or_else(|_| "1".to_owned());
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Test-only reader of canonical DecimalSI text: (negative, digits, base-10 exponent).
    fn read(q: &str) -> (bool, String, i64) {
        let (negative, rest) = match q.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, q),
        };
        let split = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, suffix) = rest.split_at(split);
        let exp = SUFFIXES
            .iter()
            .find(|&&(_, s)| s == suffix)
            .map(|&(e, _)| e)
            .unwrap_or_else(|| panic!("unknown suffix in {q:?}"));
        assert!(!digits.is_empty(), "no digits in {q:?}");
        assert!(
            digits == "0" || !digits.starts_with('0'),
            "leading zero in {q:?}"
        );
        (negative, digits.to_owned(), exp)
    }

    fn read_i128(q: &str) -> i128 {
        let (negative, digits, exp) = read(q);
        let mut v: i128 = digits.parse().unwrap();
        for _ in 0..exp {
            v *= 10;
        }
        if negative { -v } else { v }
    }

    fn read_f64(q: &str) -> f64 {
        let (negative, digits, exp) = read(q);
        let v: f64 = format!("{digits}e{exp}").parse().unwrap();
        if negative { -v } else { v }
    }

    /// Canonical means: no mantissa digits a larger suffix could absorb.
    fn assert_canonical(q: &str) {
        let (_, digits, exp) = read(q);
        if digits != "0" && exp < MAX_EXP {
            assert!(!digits.ends_with("000"), "{q:?} is not canonical");
        }
    }

    #[test]
    fn formats_integers() {
        for (v, want) in [
            (0, "0"),
            (4, "4"),
            (100, "100"),
            (1500, "1500"),
            (2000, "2k"),
            (1_000_000, "1M"),
            (1_500_000, "1500k"),
            (-3000, "-3k"),
            (-1, "-1"),
            (10_i64.pow(18), "1E"),
            (7 * 10_i64.pow(18), "7E"),
            (i64::MAX, "9223372036854775807"),
            (i64::MIN, "-9223372036854775808"),
        ] {
            assert_eq!(format_int(v), want, "{v}");
        }
    }

    #[test]
    fn formats_floats() {
        for (v, want) in [
            (0.0, "0"),
            (-0.0, "0"),
            (0.25, "250m"),
            (0.5, "500m"),
            (1.5, "1500m"),
            (10.25, "10250m"),
            (0.1, "100m"),
            (0.000001, "1u"),
            (1e-9, "1n"),
            (1e-12, "1n"),
            (-1e-12, "-1n"),
            (1.0000000001, "1000000001n"),
            (0.0000000019, "2n"),
            (0.0000000009999, "1n"),
            (0.9999999999, "1"),
            (2.0, "2"),
            (4.0, "4"),
            (2000.0, "2k"),
            (1e20, "100E"),
            (1e18, "1E"),
            (1.5e18, "1500P"),
            (-2.5, "-2500m"),
            (123456.789, "123456789m"),
            (f64::MIN_POSITIVE, "1n"),
            (5e-324, "1n"),
        ] {
            assert_eq!(format_f64(v).unwrap(), want, "{v}");
        }
        let max = format_f64(f64::MAX).unwrap();
        assert!(
            max.starts_with("17976931348623157") && max.ends_with("0E"),
            "{max}"
        );
        assert_eq!(max.len(), 309 - 18 + 1);
    }

    #[test]
    fn parses_quantities_as_apimachinery_does() {
        for (text, want) in [
            ("300m", 0.3),
            ("0", 0.0),
            ("2", 2.0),
            ("+2", 2.0),
            ("-1.5k", -1500.0),
            (".5", 0.5),
            ("1.", 1.0),
            ("1.G", 1e9),
            ("4Gi", 4.0 * 1024.0 * 1024.0 * 1024.0),
            ("1Ki", 1024.0),
            ("5e3", 5000.0),
            ("5E-3", 0.005),
            ("1e+2", 100.0),
            ("1E", 1e18),
            ("250u", 0.00025),
            ("007", 7.0),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "m",
            ".",
            "-",
            "1 ",
            " 1",
            "1.5.5",
            "1x",
            "1e",
            "1Kb",
            "1ki",
            "abc",
            "1e999999999999999999999",
        ] {
            assert!(
                matches!(parse(bad), Err(QuantityError::Syntax { .. })),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
        assert!(matches!(
            parse("1e400"),
            Err(QuantityError::NotFinite { .. })
        ));
        let e = parse("lots").unwrap_err().to_string();
        assert!(e.contains("\"lots\"") && e.contains("300m"), "{e}");
    }

    #[test]
    fn rejects_non_finite_floats() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = format_f64(v).unwrap_err();
            assert!(matches!(err, QuantityError::NotFinite { .. }));
        }
        assert_eq!(
            format_f64(f64::NEG_INFINITY).unwrap_err().to_string(),
            "cannot format -inf as a Kubernetes quantity: only finite numbers are quantities"
        );
    }

    proptest! {
        #[test]
        fn format_int_reads_back_exactly(v in any::<i64>()) {
            let q = format_int(v);
            assert_canonical(&q);
            prop_assert_eq!(read_i128(&q), i128::from(v), "{}", q);
        }

        #[test]
        fn format_int_reads_back_exactly_for_round_numbers(m in -9999i64..9999, e in 0u32..15) {
            let v = m * 10i64.pow(e);
            let q = format_int(v);
            assert_canonical(&q);
            prop_assert_eq!(read_i128(&q), i128::from(v), "{}", q);
        }

        #[test]
        fn format_f64_rounds_magnitude_up_by_less_than_a_nano(v in any::<f64>()) {
            match format_f64(v) {
                Err(_) => prop_assert!(!v.is_finite()),
                Ok(q) => {
                    assert_canonical(&q);
                    let back = read_f64(&q);
                    // apimachinery rounds sub-nano digits away from zero, so the magnitude
                    // never shrinks: >= v for positive values, <= v for negative ones.
                    prop_assert!(back.abs() >= v.abs(), "{} read back as {} < {}", q, back, v);
                    prop_assert!(back == 0.0 || back.signum() == v.signum(), "{} for {}", q, v);
                    prop_assert!((back - v).abs() <= 1e-9 * v.abs().max(1.0), "{} for {}", q, v);
                }
            }
        }

        #[test]
        fn format_f64_on_decimal_values(m in -1_000_000_000i64..1_000_000_000, e in -15i32..25) {
            let v = m as f64 * 10f64.powi(e);
            let q = format_f64(v).unwrap();
            assert_canonical(&q);
            let back = read_f64(&q);
            prop_assert!(back.abs() >= v.abs() && (back - v).abs() <= 1e-9 * v.abs().max(1.0), "{} for {}", q, v);
        }

        #[test]
        fn what_is_formatted_parses_back(v in any::<i64>(), m in -1_000_000i64..1_000_000, e in -9i32..18) {
            prop_assert_eq!(parse(&format_int(v)).unwrap(), v as f64);
            let x = m as f64 * 10f64.powi(e);
            let back = parse(&format_f64(x).unwrap()).unwrap();
            prop_assert!((back - x).abs() <= 1e-9 * x.abs().max(1.0), "{} {}", x, back);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,24}") {
            let _ = parse(&s);
        }

        #[test]
        fn format_f64_agrees_with_format_int_on_integers(v in -(1i64 << 53)..(1i64 << 53)) {
            prop_assert_eq!(format_f64(v as f64).unwrap(), format_int(v));
        }
    }
}
