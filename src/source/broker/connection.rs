//! What the broker thread talks to: a [`Connection`] gives a round of answers or one RPC, and
//! says when it failed whether it must be reopened. A live handle and a replay directory are
//! the two kinds.

use std::time::Duration;

use super::BrokerError;
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
}

/// A failed round: `disconnected` means the connection must be reopened.
pub(super) struct RoundError {
    pub(super) error: BrokerError,
    pub(super) disconnected: bool,
}
