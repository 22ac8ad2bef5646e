//! What a script's `flux.rpc(...)` reaches: the [`Host`] trait, and the broker thread behind it
//! in the server (tests put recorded answers there instead).

use crate::source::broker::Broker;

/// What a script's `flux.rpc(...)` calls: a blocking RPC to the broker (the server implements it
/// by asking the broker thread; tests implement it with recorded answers).
pub trait Host: Send + Sync + 'static {
    /// Sends the RPC `topic` with the JSON text `payload` (`None`: no payload) and waits for the
    /// answer. It should give up after its own timeout: a script blocked here cannot be stopped
    /// (the request answers after `--custom-metric-timeout` + 1 s all the same).
    ///
    /// # Errors
    /// Flux's error message when the RPC fails.
    fn rpc(&self, topic: &str, payload: Option<&str>) -> Result<String, String>;
}

impl Host for Broker {
    fn rpc(&self, topic: &str, payload: Option<&str>) -> Result<String, String> {
        self.rpc_blocking(topic, payload)
    }
}
