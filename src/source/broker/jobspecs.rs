//! The shapes of waiting jobs, read from their jobspecs (`job-info.lookup`) and kept by job id
//! across rounds: a jobspec does not change while a job waits (but through `flux update`, whose
//! updates the lookup applies), so each is read once. Entries go when their job leaves the
//! listing. Each round reads at most [`Settings::jobspecs_per_round`](super::Settings) new ones,
//! in the scheduler's order, as futures sent at once; a job whose jobspec is not read yet counts
//! by its `job-list` entry ([`Shape::from_listing`]).

use std::collections::{HashMap, HashSet};

use crate::source::demand::Shape;
use crate::source::snapshot::Listing;

/// The answer to one `job-info.lookup`.
pub(super) enum Lookup {
    /// The answer's JSON text.
    Answer(String),
    /// An error answer (the job is gone, or not this user's: `job-info.lookup` lets a guest read
    /// only its own jobs): not asked again while the job waits.
    Refused(String),
    /// No answer within the round's time: asked again next round.
    Late,
}

/// What is known of the jobspecs of the listed jobs.
#[derive(Default)]
pub(super) struct Jobspecs {
    /// Shapes read, by job id.
    pub(super) shapes: HashMap<u64, Shape>,
    /// Jobs whose jobspec could not be read or understood: they count by their listing.
    unreadable: HashSet<u64>,
}

impl Jobspecs {
    /// Forgets the jobs no longer listed; returns their ids.
    pub(super) fn prune(&mut self, listing: &Listing) -> Vec<u64> {
        let listed: HashSet<u64> = listing.ids().collect();
        let mut gone: Vec<u64> = self
            .shapes
            .keys()
            .filter(|id| !listed.contains(id))
            .copied()
            .collect();
        self.shapes.retain(|id, _| listed.contains(id));
        gone.extend(self.unreadable.iter().filter(|id| !listed.contains(id)));
        self.unreadable.retain(|id| listed.contains(id));
        gone
    }

    /// The runnable jobs whose jobspec is still to be read, first ones first, at most `cap`.
    pub(super) fn wanted(&self, listing: &Listing, cap: usize) -> Vec<u64> {
        listing
            .runnable_ids()
            .into_iter()
            .filter(|id| !self.shapes.contains_key(id) && !self.unreadable.contains(id))
            .take(cap)
            .collect()
    }

    /// Keeps what the lookup of job `id` said; returns whether it gave a shape.
    pub(super) fn keep(&mut self, id: u64, lookup: Lookup) -> bool {
        match lookup {
            Lookup::Answer(text) => match Shape::from_lookup(&text) {
                Ok(shape) => {
                    self.shapes.insert(id, shape);
                    true
                }
                Err(e) => {
                    tracing::debug!(job = id, error = %e, "jobspec not understood: the job counts by its job-list entry");
                    self.unreadable.insert(id);
                    false
                }
            },
            Lookup::Refused(e) => {
                tracing::debug!(job = id, error = %e, "jobspec lookup refused: the job counts by its job-list entry");
                self.unreadable.insert(id);
                false
            }
            Lookup::Late => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(jobs: &[(u64, u32, i64)]) -> Listing {
        let jobs: Vec<_> = jobs
            .iter()
            .map(|(id, state, urgency)| {
                serde_json::json!({"id": id, "state": state, "urgency": urgency, "priority": 16})
            })
            .collect();
        Listing::parse(&serde_json::json!({ "jobs": jobs }).to_string()).unwrap()
    }

    const SPEC: &str = r#"{"id": 1, "jobspec": {"resources": [{"type": "slot", "count": 2,
        "with": [{"type": "core", "count": 1}, {"type": "gpu", "count": 1}]}]}}"#;

    #[test]
    fn reads_runnable_jobs_once_and_forgets_jobs_that_left() {
        let mut c = Jobspecs::default();
        // 1 and 2 runnable, 3 held, 4 waiting on a dependency.
        let l = listing(&[(1, 8, 16), (2, 8, 16), (3, 8, 0), (4, 2, 16)]);
        assert_eq!(c.wanted(&l, 10), [1, 2]);
        assert_eq!(c.wanted(&l, 1), [1]);
        assert!(c.keep(1, Lookup::Answer(SPEC.into())));
        assert!(!c.keep(2, Lookup::Late));
        assert_eq!(c.wanted(&l, 10), [2]);
        assert!(!c.keep(2, Lookup::Refused("EPERM".into())));
        assert!(c.wanted(&l, 10).is_empty());
        assert_eq!(c.shapes[&1].gpus(), 2);
        // Job 1 ran, job 2 was canceled.
        let l = listing(&[(3, 8, 16)]);
        let mut gone = c.prune(&l);
        gone.sort_unstable();
        assert_eq!(gone, [1, 2]);
        assert!(c.shapes.is_empty());
        assert_eq!(c.wanted(&l, 10), [3]);
    }

    #[test]
    fn a_jobspec_not_understood_is_not_asked_again() {
        let mut c = Jobspecs::default();
        let l = listing(&[(7, 8, 16)]);
        assert!(!c.keep(7, Lookup::Answer("{\"jobspec\": 3}".into())));
        assert!(c.wanted(&l, 10).is_empty());
    }
}
