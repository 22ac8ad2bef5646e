//! Flux resource-set arithmetic: idsets (RFC 22, [`idset`]), hostlists (RFC 29,
//! [`hostlist`]) and Rv1 resource sets (RFC 20, [`rv1`]), with the up/free/allocated set
//! operations `flux resource list` uses. Pure code, no I/O: every parser here faces broker
//! answers and returns errors as values, never panics. It knows nothing about metrics;
//! `snapshot` decides what to count.

pub mod hostlist;
pub mod idset;
pub mod rv1;

pub use hostlist::{expand, hostlist_count};
pub use idset::IdSet;
pub use rv1::{MAX_RANGES, MAX_RANKS, Node, ResourceSet, hostnames, properties};

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

pub(crate) fn excerpt(s: &str) -> String {
    crate::util::text::excerpt(s, EXCERPT_CHARS)
}

pub(crate) fn idset_error(input: &str, reason: impl Into<String>) -> RlistError {
    RlistError::IdSet {
        input: excerpt(input),
        reason: reason.into(),
    }
}

pub(crate) fn hostlist_error(input: &str, reason: impl Into<String>) -> RlistError {
    RlistError::Hostlist {
        input: excerpt(input),
        reason: reason.into(),
    }
}

pub(crate) fn rv1_error(at: impl Into<String>, reason: impl Into<String>) -> RlistError {
    RlistError::Rv1 {
        at: at.into(),
        reason: reason.into(),
    }
}
