//! Rv1 resource sets ([RFC 20](https://flux-framework.readthedocs.io/projects/flux-rfc/en/latest/spec_20.html))
//! by rank, and the set operations `flux resource list` derives up, free and idle with.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{IdSet, RlistError, rv1_error};

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
            let per_rank = (node.cores.range_count() + node.gpus.range_count()) as u64;
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

/// The hostname of each rank of an Rv1 object `v` whose ranks are `ranks`: the hosts of its
/// `execution.nodelist` hostlists, in order, name its ranks in ascending order (RFC 20). No
/// nodelist is no hostnames.
///
/// # Errors
/// A nodelist that is not an array of hostlists, or that names more or fewer hosts than
/// `ranks` has.
pub fn hostnames(v: &Value, ranks: &IdSet) -> Result<BTreeMap<u32, String>, RlistError> {
    let Some(list) = v.get("execution").and_then(|e| e.get("nodelist")) else {
        return Ok(BTreeMap::new());
    };
    let Value::Array(items) = list else {
        return Err(rv1_error(
            "execution.nodelist",
            format!("expected an array, found {}", json_kind(list)),
        ));
    };
    let mut hosts = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::String(h) = item else {
            return Err(rv1_error(
                format!("execution.nodelist[{i}]"),
                format!("expected a hostlist string, found {}", json_kind(item)),
            ));
        };
        let left = MAX_RANKS.saturating_sub(hosts.len() as u64);
        hosts.extend(super::expand(h, left)?);
    }
    if hosts.len() as u64 != ranks.len() {
        return Err(rv1_error(
            "execution.nodelist",
            format!("{} hosts for {} ranks", hosts.len(), ranks.len()),
        ));
    }
    Ok(ranks.iter().zip(hosts).collect())
}

/// The node properties of an Rv1 object `v` (`execution.properties`, RFC 20: property name →
/// idset of the ranks that have it). No properties is an empty map.
///
/// # Errors
/// A `properties` member that is not an object of idset strings, or more than [`MAX_RANKS`]
/// ranks under one property.
pub fn properties(v: &Value) -> Result<BTreeMap<String, IdSet>, RlistError> {
    let Some(props) = v.get("execution").and_then(|e| e.get("properties")) else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(props) = props else {
        return Err(rv1_error(
            "execution.properties",
            format!("expected an object, found {}", json_kind(props)),
        ));
    };
    let mut out = BTreeMap::new();
    for (name, ranks) in props {
        let at = format!("execution.properties.{name}");
        let Value::String(ranks) = ranks else {
            return Err(rv1_error(
                at,
                format!("expected an idset string, found {}", json_kind(ranks)),
            ));
        };
        let ranks = IdSet::parse(ranks).map_err(|e| rv1_error(&at, e.to_string()))?;
        if ranks.len() > MAX_RANKS {
            return Err(rv1_error(at, format!("more than {MAX_RANKS} ranks")));
        }
        out.insert(name.clone(), ranks);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::source::rlist::hostlist_count;

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
    const FIXTURES: [(&str, [u64; 8]); 9] = [
        ("idle", [4, 4, 4, 0, 8, 8, 0, 0]),
        ("busy", [4, 4, 1, 0, 8, 5, 0, 0]),
        ("drained", [3, 3, 2, 1, 6, 5, 0, 0]),
        ("gpus-queues", [4, 4, 0, 0, 16, 5, 8, 6]),
        ("many-jobs", [2, 0, 0, 0, 4, 0, 0, 0]),
        ("elastic", [4, 2, 1, 4, 16, 6, 0, 0]),
        ("gpu-exclusive", [4, 4, 0, 4, 16, 12, 8, 0]),
        ("queue-constrained", [4, 2, 2, 4, 16, 8, 0, 0]),
        ("room-on-busy", [4, 4, 0, 4, 16, 8, 0, 0]),
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
    fn properties_name_their_ranks() {
        let mut v = rv1(json!([{"rank": "0-7", "children": {"core": "0-3"}}]));
        assert!(properties(&v).unwrap().is_empty());
        v["execution"]["properties"] = json!({"bigmem": "4-7", "ssd": "0,2"});
        let p = properties(&v).unwrap();
        assert_eq!(p["bigmem"].to_string(), "4-7");
        assert_eq!(p["ssd"].to_string(), "0,2");
        for bad in [json!([]), json!({"x": 3}), json!({"x": "a-b"})] {
            v["execution"]["properties"] = bad;
            let e = properties(&v).unwrap_err();
            assert!(e.to_string().contains("execution.properties"), "{e}");
        }
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
