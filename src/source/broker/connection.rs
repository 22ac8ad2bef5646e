//! What the broker thread talks to: a [`Connection`] gives a round of answers or one RPC, and
//! says when it failed whether it must be reopened. A live handle and a replay directory are
//! the two kinds.

use std::time::Duration;

use super::jobspecs::Lookup;
use super::{AdminError, BrokerError};
use crate::source::snapshot::Answers;

/// One way of getting a round of answers (a live handle or a replay directory).
pub(super) trait Connection {
    fn round(&mut self, timeout: Duration) -> Result<Answers, RoundError>;
    fn rpc(
        &mut self,
        topic: &str,
        payload: Option<&str>,
        timeout: Duration,
    ) -> Result<String, RoundError>;
    /// The `job-info.lookup` answers for the jobspecs of `ids`, in order, sent at once: what
    /// has not answered within `timeout` is [`Lookup::Late`].
    fn lookups(&mut self, ids: &[u64], timeout: Duration) -> Result<Vec<Lookup>, RoundError>;
    /// Whether each of `queues` is started (`job-manager.queue-status`; `""` is the anonymous
    /// queue of an instance without named queues), in order, sent at once: `None` when it did not
    /// say in time.
    fn queues_started(
        &mut self,
        queues: &[String],
        timeout: Duration,
    ) -> Result<Vec<Option<bool>>, RoundError>;
    /// Says which jobs left the listing (a recording drops their jobspecs).
    fn forget(&mut self, _gone: &[u64]) {}
    /// An RPC that may change the instance (drain, undrain), or the owner question, to rank 0.
    fn admin(
        &mut self,
        topic: &'static str,
        payload: &str,
        timeout: Duration,
    ) -> Result<String, AdminFailure>;
}

/// A failed admin RPC: `disconnected` means the connection must be reopened.
pub(super) struct AdminFailure {
    pub(super) error: AdminError,
    pub(super) disconnected: bool,
}

impl From<RoundError> for AdminFailure {
    /// A connection failure is [`AdminError::Unavailable`]; an error answer is a refusal.
    fn from(r: RoundError) -> Self {
        let error = match r.error {
            BrokerError::Rpc { topic, message } => AdminError::Refused {
                topic: topic.into(),
                message,
            },
            other => AdminError::Unavailable(other),
        };
        AdminFailure {
            error,
            disconnected: r.disconnected,
        }
    }
}

/// A failed round: `disconnected` means the connection must be reopened.
pub(super) struct RoundError {
    pub(super) error: BrokerError,
    pub(super) disconnected: bool,
}
