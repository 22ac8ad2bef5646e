//! Counting the hosts of a hostlist
//! ([RFC 29](https://flux-framework.readthedocs.io/projects/flux-rfc/en/latest/spec_29.html)).

use super::{RlistError, excerpt, hostlist_error};

/// Number of hosts in a hostlist
/// ([RFC 29](https://flux-framework.readthedocs.io/projects/flux-rfc/en/latest/spec_29.html)):
/// `"node[0-3,7]"` is 5, `"vm,vm,vm"` is 3, `"a[1-2]b[3-4]"` is 4 (the cartesian product),
/// `"foo"` is 1 and `""` is 0. Comma-separated hosts are summed; repeated names count
/// each time, as flux's own `hostlist_count` does.
///
/// # Errors
/// Empty hosts (`"a,,b"`, trailing commas), whitespace, nested or unbalanced brackets,
/// empty or malformed ranges, reversed ranges, and counts that overflow `u64`.
pub fn hostlist_count(s: &str) -> Result<u64, RlistError> {
    if s.is_empty() {
        return Ok(0);
    }
    let mut total: u64 = 0;
    let mut host_hosts: u64 = 1;
    let mut host_len = 0usize;
    let mut bracket_start: Option<usize> = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() || c.is_control() {
            return Err(hostlist_error(
                s,
                format!("unexpected {c:?} at byte {i}: hostnames have no whitespace"),
            ));
        }
        match (c, bracket_start) {
            ('[', None) => bracket_start = Some(i),
            ('[', Some(_)) => {
                return Err(hostlist_error(s, format!("nested '[' at byte {i}")));
            }
            (']', None) => {
                return Err(hostlist_error(
                    s,
                    format!("']' at byte {i} without an opening '['"),
                ));
            }
            (']', Some(start)) => {
                let n = range_list_count(s, &s[start + 1..i])?;
                host_hosts = host_hosts
                    .checked_mul(n)
                    .ok_or_else(|| hostlist_error(s, "the host count does not fit in 64 bits"))?;
                bracket_start = None;
                host_len += 1;
            }
            (',', None) => {
                if host_len == 0 {
                    return Err(hostlist_error(
                        s,
                        format!("empty host before the ',' at byte {i}"),
                    ));
                }
                total = total
                    .checked_add(host_hosts)
                    .ok_or_else(|| hostlist_error(s, "the host count does not fit in 64 bits"))?;
                host_hosts = 1;
                host_len = 0;
            }
            (_, Some(_)) => {}
            (_, None) => host_len += 1,
        }
    }
    if bracket_start.is_some() {
        return Err(hostlist_error(s, "'[' is never closed by ']'"));
    }
    if host_len == 0 {
        return Err(hostlist_error(s, "empty host after the last ','"));
    }
    total
        .checked_add(host_hosts)
        .ok_or_else(|| hostlist_error(s, "the host count does not fit in 64 bits"))
}

/// Counts the numbers of a bracketed hostlist range list such as `0-3,7` or `00-15`.
///
/// Unlike an idset, duplicates are not merged and zero padding is allowed.
fn range_list_count(input: &str, body: &str) -> Result<u64, RlistError> {
    if body.is_empty() {
        return Err(hostlist_error(
            input,
            "empty '[]': expected a range like [0-3]",
        ));
    }
    let number = |t: &str| -> Result<u64, RlistError> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(hostlist_error(
                input,
                format!(
                    "{:?} in brackets is not a number: expected ranges like [0-3,7]",
                    excerpt(t)
                ),
            ));
        }
        t.parse::<u64>()
            .map_err(|_| hostlist_error(input, format!("number {} is too large", excerpt(t))))
    };
    let mut count: u64 = 0;
    for element in body.split(',') {
        let n = match element.split_once('-') {
            Some((a, b)) => {
                let (lo, hi) = (number(a)?, number(b)?);
                if hi < lo {
                    return Err(hostlist_error(
                        input,
                        format!("range end {hi} is before start {lo}"),
                    ));
                }
                // Overflows only for the whole range 0-18446744073709551615.
                (hi - lo).checked_add(1)
            }
            None => number(element).map(|_| Some(1))?,
        };
        count = n
            .and_then(|n| count.checked_add(n))
            .ok_or_else(|| hostlist_error(input, "the host count does not fit in 64 bits"))?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn counts_hostlists() {
        assert_eq!(hostlist_count("").unwrap(), 0);
        assert_eq!(hostlist_count("foo").unwrap(), 1);
        assert_eq!(hostlist_count("vm,vm,vm").unwrap(), 3);
        assert_eq!(hostlist_count("node[0-3,7]").unwrap(), 5);
        assert_eq!(hostlist_count("flux-sample-[0-7]").unwrap(), 8);
        assert_eq!(hostlist_count("a[1-2]b[3-4]").unwrap(), 4);
        assert_eq!(hostlist_count("node[00-15]-ib,login").unwrap(), 17);
        assert_eq!(hostlist_count("n[1,1]").unwrap(), 2);
    }

    #[test]
    fn rejects_malformed_hostlists() {
        for bad in [
            "a,,b",
            "a,",
            ",a",
            "a b",
            "a[",
            "a]",
            "a[[1]]",
            "a[]",
            "a[1-]",
            "a[x]",
            "a[3-1]",
            "a[1,,2]",
            "a[99999999999999999999]",
            "a[0-18446744073709551615]",
            "a[0-4294967295]b[0-4294967295]c[0-4294967295]",
        ] {
            assert!(
                matches!(hostlist_count(bad), Err(RlistError::Hostlist { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    proptest! {
        #[test]
        fn hostlist_count_never_panics(s in any::<String>()) {
            let _ = hostlist_count(&s);
        }

        #[test]
        fn hostlist_count_never_panics_on_hostlist_like_text(s in "[a-z0-9,\\-\\[\\]]{0,30}") {
            let _ = hostlist_count(&s);
        }
    }
}
