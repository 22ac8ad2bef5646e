//! `Selector::parse` on arbitrary text (the `labelSelector` and `metricLabelSelector` query
//! parameters come straight from the client).
//!
//! Invariants: when a selector parses, its canonical text parses back to the same selector and
//! is a fixed point; the parsed form is normalized (sorted keys, value counts per operator,
//! sorted and deduplicated `in` lists); `matches` never panics. Errors quote a bounded excerpt.
#![no_main]

use std::collections::BTreeMap;

use flux_metrics::api::selector::{Operator, Selector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Query values reach the parser percent-decoded and UTF-8-lossy, so always as text.
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match Selector::parse(s) {
        Ok(sel) => check(s, &sel),
        Err(e) => {
            // 128 characters plus the `…` cut mark.
            assert!(e.input.chars().count() <= 129, "unbounded excerpt for {s:?}");
            assert!(!e.reason.is_empty());
            let _ = e.to_string();
        }
    }
});

fn check(s: &str, sel: &Selector) {
    let text = sel.to_string();
    let again = Selector::parse(&text);
    assert_eq!(
        again.as_ref(),
        Ok(sel),
        "{s:?} parsed, but its canonical text {text:?} does not parse back to it"
    );
    assert_eq!(again.unwrap().to_string(), text, "canonical text is not a fixed point");
    assert_eq!(sel.is_empty(), text.is_empty());

    assert!(
        sel.requirements.windows(2).all(|w| w[0].key <= w[1].key),
        "requirements of {s:?} are not sorted by key"
    );
    let mut labels = BTreeMap::new();
    for r in &sel.requirements {
        assert!(!r.key.is_empty());
        match r.operator {
            Operator::Exists | Operator::DoesNotExist => assert!(r.values.is_empty()),
            Operator::Equals | Operator::NotEquals => assert_eq!(r.values.len(), 1),
            Operator::GreaterThan | Operator::LessThan => {
                assert_eq!(r.values.len(), 1);
                assert!(r.values[0].parse::<i64>().is_ok(), "{s:?}: non-integer bound");
            }
            Operator::In | Operator::NotIn => {
                assert!(!r.values.is_empty());
                assert!(
                    r.values.windows(2).all(|w| w[0] < w[1]),
                    "{s:?}: set values not sorted and deduplicated"
                );
            }
        }
        assert_eq!(sel.get(&r.key).map(|g| &g.key), Some(&r.key));
        if let Some(v) = r.values.first() {
            labels.insert(r.key.clone(), v.clone());
        }
    }
    // Never panics, whatever the labels.
    let _ = sel.matches(&BTreeMap::new());
    let _ = sel.matches(&labels);
    // A selector made only of equalities selects the labels it names.
    if sel
        .requirements
        .iter()
        .all(|r| r.operator == Operator::Equals)
    {
        let consistent = sel
            .requirements
            .iter()
            .all(|r| labels.get(&r.key) == r.values.first());
        if consistent {
            assert!(sel.matches(&labels), "{s:?} does not match its own labels");
        }
    }
}
