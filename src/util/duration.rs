//! Durations as people write them, and as every flag, selector (`window=5m`), query parameter
//! and message of this program reads and prints them: `500ms`, `5s`, `2m`, `1h`, or seconds.

use std::time::Duration;

/// Parses `5s`, `500ms`, `2m`, `1h`, or a plain number of seconds (`1.5`).
///
/// # Errors
/// Text saying what forms are accepted.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 5s, 500ms, 2m or 1.5"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(n * scale).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// `1.5s` is `1500ms`, `2s` is `2s`: a duration in the form [`parse`] reads back.
pub fn display(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_people_write() {
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "5x", "-1s", "1e400", "abc"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_what_parse_reads_back() {
        for d in [
            Duration::from_secs(2),
            Duration::from_millis(1500),
            Duration::ZERO,
        ] {
            assert_eq!(parse(&display(d)), Ok(d), "{}", display(d));
        }
        assert_eq!(display(Duration::from_millis(250)), "250ms");
    }
}
