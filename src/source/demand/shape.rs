//! The shape of a waiting job: what its jobspec asks for (RFC 25 resources, RFC 31
//! constraints), or what its `job-list` entry says when the jobspec is not known.
//!
//! The reading follows flux-core's own scheduler (`Rv1Pool.parse_resource_request`, 0.88): the
//! resource tree is walked once, the last `node`, `slot`, `core` and `gpu` counts win, counts
//! above the node level multiply the node count, an RFC 14 range counts as its minimum, and an
//! exclusive slot-only request asks for one whole node per slot.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::source::rlist::{IdSet, MAX_RANKS, expand};

/// Deepest resource tree or constraint read; deeper ones are refused (flux refuses them too).
const MAX_DEPTH: usize = 16;

/// Largest count read from a jobspec; larger ones are taken as this (no instance has more).
const MAX_COUNT: u64 = 1 << 20;

/// What one job asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Nodes asked for; 0 for a slot-only request (slots go wherever they fit).
    pub nodes: u32,
    /// Slots on each node when `nodes` > 0, in all otherwise.
    pub slots: u32,
    /// Cores of each slot (at least 1).
    pub cores_per_slot: u32,
    /// GPUs of each slot.
    pub gpus_per_slot: u32,
    /// Whole nodes: each of its nodes must have every core free, and it takes the whole node.
    pub exclusive: bool,
    /// Where it may run (`attributes.system.constraints`, which holds the `requires` of its
    /// queue: flux's job-ingest adds them at submission).
    pub constraint: Option<Constraint>,
}

/// An RFC 31 constraint: which nodes a job may run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Constraint {
    /// Nodes with every one of these properties (a leading `^` negates one).
    Properties(Vec<String>),
    /// Nodes with one of these hostnames (the constraint's hostlists, expanded).
    Hostlist(BTreeSet<String>),
    /// Nodes of these ranks.
    Ranks(IdSet),
    /// Every one holds.
    And(Vec<Constraint>),
    /// At least one holds.
    Or(Vec<Constraint>),
    /// None holds.
    Not(Vec<Constraint>),
}

/// What a constraint is tested against: the properties and hostnames of the instance's ranks.
pub struct Nodes<'a> {
    /// Property name → ranks that have it.
    pub properties: &'a BTreeMap<String, IdSet>,
    /// Rank → hostname (empty when the nodelist is unusable).
    pub hostnames: &'a BTreeMap<u32, String>,
}

impl Constraint {
    /// Whether `rank` satisfies the constraint.
    pub fn allows(&self, rank: u32, nodes: &Nodes<'_>) -> bool {
        match self {
            Constraint::Properties(props) => props.iter().all(|p| match p.strip_prefix('^') {
                Some(p) => !nodes.properties.get(p).is_some_and(|r| r.contains(rank)),
                None => nodes.properties.get(p).is_some_and(|r| r.contains(rank)),
            }),
            Constraint::Hostlist(hosts) => nodes
                .hostnames
                .get(&rank)
                .is_some_and(|host| hosts.contains(host)),
            Constraint::Ranks(ranks) => ranks.contains(rank),
            Constraint::And(c) => c.iter().all(|c| c.allows(rank, nodes)),
            Constraint::Or(c) => c.iter().any(|c| c.allows(rank, nodes)),
            Constraint::Not(c) => !c.iter().any(|c| c.allows(rank, nodes)),
        }
    }

    /// Reads an RFC 31 constraint object.
    ///
    /// # Errors
    /// An operator this reader does not know, or operands of the wrong type.
    pub fn parse(v: &Value) -> Result<Constraint, String> {
        Self::parse_at(v, 0)
    }

    fn parse_at(v: &Value, depth: usize) -> Result<Constraint, String> {
        if depth > MAX_DEPTH {
            return Err(format!("constraint nested deeper than {MAX_DEPTH}"));
        }
        let Value::Object(o) = v else {
            return Err("a constraint must be an object".into());
        };
        let mut all = Vec::with_capacity(o.len());
        for (op, operand) in o {
            let strings = || -> Result<Vec<String>, String> {
                operand
                    .as_array()
                    .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect())
                    .ok_or_else(|| format!("constraint {op:?}: expected an array of strings"))
            };
            let nested = || -> Result<Vec<Constraint>, String> {
                operand
                    .as_array()
                    .ok_or_else(|| format!("constraint {op:?}: expected an array of constraints"))?
                    .iter()
                    .map(|c| Self::parse_at(c, depth + 1))
                    .collect()
            };
            all.push(match op.as_str() {
                "properties" => Constraint::Properties(strings()?),
                "hostlist" => {
                    let mut hosts = BTreeSet::new();
                    for list in strings()? {
                        let left = MAX_RANKS.saturating_sub(hosts.len() as u64);
                        hosts.extend(expand(&list, left).map_err(|e| e.to_string())?);
                    }
                    Constraint::Hostlist(hosts)
                }
                "ranks" => {
                    let mut ranks = IdSet::default();
                    for r in strings()? {
                        ranks = ranks.union(&IdSet::parse(&r).map_err(|e| e.to_string())?);
                    }
                    Constraint::Ranks(ranks)
                }
                "and" => Constraint::And(nested()?),
                "or" => Constraint::Or(nested()?),
                "not" => Constraint::Not(nested()?),
                other => return Err(format!("constraint operator {other:?} is not understood")),
            });
        }
        Ok(match all.len() {
            1 => all.remove(0),
            _ => Constraint::And(all), // several operators in one object: all of them (RFC 31)
        })
    }
}

/// An RFC 14 count: a number, or a range object whose minimum is what a job needs at least.
fn count(v: Option<&Value>) -> Result<u64, String> {
    let n = match v {
        None => Some(1),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::Object(o)) => o.get("min").and_then(Value::as_u64),
        Some(_) => None,
    };
    match n {
        Some(n) => Ok(n.min(MAX_COUNT)),
        None => Err("a count must be a non-negative integer or an object with \"min\"".into()),
    }
}

fn small(n: u64) -> u32 {
    u32::try_from(n.min(MAX_COUNT)).unwrap_or(u32::MAX)
}

#[derive(Default)]
struct Walk {
    nodes: Option<u64>,
    node_factor: u64,
    slots: Option<u64>,
    cores: Option<u64>,
    gpus: u64,
    exclusive: bool,
}

impl Walk {
    fn visit(&mut self, list: &[Value], factor: u64, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("resources nested deeper than {MAX_DEPTH}"));
        }
        for vertex in list {
            let kind = vertex.get("type").and_then(Value::as_str).unwrap_or("");
            let n = count(vertex.get("count"))?;
            let exclusive = vertex.get("exclusive").and_then(Value::as_bool) == Some(true);
            let children = match vertex.get("with") {
                None => &[][..],
                Some(Value::Array(a)) => a.as_slice(),
                Some(_) => return Err("\"with\" must be an array".into()),
            };
            let below = if kind == "node" {
                self.nodes = Some(n);
                self.node_factor = factor;
                self.exclusive |= exclusive;
                factor
            } else {
                match kind {
                    "slot" => {
                        self.slots = Some(n);
                        self.exclusive |= exclusive;
                    }
                    "core" => self.cores = Some(n),
                    "gpu" => self.gpus = n,
                    _ => {}
                }
                factor.saturating_mul(n).min(MAX_COUNT)
            };
            self.visit(children, below, depth + 1)?;
        }
        Ok(())
    }
}

impl Shape {
    /// The shape a jobspec (RFC 25, as a JSON value) asks for.
    ///
    /// # Errors
    /// A jobspec without resources, a slot or a core count, or with malformed counts or
    /// constraints: the caller counts such a job by its `job-list` entry instead.
    pub fn from_jobspec(jobspec: &Value) -> Result<Shape, String> {
        let resources = jobspec
            .get("resources")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
            .ok_or("the jobspec has no resources")?;
        let mut w = Walk {
            node_factor: 1,
            ..Walk::default()
        };
        w.visit(resources, 1, 0)?;
        let slots = w.slots.ok_or("the jobspec has no slot")?;
        let cores = w.cores.ok_or("the jobspec's slot has no cores")?;
        let (nodes, slots) = match w.nodes {
            Some(n) => (n.saturating_mul(w.node_factor), slots),
            // Exclusive without nodes: one whole node per slot.
            None if w.exclusive => (slots, 1),
            None => (0, slots),
        };
        let constraint = jobspec
            .pointer("/attributes/system/constraints")
            .filter(|c| c.as_object().is_some_and(|o| !o.is_empty()))
            .map(Constraint::parse)
            .transpose()?;
        Ok(Shape {
            nodes: small(nodes),
            slots: small(slots),
            cores_per_slot: small(cores).max(1),
            gpus_per_slot: small(w.gpus),
            exclusive: w.exclusive,
            constraint,
        })
    }

    /// The shape of the answer to `job-info.lookup` for `["jobspec"]`, whose `jobspec` is the
    /// jobspec's JSON text (or, decoded, the object itself).
    ///
    /// # Errors
    /// As [`Shape::from_jobspec`], and an answer that is not such an object.
    pub fn from_lookup(answer: &str) -> Result<Shape, String> {
        let v: Value = serde_json::from_str(answer).map_err(|e| e.to_string())?;
        match v.get("jobspec") {
            Some(Value::String(text)) => {
                Shape::from_jobspec(&serde_json::from_str(text).map_err(|e| e.to_string())?)
            }
            Some(spec @ Value::Object(_)) => Shape::from_jobspec(spec),
            _ => Err("the answer has no jobspec".into()),
        }
    }

    /// What a `job-list` entry alone says (no GPUs, no exclusivity, no constraints are
    /// known there): `nnodes` nodes sharing `ncores` cores, or `ncores` one-core slots. This
    /// is how a job counts until its jobspec is read.
    pub fn from_listing(nnodes: Option<u64>, ncores: Option<u64>) -> Shape {
        let cores = ncores.unwrap_or(1).max(1);
        let (nodes, slots) = match nnodes {
            Some(n) if n > 0 => (n, cores.div_ceil(n)),
            _ => (0, cores),
        };
        Shape {
            nodes: small(nodes),
            slots: small(slots),
            cores_per_slot: 1,
            gpus_per_slot: 0,
            exclusive: false,
            constraint: None,
        }
    }

    /// Cores in all (slots × cores per slot, times the nodes of a node request).
    pub fn cores(&self) -> u64 {
        self.slots_in_all() * u64::from(self.cores_per_slot)
    }

    /// GPUs in all.
    pub fn gpus(&self) -> u64 {
        self.slots_in_all() * u64::from(self.gpus_per_slot)
    }

    fn slots_in_all(&self) -> u64 {
        match self.nodes {
            0 => u64::from(self.slots),
            n => u64::from(n) * u64::from(self.slots),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The jobspecs `flux submit` wrote on flux-core 0.88 for these command lines
    /// (resources and constraints only).
    #[allow(clippy::needless_pass_by_value)] // json!() arguments, read once
    fn spec(resources: Value, constraints: Option<Value>) -> Value {
        let mut v = json!({"version": 1, "resources": resources,
            "attributes": {"system": {"duration": 0}}});
        if let Some(c) = constraints {
            v["attributes"]["system"]["constraints"] = c;
        }
        v
    }

    #[test]
    fn jobspecs_of_flux_submit() {
        // flux submit -n1 -c1 -g2
        let s = Shape::from_jobspec(&spec(
            json!([{"type": "slot", "count": 1, "label": "task",
                "with": [{"type": "core", "count": 1}, {"type": "gpu", "count": 2}]}]),
            None,
        ))
        .unwrap();
        assert_eq!(
            (s.nodes, s.slots, s.cores_per_slot, s.gpus_per_slot),
            (0, 1, 1, 2)
        );
        assert_eq!((s.cores(), s.gpus(), s.exclusive), (1, 2, false));
        // flux submit -N1 --exclusive -n1
        let s = Shape::from_jobspec(&spec(
            json!([{"type": "node", "count": 1, "exclusive": true, "with": [
                {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 1}]}]}]),
            None,
        ))
        .unwrap();
        assert_eq!((s.nodes, s.slots, s.exclusive), (1, 1, true));
        // flux submit -q big -n2 -c2, with the queue's requires added at ingest
        let s = Shape::from_jobspec(&spec(
            json!([{"type": "slot", "count": 2, "label": "task", "with": [{"type": "core", "count": 2}]}]),
            Some(json!({"properties": ["bigmem"]})),
        ))
        .unwrap();
        assert_eq!((s.nodes, s.slots, s.cores()), (0, 2, 4));
        assert_eq!(
            s.constraint,
            Some(Constraint::Properties(vec!["bigmem".into()]))
        );
        // flux submit -N2 -n4 -c1 -g1: two slots on each node
        let s = Shape::from_jobspec(&spec(
            json!([{"type": "node", "count": 2, "with": [{"type": "slot", "count": 2, "label": "task",
                "with": [{"type": "core", "count": 1}, {"type": "gpu", "count": 1}]}]}]),
            None,
        ))
        .unwrap();
        assert_eq!((s.nodes, s.slots, s.cores(), s.gpus()), (2, 2, 4, 4));
    }

    #[test]
    fn exclusive_slots_are_whole_nodes_and_ranges_count_their_minimum() {
        let s = Shape::from_jobspec(&spec(
            json!([{"type": "slot", "count": {"min": 3, "max": 5}, "exclusive": true,
                "with": [{"type": "core", "count": 2}]}]),
            None,
        ))
        .unwrap();
        assert_eq!((s.nodes, s.slots, s.exclusive), (3, 1, true));
    }

    #[test]
    fn lookup_answers_carry_the_jobspec_as_text_or_object() {
        let spec = spec(
            json!([{"type": "slot", "count": 3, "with": [{"type": "core", "count": 1}]}]),
            None,
        );
        let text = json!({"id": 1, "jobspec": spec.to_string()}).to_string();
        let object = json!({"id": 1, "jobspec": spec}).to_string();
        assert_eq!(Shape::from_lookup(&text), Shape::from_lookup(&object));
        assert_eq!(Shape::from_lookup(&text).unwrap().slots, 3);
        for bad in [
            "{}",
            "[",
            r#"{"jobspec": 3}"#,
            r#"{"jobspec": "{}"}"#,
            r#"{"jobspec": {"resources": [{"type": "slot", "count": -1}]}}"#,
            r#"{"jobspec": {"resources": [{"type": "slot", "count": 1, "with": [{"type": "core"}]}],
                "attributes": {"system": {"constraints": {"frob": []}}}}}"#,
        ] {
            assert!(Shape::from_lookup(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deep_or_huge_jobspecs_are_bounded() {
        let mut r = json!({"type": "core", "count": 1});
        for _ in 0..40 {
            r = json!({"type": "slot", "count": 1, "with": [r]});
        }
        assert!(Shape::from_jobspec(&spec(json!([r]), None)).is_err());
        let s = Shape::from_jobspec(&spec(
            json!([{"type": "node", "count": 1_000_000_000_000u64, "with": [
                {"type": "slot", "count": 1_000_000_000_000u64, "with": [{"type": "core", "count": 1}]}]}]),
            None,
        ))
        .unwrap();
        assert_eq!((s.nodes, s.slots), (1 << 20, 1 << 20));
        assert_eq!(s.cores(), 1 << 40); // no overflow
    }

    #[test]
    fn listing_shapes() {
        assert_eq!(Shape::from_listing(Some(3), Some(12)).slots, 4);
        let s = Shape::from_listing(None, Some(6));
        assert_eq!((s.nodes, s.slots, s.cores()), (0, 6, 6));
        assert_eq!(Shape::from_listing(None, None).cores(), 1);
        assert_eq!(Shape::from_listing(Some(0), Some(2)).nodes, 0);
    }

    #[test]
    fn constraints() {
        let props = BTreeMap::from([
            ("bigmem".to_string(), IdSet::parse("4-7").unwrap()),
            ("ssd".to_string(), IdSet::parse("0,4").unwrap()),
        ]);
        let hosts: BTreeMap<u32, String> = (0..8).map(|r| (r, format!("node{r}"))).collect();
        let nodes = Nodes {
            properties: &props,
            hostnames: &hosts,
        };
        let ok = |c: Value| -> Vec<u32> {
            let c = Constraint::parse(&c).unwrap();
            (0..8).filter(|r| c.allows(*r, &nodes)).collect()
        };
        assert_eq!(ok(json!({"properties": ["bigmem"]})), [4, 5, 6, 7]);
        assert_eq!(ok(json!({"properties": ["bigmem", "ssd"]})), [4]);
        assert_eq!(ok(json!({"properties": ["^bigmem"]})), [0, 1, 2, 3]);
        assert_eq!(ok(json!({"properties": ["gpu"]})), Vec::<u32>::new());
        assert_eq!(ok(json!({"hostlist": ["node[1-2]"]})), [1, 2]);
        assert_eq!(ok(json!({"ranks": ["0-1", "7"]})), [0, 1, 7]);
        assert_eq!(
            ok(json!({"or": [{"ranks": ["0"]}, {"properties": ["ssd"]}]})),
            [0, 4]
        );
        assert_eq!(
            ok(json!({"not": [{"properties": ["ssd"]}]})),
            [1, 2, 3, 5, 6, 7]
        );
        assert_eq!(
            ok(json!({"and": [{"properties": ["bigmem"]}, {"not": [{"ranks": ["4"]}]}]})),
            [5, 6, 7]
        );
        assert!(Constraint::parse(&json!({"properties": "x"})).is_err());
        assert!(Constraint::parse(&json!([])).is_err());
    }
}
