//! What operators read besides the Kubernetes APIs: the value table of every series
//! ([`values`]), its Prometheus rendering ([`prometheus`]) with the server's own counters
//! ([`telemetry`]), a short in-memory history ([`history`]), and the rehearsal overrides of
//! `--allow-writes` ([`rehearsal`]). Nothing here speaks HTTP.

pub mod history;
pub mod prometheus;
pub mod rehearsal;
pub mod telemetry;
pub mod values;
