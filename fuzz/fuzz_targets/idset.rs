//! `IdSet::parse` and `hostlist_count` on arbitrary text (idsets and hostlists come from broker
//! answers: rank keys of `drain`, `rank`/`core`/`gpu` of `R_lite`, `nodelist`).
//!
//! Invariants: a parsed idset's canonical text parses back to the same set, also bracketed, and
//! is a fixed point; `hostlist_count` never panics and counts at least one host per host
//! element. When the input holds a `|`, its two sides are parsed as idsets and the set algebra
//! (union, intersection, difference, subset) is checked against itself.
#![no_main]

use flux_metrics::source::rlist::{IdSet, hostlist_count};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(set) = IdSet::parse(s) {
        check_set(s, &set);
    }

    match hostlist_count(s) {
        Ok(n) if s.is_empty() => assert_eq!(n, 0),
        Ok(n) => {
            // Every comma outside brackets separates two hosts, each counting at least once.
            let mut depth = 0u32;
            let mut hosts = 1u64;
            for c in s.chars() {
                match c {
                    '[' => depth += 1,
                    ']' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => hosts += 1,
                    _ => {}
                }
            }
            assert!(n >= hosts, "hostlist {s:?} counted {n} < {hosts} hosts");
            if !s.contains('[') {
                assert_eq!(n, hosts, "plain hostlist {s:?}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    if let Some((a, b)) = s.split_once('|') {
        if let (Ok(a), Ok(b)) = (IdSet::parse(a), IdSet::parse(b)) {
            check_algebra(&a, &b);
        }
    }
});

fn check_set(s: &str, set: &IdSet) {
    let text = set.to_string();
    let again = IdSet::parse(&text);
    assert_eq!(again.as_ref(), Ok(set), "{s:?} → {text:?} does not round-trip");
    assert_eq!(again.unwrap().to_string(), text);
    assert_eq!(IdSet::parse(&format!("[{text}]")).as_ref(), Ok(set));
    assert_eq!(set.is_empty(), set.len() == 0);
    assert_eq!(set.is_empty(), text.is_empty());
    if let Some(max) = set.max() {
        assert!(set.contains(max));
        if max < u32::MAX {
            assert!(!set.contains(max + 1));
        }
    }
    // Small sets: iteration agrees with len and contains.
    if set.len() <= 4096 {
        let ids: Vec<u32> = set.iter().collect();
        assert_eq!(ids.len() as u64, set.len());
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|&i| set.contains(i)));
        assert_eq!(&ids.iter().copied().collect::<IdSet>(), set);
    }
    assert!(set.is_subset(set));
    assert!(set.difference(set).is_empty());
    assert_eq!(&set.union(set), set);
    assert_eq!(&set.intersection(set), set);
}

fn check_algebra(a: &IdSet, b: &IdSet) {
    let u = a.union(b);
    let i = a.intersection(b);
    let d = a.difference(b);
    assert_eq!(u, b.union(a), "union is not commutative");
    assert_eq!(i, b.intersection(a), "intersection is not commutative");
    assert!(a.is_subset(&u) && b.is_subset(&u));
    assert!(i.is_subset(a) && i.is_subset(b));
    assert!(d.is_subset(a), "{a} - {b} = {d} is not within {a}");
    assert!(d.intersection(b).is_empty(), "{a} - {b} = {d} meets {b}");
    assert_eq!(d.union(&i), *a, "({a} - {b}) ∪ ({a} ∩ {b}) != {a}");
    assert_eq!(u.len(), a.len() + b.len() - i.len());
    assert_eq!(d.len(), a.len() - i.len());
    assert_eq!(a.is_subset(b), d.is_empty());
    assert_eq!(a.is_subset(b), i == *a);
    // Results are normalized: their text round-trips like a parsed set.
    for set in [&u, &i, &d] {
        let text = set.to_string();
        assert_eq!(IdSet::parse(&text).as_ref(), Ok(set), "{text:?} not canonical");
    }
    if let Some(max) = d.max() {
        assert!(a.contains(max) && !b.contains(max));
    }
}
