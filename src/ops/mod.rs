//! What operators read besides the Kubernetes APIs: the value table of every series
//! ([`values`]), its Prometheus rendering ([`prometheus`]) with the server's own counters
//! ([`telemetry`]), and a short in-memory history ([`history`]). Nothing here speaks HTTP.

pub mod history;
pub mod prometheus;
pub mod telemetry;
pub mod values;
