//! Counting and expanding the hosts of a hostlist
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

/// The hosts of a hostlist, in order
/// ([RFC 29](https://flux-framework.readthedocs.io/projects/flux-rfc/en/latest/spec_29.html)):
/// `"node[0-2,7]"` is `node0 node1 node2 node7`, `"n[08-10]"` keeps the zero padding of its
/// lower bound (`n08 n09 n10`), `"a[1-2]b[3-4]"` is `a1b3 a1b4 a2b3 a2b4`, and repeated names
/// stay repeated. At most `limit` hosts: a hostile hostlist cannot make it allocate more.
///
/// # Errors
/// What [`hostlist_count`] refuses, and more than `limit` hosts.
pub fn expand(s: &str, limit: u64) -> Result<Vec<String>, RlistError> {
    let n = hostlist_count(s)?;
    if n > limit {
        return Err(hostlist_error(
            s,
            format!("{n} hosts, more than the {limit} a resource set may have"),
        ));
    }
    let mut hosts = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    if s.is_empty() {
        return Ok(hosts);
    }
    // hostlist_count has checked the syntax: brackets balance and hold valid ranges.
    let mut depth_start = None;
    let mut host_start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth_start = Some(i),
            ']' => depth_start = None,
            ',' if depth_start.is_none() => {
                expand_host(&s[host_start..i], &mut hosts);
                host_start = i + 1;
            }
            _ => {}
        }
    }
    expand_host(&s[host_start..], &mut hosts);
    Ok(hosts)
}

/// Appends the hosts of one host pattern (no top-level comma): literal text and bracketed
/// range lists, the cartesian product with the leftmost range varying slowest.
fn expand_host(pattern: &str, out: &mut Vec<String>) {
    let mut prefixes = vec![String::new()];
    let mut rest = pattern;
    while !rest.is_empty() {
        let (literal, after) = match rest.find('[') {
            Some(open) => (&rest[..open], Some(&rest[open + 1..])),
            None => (rest, None),
        };
        for p in &mut prefixes {
            p.push_str(literal);
        }
        let Some(after) = after else { break };
        let close = after.find(']').unwrap_or(after.len());
        let numbers = range_numbers(&after[..close]);
        prefixes = prefixes
            .iter()
            .flat_map(|p| numbers.iter().map(move |n| format!("{p}{n}")))
            .collect();
        rest = after.get(close + 1..).unwrap_or("");
    }
    out.extend(prefixes);
}

/// The numbers of a bracketed range list, as text: `0-2,7` → 0 1 2 7; `08-10` → 08 09 10 (the
/// width of a zero-padded lower bound).
fn range_numbers(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in body.split(',') {
        match element.split_once('-') {
            Some((a, b)) => {
                let width = if a.len() > 1 && a.starts_with('0') {
                    a.len()
                } else {
                    0
                };
                let (lo, hi) = (a.parse::<u64>().unwrap_or(0), b.parse::<u64>().unwrap_or(0));
                out.extend((lo..=hi).map(|n| format!("{n:0width$}")));
            }
            None => out.push(element.to_owned()),
        }
    }
    out
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

    #[test]
    fn expands_hostlists_in_order() {
        let e = |s: &str| expand(s, 1000).unwrap();
        assert_eq!(e(""), Vec::<String>::new());
        assert_eq!(e("foo"), ["foo"]);
        assert_eq!(e("vm,vm"), ["vm", "vm"]);
        assert_eq!(e("node[0-2,7]"), ["node0", "node1", "node2", "node7"]);
        assert_eq!(e("n[08-10]"), ["n08", "n09", "n10"]);
        assert_eq!(e("n[8-10]"), ["n8", "n9", "n10"]);
        assert_eq!(e("a[1-2]b[3-4]"), ["a1b3", "a1b4", "a2b3", "a2b4"]);
        assert_eq!(
            e("flux-sample-[0-1],login"),
            ["flux-sample-0", "flux-sample-1", "login"]
        );
        assert_eq!(e("x[1]-ib"), ["x1-ib"]);
        assert!(matches!(
            expand("n[0-9]", 5),
            Err(RlistError::Hostlist { .. })
        ));
        assert!(matches!(
            expand("a,,b", 5),
            Err(RlistError::Hostlist { .. })
        ));
    }

    proptest! {
        #[test]
        fn expansion_has_as_many_hosts_as_the_count(s in "[a-c]{0,2}(\\[[0-9]{1,2}(-[0-9]{1,2})?(,[0-9])?\\])?[a-c]{0,2}(,[a-c]{1,3})?") {
            if let Ok(n) = hostlist_count(&s) {
                let hosts = expand(&s, 1 << 20).unwrap();
                prop_assert_eq!(hosts.len() as u64, n);
                prop_assert!(hosts.iter().all(|h| !h.is_empty() && !h.contains(',')));
            }
        }

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
