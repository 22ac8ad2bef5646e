//! Flux resource-set arithmetic: idsets (RFC 22), hostlist counting (RFC 29) and Rv1
//! resource sets (RFC 20), with the up/free/allocated set operations `flux resource list` uses.
//! Pure code, no I/O: every parser here faces broker answers and returns errors as values,
//! never panics. It knows nothing about metrics; `snapshot` decides what to count.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// Most broker ranks one resource set may name, summed over its `R_lite` entries.
///
/// Flux instances are far smaller; the cap bounds the memory a hostile or corrupt
/// answer can make us allocate, since every rank gets its own [`Node`].
pub const MAX_RANKS: u64 = 1 << 17;

/// Most id ranges one resource set may store, summed over all ranks' core and gpu idsets.
///
/// A single `R_lite` entry copies its children to every rank it names, so a short
/// answer could otherwise expand to ranks × ranges entries.
pub const MAX_RANGES: u64 = 1 << 22;

/// How much of a bad input an error message quotes, so that errors stay small.
const EXCERPT_CHARS: usize = 64;

/// Why an idset, a hostlist or an Rv1 resource set was rejected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RlistError {
    /// An idset string (RFC 22) was malformed.
    #[error("invalid idset {input:?}: {reason}")]
    IdSet {
        /// The offending text (cut to its first 64 characters).
        input: String,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// A hostlist string (RFC 29) was malformed.
    #[error("invalid hostlist {input:?}: {reason}")]
    Hostlist {
        /// The offending text (cut to its first 64 characters).
        input: String,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// An Rv1 resource set (RFC 20) had the wrong shape.
    #[error("invalid Rv1 resource set at {at}: {reason}")]
    Rv1 {
        /// JSON path of the offending member, e.g. `execution.R_lite[0].rank`.
        at: String,
        /// What was wrong and what was expected.
        reason: String,
    },
}

fn excerpt(s: &str) -> String {
    crate::util::text::excerpt(s, EXCERPT_CHARS)
}

fn idset_error(input: &str, reason: impl Into<String>) -> RlistError {
    RlistError::IdSet {
        input: excerpt(input),
        reason: reason.into(),
    }
}

fn hostlist_error(input: &str, reason: impl Into<String>) -> RlistError {
    RlistError::Hostlist {
        input: excerpt(input),
        reason: reason.into(),
    }
}

fn rv1_error(at: impl Into<String>, reason: impl Into<String>) -> RlistError {
    RlistError::Rv1 {
        at: at.into(),
        reason: reason.into(),
    }
}

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
    fn from_ranges(mut ranges: Vec<(u32, u32)>) -> IdSet {
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

    /// Number of ids in the set (up to 2³², hence `u64`).
    pub fn len(&self) -> u64 {
        self.ranges
            .iter()
            .map(|&(lo, hi)| u64::from(hi) - u64::from(lo) + 1)
            .sum()
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

/// The resources of one broker rank.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Core ids on this rank.
    pub cores: IdSet,
    /// GPU ids on this rank.
    pub gpus: IdSet,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.cores.is_empty() && self.gpus.is_empty()
    }
}

/// An Rv1 resource set
/// ([RFC 20](https://flux-framework.readthedocs.io/projects/flux-rfc/en/latest/spec_20.html)),
/// by rank. Only cores and gpus are kept; hostnames are not, since in test instances every
/// rank has the same hostname and nodes are counted by rank.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceSet {
    nodes: BTreeMap<u32, Node>,
}

/// Names a JSON value's type for error messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads an optional idset-valued child (`core`, `gpu`) of an `R_lite` entry.
fn child_idset(children: &Map<String, Value>, kind: &str, at: &str) -> Result<IdSet, RlistError> {
    match children.get(kind) {
        None => Ok(IdSet::default()),
        Some(Value::String(s)) => {
            IdSet::parse(s).map_err(|e| rv1_error(format!("{at}.{kind}"), e.to_string()))
        }
        Some(other) => Err(rv1_error(
            format!("{at}.{kind}"),
            format!("expected an idset string, found {}", json_kind(other)),
        )),
    }
}

impl ResourceSet {
    /// Parses an Rv1 object
    /// `{"version":1,"execution":{"R_lite":[{"rank":"0-3","children":{"core":"0-1","gpu":"0"}}],"nodelist":[...],...}}`.
    ///
    /// JSON `null`, an absent or null `execution`, and an absent or empty `R_lite` are the
    /// empty set (flux answers `"allocated": null` sometimes). Child kinds other than `core`
    /// and `gpu` are ignored; an entry without `children`, or whose `children` lack `core`,
    /// has no cores. A rank named by two entries gets the union of both.
    ///
    /// # Errors
    /// `version` other than 1, members of the wrong JSON type, malformed idsets, more than
    /// [`MAX_RANKS`] ranks or [`MAX_RANGES`] id ranges in total.
    pub fn from_json(v: &Value) -> Result<ResourceSet, RlistError> {
        let obj = match v {
            Value::Null => return Ok(ResourceSet::default()),
            Value::Object(o) => o,
            other => {
                return Err(rv1_error(
                    "the top level",
                    format!("expected an object or null, found {}", json_kind(other)),
                ));
            }
        };
        match obj.get("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
            Some(Value::Number(n)) => {
                return Err(rv1_error(
                    "version",
                    format!("unsupported version {n}, expected 1"),
                ));
            }
            Some(other) => {
                return Err(rv1_error(
                    "version",
                    format!("expected the number 1, found {}", json_kind(other)),
                ));
            }
            None => return Err(rv1_error("version", "missing, expected 1")),
        }
        let execution = match obj.get("execution") {
            None | Some(Value::Null) => return Ok(ResourceSet::default()),
            Some(Value::Object(e)) => e,
            Some(other) => {
                return Err(rv1_error(
                    "execution",
                    format!("expected an object, found {}", json_kind(other)),
                ));
            }
        };
        let r_lite = match execution.get("R_lite") {
            None | Some(Value::Null) => return Ok(ResourceSet::default()),
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(rv1_error(
                    "execution.R_lite",
                    format!("expected an array, found {}", json_kind(other)),
                ));
            }
        };

        let mut nodes: BTreeMap<u32, Node> = BTreeMap::new();
        let (mut total_ranks, mut total_ranges) = (0u64, 0u64);
        for (i, entry) in r_lite.iter().enumerate() {
            let at = format!("execution.R_lite[{i}]");
            let Value::Object(entry) = entry else {
                return Err(rv1_error(
                    at,
                    format!("expected an object, found {}", json_kind(entry)),
                ));
            };
            let ranks = match entry.get("rank") {
                Some(Value::String(s)) => {
                    IdSet::parse(s).map_err(|e| rv1_error(format!("{at}.rank"), e.to_string()))?
                }
                Some(other) => {
                    return Err(rv1_error(
                        format!("{at}.rank"),
                        format!("expected an idset string, found {}", json_kind(other)),
                    ));
                }
                None => return Err(rv1_error(format!("{at}.rank"), "missing")),
            };
            total_ranks = total_ranks.saturating_add(ranks.len());
            if total_ranks > MAX_RANKS {
                return Err(rv1_error(
                    format!("{at}.rank"),
                    format!("more than {MAX_RANKS} ranks in one resource set"),
                ));
            }
            let node = match entry.get("children") {
                None | Some(Value::Null) => Node::default(),
                Some(Value::Object(children)) => {
                    let at = format!("{at}.children");
                    Node {
                        cores: child_idset(children, "core", &at)?,
                        gpus: child_idset(children, "gpu", &at)?,
                    }
                }
                Some(other) => {
                    return Err(rv1_error(
                        format!("{at}.children"),
                        format!("expected an object, found {}", json_kind(other)),
                    ));
                }
            };
            let per_rank = (node.cores.ranges.len() + node.gpus.ranges.len()) as u64;
            total_ranges = total_ranges.saturating_add(ranks.len().saturating_mul(per_rank));
            if total_ranges > MAX_RANGES {
                return Err(rv1_error(
                    at,
                    format!("more than {MAX_RANGES} core and gpu id ranges in one resource set"),
                ));
            }
            for rank in ranks.iter() {
                match nodes.get_mut(&rank) {
                    Some(existing) => {
                        existing.cores = existing.cores.union(&node.cores);
                        existing.gpus = existing.gpus.union(&node.gpus);
                    }
                    None => {
                        nodes.insert(rank, node.clone());
                    }
                }
            }
        }
        Ok(ResourceSet { nodes })
    }

    /// The ranks in the set.
    pub fn ranks(&self) -> IdSet {
        self.nodes.keys().copied().collect()
    }

    /// The resources of `rank`, if the set holds it.
    pub fn node(&self, rank: u32) -> Option<&Node> {
        self.nodes.get(&rank)
    }

    /// Every rank with its resources, in ascending rank order.
    pub fn nodes(&self) -> impl Iterator<Item = (u32, &Node)> {
        self.nodes.iter().map(|(&rank, node)| (rank, node))
    }

    /// Number of ranks (nodes) in the set.
    pub fn nnodes(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// Number of cores over all ranks.
    pub fn ncores(&self) -> u64 {
        self.nodes.values().map(|n| n.cores.len()).sum()
    }

    /// Number of gpus over all ranks.
    pub fn ngpus(&self) -> u64 {
        self.nodes.values().map(|n| n.gpus.len()).sum()
    }

    /// `self` − `other`, per rank and per core/gpu id (up = all − down, free = up − allocated).
    /// A rank that `other` leaves with no cores and no gpus is dropped; ranks `other` does not
    /// hold are kept as they are.
    pub fn difference(&self, other: &ResourceSet) -> ResourceSet {
        let mut nodes = BTreeMap::new();
        for (&rank, node) in &self.nodes {
            match other.nodes.get(&rank) {
                None => {
                    nodes.insert(rank, node.clone());
                }
                Some(o) => {
                    let left = Node {
                        cores: node.cores.difference(&o.cores),
                        gpus: node.gpus.difference(&o.gpus),
                    };
                    if !left.is_empty() {
                        nodes.insert(rank, left);
                    }
                }
            }
        }
        ResourceSet { nodes }
    }

    /// Ranks whose every core and gpu in `self` is also in `other` (with `other` holding the
    /// rank). With `self` = up and `other` = free these are the idle nodes: up and wholly free.
    pub fn ranks_wholly_in(&self, other: &ResourceSet) -> IdSet {
        self.nodes
            .iter()
            .filter(|(rank, node)| {
                other
                    .nodes
                    .get(rank)
                    .is_some_and(|o| node.cores.is_subset(&o.cores) && node.gpus.is_subset(&o.gpus))
            })
            .map(|(&rank, _)| rank)
            .collect()
    }

    /// Largest core count of any one rank (0 if empty).
    pub fn max_cores_per_node(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| n.cores.len())
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use serde_json::json;

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
    }

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

    /// An Rv1 object around `r_lite`, shaped like the broker's answers.
    fn rv1(r_lite: Value) -> Value {
        let mut v = json!({
            "version": 1,
            "execution": {"R_lite": [], "nodelist": ["x"], "starttime": 0.0, "expiration": 0.0},
        });
        v["execution"]["R_lite"] = r_lite;
        v
    }

    #[test]
    fn parses_rv1_and_merges_ranks() {
        let r = ResourceSet::from_json(&rv1(json!([
            {"rank": "0-3", "children": {"core": "0-1", "gpu": "0"}},
            {"rank": "3-4", "children": {"core": "2-3", "memory": "0-7"}},
            {"rank": "5", "children": {"gpu": "0-1"}},
        ])))
        .unwrap();
        assert_eq!(r.ranks().to_string(), "0-5");
        assert_eq!(r.nnodes(), 6);
        assert_eq!(r.ncores(), 4 * 2 + 2 + 2);
        assert_eq!(r.ngpus(), 4 + 2);
        assert_eq!(r.node(3).unwrap().cores.to_string(), "0-3");
        assert_eq!(r.node(5).unwrap().cores, IdSet::default());
        assert_eq!(r.max_cores_per_node(), 4);
        assert_eq!(
            r.nodes().map(|(rank, _)| rank).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn empty_forms_are_the_empty_set() {
        for v in [
            Value::Null,
            json!({"version": 1}),
            json!({"version": 1, "execution": null}),
            json!({"version": 1, "execution": {}}),
            rv1(json!([])),
        ] {
            let r = ResourceSet::from_json(&v).unwrap();
            assert_eq!(r, ResourceSet::default());
            assert_eq!(
                (r.nnodes(), r.ncores(), r.ngpus(), r.max_cores_per_node()),
                (0, 0, 0, 0)
            );
        }
    }

    #[test]
    fn rejects_malformed_rv1() {
        let cases = [
            (json!([]), "the top level"),
            (json!({"execution": {}}), "version"),
            (json!({"version": 2}), "version"),
            (json!({"version": "1"}), "version"),
            (json!({"version": 1, "execution": []}), "execution"),
            (
                json!({"version": 1, "execution": {"R_lite": {}}}),
                "execution.R_lite",
            ),
            (rv1(json!([1])), "execution.R_lite[0]"),
            (rv1(json!([{"children": {}}])), "execution.R_lite[0].rank"),
            (rv1(json!([{"rank": 0}])), "execution.R_lite[0].rank"),
            (rv1(json!([{"rank": "3-1"}])), "execution.R_lite[0].rank"),
            (
                rv1(json!([{"rank": "0", "children": []}])),
                "execution.R_lite[0].children",
            ),
            (
                rv1(json!([{"rank": "0", "children": {"core": 1}}])),
                "execution.R_lite[0].children.core",
            ),
            (
                rv1(json!([{"rank": "0", "children": {"gpu": "x"}}])),
                "execution.R_lite[0].children.gpu",
            ),
            (
                rv1(json!([{"rank": format!("0-{MAX_RANKS}")}])),
                "execution.R_lite[0].rank",
            ),
            (
                rv1(json!([{"rank": format!("0-{}", MAX_RANKS - 1)}, {"rank": "0"}])),
                "execution.R_lite[1].rank",
            ),
        ];
        for (v, want_at) in cases {
            match ResourceSet::from_json(&v) {
                Err(RlistError::Rv1 { at, .. }) => assert_eq!(at, want_at, "{v}"),
                other => panic!("{v} gave {other:?}"),
            }
        }
        let err = ResourceSet::from_json(&rv1(json!([{"rank": "0", "children": {"core": "2-1"}}])))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid Rv1 resource set at execution.R_lite[0].children.core: invalid idset "2-1": range end 1 is before start 2"#
        );
    }

    #[test]
    fn rejects_rv1_that_would_expand_to_too_many_ranges() {
        let cores: Vec<String> = (0..64).map(|i| (i * 2).to_string()).collect();
        let ranks = format!("0-{}", MAX_RANKS - 1);
        let v = rv1(json!([{"rank": ranks, "children": {"core": cores.join(",")}}]));
        assert!(matches!(
            ResourceSet::from_json(&v),
            Err(RlistError::Rv1 { .. })
        ));
        let v = rv1(json!([{"rank": ranks, "children": {"core": "0-3", "gpu": "0-1"}}]));
        assert_eq!(ResourceSet::from_json(&v).unwrap().nnodes(), MAX_RANKS);
    }

    #[test]
    fn difference_drops_emptied_ranks_and_keeps_others() {
        let a = ResourceSet::from_json(&rv1(json!([
            {"rank": "0-2", "children": {"core": "0-1", "gpu": "0"}},
        ])))
        .unwrap();
        let b = ResourceSet::from_json(&rv1(json!([
            {"rank": "0", "children": {"core": "0-1", "gpu": "0"}},
            {"rank": "1", "children": {"core": "0-1"}},
            {"rank": "7", "children": {"core": "0-9"}},
        ])))
        .unwrap();
        let d = a.difference(&b);
        assert_eq!(d.ranks().to_string(), "1-2");
        assert_eq!(d.node(1).unwrap().gpus.to_string(), "0");
        assert!(d.node(1).unwrap().cores.is_empty());
        assert_eq!(d.node(2), a.node(2));
        assert_eq!(a.ranks_wholly_in(&d).to_string(), "2");
        assert_eq!(a.ranks_wholly_in(&a).to_string(), "0-2");
        assert!(a.ranks_wholly_in(&ResourceSet::default()).is_empty());
    }

    /// The table in tests/fixtures/README.md: scenario, then nodes up, free, idle, down,
    /// cores up, free, gpus up, free.
    const FIXTURES: [(&str, [u64; 8]); 6] = [
        ("idle", [4, 4, 4, 0, 8, 8, 0, 0]),
        ("busy", [4, 4, 1, 0, 8, 5, 0, 0]),
        ("drained", [3, 3, 2, 1, 6, 5, 0, 0]),
        ("gpus-queues", [4, 4, 0, 0, 16, 5, 8, 6]),
        ("many-jobs", [2, 0, 0, 0, 4, 0, 0, 0]),
        ("elastic", [4, 2, 1, 4, 16, 6, 0, 0]),
    ];

    fn fixture(scenario: &str, file: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/{scenario}/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn recorded_broker_answers_give_flux_resource_list_counts() {
        for (scenario, table) in FIXTURES {
            let status = fixture(scenario, "resource.sched-status.json");
            let truth = fixture(scenario, "truth.json");
            let all = ResourceSet::from_json(&status["all"]).unwrap();
            let down = ResourceSet::from_json(&status["down"]).unwrap();
            let allocated = ResourceSet::from_json(&status["allocated"]).unwrap();
            let up = all.difference(&down);
            let free = up.difference(&allocated);
            let idle = up.ranks_wholly_in(&free);
            let got = [
                up.nnodes(),
                free.nnodes(),
                idle.len(),
                down.nnodes(),
                up.ncores(),
                free.ncores(),
                up.ngpus(),
                free.ngpus(),
            ];
            assert_eq!(got, table, "{scenario}");

            // truth.json: what `flux resource list` printed at the same moment.
            let res = &truth["resources"];
            for (name, set) in [
                ("all", &all),
                ("down", &down),
                ("allocated", &allocated),
                ("up", &up),
                ("free", &free),
            ] {
                let counts = (set.nnodes(), set.ncores(), set.ngpus());
                let t = &res[name];
                let truth_counts = (
                    t["nnodes"].as_u64().unwrap(),
                    t["ncores"].as_u64().unwrap(),
                    t["ngpus"].as_u64().unwrap(),
                );
                assert_eq!(counts, truth_counts, "{scenario} {name}");
            }
            assert_eq!(
                Some(idle.len()),
                res["idle"]["nnodes"].as_u64(),
                "{scenario}"
            );

            // The nodelist of every set counts as many hosts as the set has ranks.
            for name in ["all", "down", "allocated"] {
                let hosts: u64 = status[name]["execution"]["nodelist"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| hostlist_count(h.as_str().unwrap()).unwrap())
                    .sum();
                let set = ResourceSet::from_json(&status[name]).unwrap();
                assert_eq!(hosts, set.nnodes(), "{scenario} {name}");
            }
        }
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

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            Just(json!(1)),
            "[0-9,\\-\\[\\] ]{0,12}".prop_map(Value::String),
            "(rank|core|gpu|children|version|execution|R_lite)".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    "(rank|core|gpu|children|version|execution|R_lite|x)",
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
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

        #[test]
        fn hostlist_count_never_panics(s in any::<String>()) {
            let _ = hostlist_count(&s);
        }

        #[test]
        fn hostlist_count_never_panics_on_hostlist_like_text(s in "[a-z0-9,\\-\\[\\]]{0,30}") {
            let _ = hostlist_count(&s);
        }

        #[test]
        fn from_json_never_panics(v in arb_json()) {
            let _ = ResourceSet::from_json(&v);
            let _ = ResourceSet::from_json(&json!({"version": 1, "execution": {"R_lite": [v]}}));
        }

        #[test]
        fn difference_and_idle_are_consistent(
            all in prop::collection::vec(("[0-7]{1}", "[0-3](-[4-7])?"), 0..6),
            alloc in prop::collection::vec(("[0-7]{1}", "[0-7]"), 0..6),
        ) {
            let entries = |v: &[(String, String)]| -> Value {
                Value::Array(v.iter().map(|(r, c)| json!({"rank": r, "children": {"core": c}})).collect())
            };
            let up = ResourceSet::from_json(&rv1(entries(&all))).unwrap();
            let allocated = ResourceSet::from_json(&rv1(entries(&alloc))).unwrap();
            let free = up.difference(&allocated);
            prop_assert!(free.ncores() <= up.ncores());
            prop_assert_eq!(up.ncores() - free.ncores(), {
                up.nodes().map(|(rank, n)| allocated.node(rank).map_or(0, |a| n.cores.intersection(&a.cores).len())).sum::<u64>()
            });
            let idle = up.ranks_wholly_in(&free);
            for rank in idle.iter() {
                let touched = allocated.node(rank).is_some_and(|a| !a.cores.intersection(&up.node(rank).unwrap().cores).is_empty());
                prop_assert!(!touched);
            }
            prop_assert!(idle.is_subset(&free.ranks()) && free.ranks().is_subset(&up.ranks()));
        }
    }
}
