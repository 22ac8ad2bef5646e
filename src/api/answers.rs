//! Metric answers serialized once per broker answer: an HPA, KEDA or a dashboard asks the same
//! few URLs again and again between two broker rounds, and their answers cannot change until
//! the next snapshot, so the bytes of each are kept and served as a static file would be.
//!
//! Only built-in metrics without a `window` are kept, and none with rehearsal overrides
//! (`--allow-writes`): a custom metric has its own cache (and may fail differently from one run
//! to the next), a window's average moves with the history, and an override changes a value
//! within a snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;

use crate::source::snapshot::Snapshot;

/// Most answers kept for one snapshot: enough for every metric, queue and version a cluster
/// asks for, and a bound on what a client asking for ever new URLs can make the server hold.
const MAX_ANSWERS: usize = 512;

/// The answers of the current snapshot, keyed by path and query.
#[derive(Default)]
pub struct AnswerCache {
    current: Mutex<Option<Entry>>,
}

struct Entry {
    snapshot: Arc<Snapshot>,
    answers: HashMap<String, Bytes>,
}

impl AnswerCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Entry>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer to `key` computed from `snapshot`, if kept.
    pub fn get(&self, snapshot: &Arc<Snapshot>, key: &str) -> Option<Bytes> {
        match self.lock().as_ref() {
            Some(e) if Arc::ptr_eq(&e.snapshot, snapshot) => e.answers.get(key).cloned(),
            _ => None,
        }
    }

    /// Keeps the answer to `key` computed from `snapshot`; a newer snapshot replaces every
    /// answer of the previous one.
    pub fn put(&self, snapshot: &Arc<Snapshot>, key: &str, body: Bytes) {
        let mut current = self.lock();
        match current.as_mut() {
            Some(e) if Arc::ptr_eq(&e.snapshot, snapshot) => {
                if e.answers.len() < MAX_ANSWERS {
                    e.answers.insert(key.to_owned(), body);
                }
            }
            _ => {
                *current = Some(Entry {
                    snapshot: Arc::clone(snapshot),
                    answers: HashMap::from([(key.to_owned(), body)]),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::tests::snapshot;

    #[test]
    fn answers_live_as_long_as_their_snapshot_and_are_bounded() {
        let cache = AnswerCache::default();
        let (a, b) = (Arc::new(snapshot("busy")), Arc::new(snapshot("busy")));
        cache.put(&a, "/x", Bytes::from_static(b"1"));
        assert_eq!(cache.get(&a, "/x").as_deref(), Some(&b"1"[..]));
        assert_eq!(cache.get(&a, "/y"), None);
        // An equal but newer snapshot is another answer.
        assert_eq!(cache.get(&b, "/x"), None);
        cache.put(&b, "/y", Bytes::from_static(b"2"));
        assert_eq!(
            cache.get(&a, "/x"),
            None,
            "answers of an older snapshot are dropped"
        );
        for i in 0..2 * MAX_ANSWERS {
            cache.put(&b, &format!("/{i}"), Bytes::new());
        }
        let kept = (0..2 * MAX_ANSWERS)
            .filter(|i| cache.get(&b, &format!("/{i}")).is_some())
            .count();
        assert_eq!(kept, MAX_ANSWERS - 1);
    }
}
