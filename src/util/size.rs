//! Byte sizes as people write them (`64MiB`, `512KiB`, `1GiB`, or plain bytes), for flags such as
//! `--custom-metric-max-memory`, and as messages print them.

/// Parses `64MiB`, `512KiB`, `1GiB` (also `M`, `K`, `G`, `MB`...: all powers of 1024), or a plain
/// number of bytes.
///
/// # Errors
/// Text saying what forms are accepted.
pub fn parse(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 64MiB, 512KiB or 1048576"))?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {s:?}: use KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// `64MiB`, `512KiB`, `100B`: the largest unit that divides the size, in the form [`parse`]
/// reads back.
pub fn display(bytes: usize) -> String {
    for (unit, scale) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= scale && bytes % scale == 0 {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_back() {
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("512K"), Ok(512 << 10));
        assert_eq!(parse(" 2 GiB"), Ok(2 << 30));
        assert_eq!(parse("1000"), Ok(1000));
        assert!(parse("1.5MiB").is_err());
        assert!(parse("12 parsecs").is_err());
        assert!(parse("99999999999999999999G").is_err());
        for n in [64 << 20, 512 << 10, 1000, 3 << 30] {
            assert_eq!(parse(&display(n)), Ok(n));
        }
        assert_eq!(display(32 << 20), "32MiB");
    }
}
