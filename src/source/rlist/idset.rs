//! Idsets ([RFC 22](https://flux-framework.readthedocs.io/projects/flux-rfc/en/latest/spec_22.html)):
//! broker ranks and core and gpu ids, as sorted merged ranges.

use std::fmt;

use super::{RlistError, excerpt, idset_error};

/// A set of non-negative integer ids ("0-3,7"), kept as sorted, disjoint, merged inclusive
/// ranges (so "0-4000000000" is cheap).
///
/// Flux uses idsets for broker ranks and for core and gpu ids alike
/// ([RFC 22](https://flux-framework.readthedocs.io/projects/flux-rfc/en/latest/spec_22.html)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdSet {
    /// Invariant: each `lo <= hi`; sorted; and no two ranges overlap or touch.
    ranges: Vec<(u32, u32)>,
}

impl IdSet {
    /// Parses an idset: `""` (empty), `"0"`, `"0-3,7"`, `"1-2,5-7"`, or the bracketed form
    /// `"[0-3]"` that flux also prints. Duplicates and overlaps are merged.
    ///
    /// # Errors
    /// Whitespace, empty elements (`"1,,2"`, trailing commas), signs, non-digits, ids above
    /// `u32::MAX`, unbalanced brackets, and reversed ranges (`"3-1"`).
    pub fn parse(s: &str) -> Result<IdSet, RlistError> {
        let body = match (s.strip_prefix('['), s.ends_with(']')) {
            (Some(inner), true) => inner.strip_suffix(']').unwrap_or(inner),
            (None, false) => s,
            (Some(_), false) => return Err(idset_error(s, "'[' is never closed by ']'")),
            (None, true) => return Err(idset_error(s, "']' without an opening '['")),
        };
        if body.is_empty() {
            return Ok(IdSet::default());
        }
        let mut ranges = Vec::new();
        for element in body.split(',') {
            if element.is_empty() {
                return Err(idset_error(
                    s,
                    "empty element: expected an id or a range like 0-3 between commas",
                ));
            }
            let (lo, hi) = match element.split_once('-') {
                Some((a, b)) => (parse_id(s, a)?, parse_id(s, b)?),
                None => {
                    let id = parse_id(s, element)?;
                    (id, id)
                }
            };
            if hi < lo {
                return Err(idset_error(
                    s,
                    format!("range end {hi} is before start {lo}"),
                ));
            }
            ranges.push((lo, hi));
        }
        Ok(IdSet::from_ranges(ranges))
    }

    /// Normalizes arbitrary `lo <= hi` ranges: sorts and merges overlapping or touching ones.
    pub(crate) fn from_ranges(mut ranges: Vec<(u32, u32)>) -> IdSet {
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if u64::from(lo) <= u64::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        IdSet { ranges: merged }
    }

    /// The ids `lo..=hi` (empty when `hi < lo`).
    pub fn range(lo: u32, hi: u32) -> IdSet {
        let ranges = if lo <= hi { vec![(lo, hi)] } else { Vec::new() };
        IdSet { ranges }
    }

    /// Number of ids in the set (up to 2³², hence `u64`).
    pub fn len(&self) -> u64 {
        self.ranges
            .iter()
            .map(|&(lo, hi)| u64::from(hi) - u64::from(lo) + 1)
            .sum()
    }

    /// How many ranges the set stores: what it costs in memory, whatever its [`IdSet::len`].
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// True when the set holds no id.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// True when `id` is in the set.
    pub fn contains(&self, id: u32) -> bool {
        // The first range whose end is >= id is the only one that can hold it.
        let i = self.ranges.partition_point(|&(_, hi)| hi < id);
        self.ranges.get(i).is_some_and(|&(lo, _)| lo <= id)
    }

    /// The largest id, if any.
    pub fn max(&self) -> Option<u32> {
        self.ranges.last().map(|&(_, hi)| hi)
    }

    /// The ids in any of `sets`, normalized once (a union per set would be quadratic).
    pub fn union_all<'a>(sets: impl IntoIterator<Item = &'a IdSet>) -> IdSet {
        IdSet::from_ranges(
            sets.into_iter()
                .flat_map(|s| s.ranges.iter().copied())
                .collect(),
        )
    }

    /// The ids in either set.
    pub fn union(&self, o: &IdSet) -> IdSet {
        let mut ranges = Vec::with_capacity(self.ranges.len() + o.ranges.len());
        ranges.extend_from_slice(&self.ranges);
        ranges.extend_from_slice(&o.ranges);
        IdSet::from_ranges(ranges)
    }

    /// The ids in `self` but not in `o`.
    pub fn difference(&self, o: &IdSet) -> IdSet {
        let mut out = Vec::new();
        // `j` is the first range of `o` that can still overlap the current range of `self`.
        let mut j = 0;
        for &(lo, hi) in &self.ranges {
            let hi = u64::from(hi);
            let mut cur = u64::from(lo);
            while o
                .ranges
                .get(j)
                .is_some_and(|&(_, ohi)| u64::from(ohi) < cur)
            {
                j += 1;
            }
            let mut k = j;
            while cur <= hi {
                match o.ranges.get(k) {
                    Some(&(olo, ohi)) if u64::from(olo) <= hi => {
                        if u64::from(olo) > cur {
                            out.push((cur, u64::from(olo) - 1));
                        }
                        cur = u64::from(ohi) + 1;
                        k += 1;
                    }
                    _ => {
                        out.push((cur, hi));
                        break;
                    }
                }
            }
        }
        // Every bound pushed above lies within a range of `self`, so it fits in u32.
        IdSet {
            ranges: out
                .into_iter()
                .map(|(lo, hi)| (lo as u32, hi as u32))
                .collect(),
        }
    }

    /// The ids in both sets.
    pub fn intersection(&self, o: &IdSet) -> IdSet {
        let (a, b) = (&self.ranges, &o.ranges);
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while let (Some(&(alo, ahi)), Some(&(blo, bhi))) = (a.get(i), b.get(j)) {
            let (lo, hi) = (alo.max(blo), ahi.min(bhi));
            if lo <= hi {
                out.push((lo, hi));
            }
            if ahi < bhi {
                i += 1;
            } else {
                j += 1;
            }
        }
        // Pieces of two normalized sets never touch, so `out` is already normalized.
        IdSet { ranges: out }
    }

    /// True when every id of `self` is also in `o`.
    pub fn is_subset(&self, o: &IdSet) -> bool {
        self.ranges.iter().all(|&(lo, hi)| {
            let i = o.ranges.partition_point(|&(_, ohi)| ohi < lo);
            o.ranges
                .get(i)
                .is_some_and(|&(olo, ohi)| olo <= lo && hi <= ohi)
        })
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|&(lo, hi)| lo..=hi)
    }
}

impl FromIterator<u32> for IdSet {
    fn from_iter<T: IntoIterator<Item = u32>>(iter: T) -> Self {
        IdSet::from_ranges(iter.into_iter().map(|id| (id, id)).collect())
    }
}

/// Parses one id of an idset: ASCII digits only (no sign, no spaces), at most `u32::MAX`.
fn parse_id(input: &str, text: &str) -> Result<u32, RlistError> {
    if text.is_empty() {
        return Err(idset_error(input, "expected an id on each side of '-'"));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(idset_error(
            input,
            format!("{:?} is not an id: expected decimal digits", excerpt(text)),
        ));
    }
    text.parse::<u32>().map_err(|_| {
        idset_error(
            input,
            format!("id {} is larger than {}", excerpt(text), u32::MAX),
        )
    })
}

impl fmt::Display for IdSet {
    /// Canonical form, as flux prints it without brackets: `0-3,7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn ids(s: &str) -> IdSet {
        IdSet::parse(s).unwrap()
    }

    #[test]
    fn parses_idset_forms() {
        assert!(ids("").is_empty());
        assert!(ids("[]").is_empty());
        assert_eq!(ids("0").iter().collect::<Vec<_>>(), [0]);
        assert_eq!(ids("0-3,7").iter().collect::<Vec<_>>(), [0, 1, 2, 3, 7]);
        assert_eq!(ids("1-2,5-7").len(), 5);
        assert_eq!(ids("[0-3]"), ids("0-3"));
        assert_eq!(ids("[0-3,7]").to_string(), "0-3,7");
        assert_eq!(ids("4294967295").max(), Some(u32::MAX));
        assert_eq!(ids("0-4294967295").len(), 1 << 32);
        assert_eq!(ids("007").to_string(), "7");
    }

    #[test]
    fn merges_duplicates_overlaps_and_touching_ranges() {
        assert_eq!(ids("3,1,2,2").to_string(), "1-3");
        assert_eq!(ids("0-5,3-8,9,11").to_string(), "0-9,11");
        assert_eq!(ids("5-5").to_string(), "5");
        assert_eq!(
            ids("4294967294,4294967295").to_string(),
            "4294967294-4294967295"
        );
    }

    #[test]
    fn rejects_malformed_idsets_with_reasons() {
        let err = IdSet::parse("3-1").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid idset "3-1": range end 1 is before start 3"#
        );
        for bad in [
            " 1",
            "1 ",
            "1, 2",
            "1,,2",
            "1,",
            ",1",
            "-1",
            "1-",
            "1-2-3",
            "+1",
            "a",
            "1.5",
            "[1",
            "1]",
            "[[1]]",
            "4294967296",
            "99999999999999999999",
            "０",
        ] {
            assert!(
                matches!(IdSet::parse(bad), Err(RlistError::IdSet { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn error_messages_quote_a_bounded_excerpt() {
        let long = format!("{}x", "1,".repeat(10_000));
        let msg = IdSet::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 300, "{msg}");
    }

    #[test]
    fn idset_queries_and_operations() {
        let a = ids("0-9,20-29");
        let b = ids("5-24");
        assert!(a.contains(0) && a.contains(29) && !a.contains(10) && !a.contains(30));
        assert_eq!(a.max(), Some(29));
        assert_eq!(IdSet::default().max(), None);
        assert_eq!(a.union(&b).to_string(), "0-29");
        assert_eq!(a.difference(&b).to_string(), "0-4,25-29");
        assert_eq!(b.difference(&a).to_string(), "10-19");
        assert_eq!(a.intersection(&b).to_string(), "5-9,20-24");
        assert!(ids("5-7").is_subset(&b) && !a.is_subset(&b) && IdSet::default().is_subset(&a));
        let huge = ids("0-4294967295");
        assert_eq!(
            huge.difference(&ids("0,4294967295")).to_string(),
            "1-4294967294"
        );
        assert!(huge.difference(&huge).is_empty());
        assert_eq!(IdSet::range(3, 7).to_string(), "3-7");
        assert!(IdSet::range(7, 3).is_empty());
    }

    fn arb_idset() -> impl Strategy<Value = IdSet> {
        prop::collection::vec((any::<u32>(), 0u32..1000), 0..8).prop_map(|v| {
            IdSet::from_ranges(
                v.into_iter()
                    .map(|(lo, n)| (lo, lo.saturating_add(n)))
                    .collect(),
            )
        })
    }

    fn small_ids() -> impl Strategy<Value = BTreeSet<u32>> {
        prop::collection::btree_set(0u32..64, 0..40)
    }

    proptest! {
        #[test]
        fn idset_parse_never_panics(s in any::<String>()) {
            let _ = IdSet::parse(&s);
        }

        #[test]
        fn idset_parse_never_panics_on_idset_like_text(s in "[0-9,\\-\\[\\] ]{0,40}") {
            if let Ok(set) = IdSet::parse(&s) {
                prop_assert_eq!(IdSet::parse(&set.to_string()), Ok(set));
            }
        }

        #[test]
        fn idset_display_round_trips(set in arb_idset()) {
            prop_assert_eq!(IdSet::parse(&set.to_string()), Ok(set.clone()));
            prop_assert_eq!(IdSet::parse(&format!("[{set}]")), Ok(set));
        }

        #[test]
        fn idset_operations_agree_with_btreeset(a in small_ids(), b in small_ids()) {
            let (sa, sb): (IdSet, IdSet) = (a.iter().copied().collect(), b.iter().copied().collect());
            prop_assert_eq!(sa.len(), a.len() as u64);
            prop_assert_eq!(sa.iter().collect::<Vec<_>>(), a.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(sa.union(&sb).iter().collect::<BTreeSet<_>>(), a.union(&b).copied().collect::<BTreeSet<_>>());
            prop_assert_eq!(sa.difference(&sb).iter().collect::<BTreeSet<_>>(), a.difference(&b).copied().collect::<BTreeSet<_>>());
            prop_assert_eq!(sa.intersection(&sb).iter().collect::<BTreeSet<_>>(), a.intersection(&b).copied().collect::<BTreeSet<_>>());
            prop_assert_eq!(sa.is_subset(&sb), a.is_subset(&b));
            prop_assert_eq!(sa.max(), a.last().copied());
            for id in 0..70 {
                prop_assert_eq!(sa.contains(id), a.contains(&id));
            }
            // Results stay normalized, so equal sets compare equal.
            let via_text = IdSet::parse(&sa.difference(&sb).to_string()).unwrap();
            prop_assert_eq!(sa.difference(&sb), via_text);
        }
    }
}
