//! A live broker: rounds and script RPCs through libflux-core, on the broker thread's handle.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::connection::{AdminFailure, Connection, RoundError};
use super::{AdminError, BrokerError};
use crate::source::snapshot::{
    Answers, TOPIC_JOB_LIST, TOPIC_JOB_STATS, TOPIC_RESOURCE_STATUS, TOPIC_SCHED_STATUS,
    TOPIC_SCHED_STATUS_OLD, job_list_payload,
};
use crate::util::duration;

pub(super) struct Live {
    pub(super) handle: flux::Handle,
    /// With `record`: the directory every answer is also written to, as `<topic>.json`.
    pub(super) tape: Option<PathBuf>,
}

/// Whether an RPC error means the connection to the broker is gone or useless.
fn is_disconnect(e: &flux::Error) -> bool {
    use std::io::ErrorKind::{
        BrokenPipe, ConnectionAborted, ConnectionRefused, ConnectionReset, NotConnected, NotFound,
    };
    e.errno().is_some_and(|n| {
        matches!(
            std::io::Error::from_raw_os_error(n).kind(),
            BrokenPipe
                | ConnectionAborted
                | ConnectionRefused
                | ConnectionReset
                | NotConnected
                | NotFound
        )
    })
}

fn is_enosys(e: &flux::Error) -> bool {
    e.errno().is_some_and(|n| {
        std::io::Error::from_raw_os_error(n).kind() == std::io::ErrorKind::Unsupported
    })
}

fn is_timeout(e: &flux::Error) -> bool {
    e.errno().is_some_and(|n| {
        std::io::Error::from_raw_os_error(n).kind() == std::io::ErrorKind::TimedOut
    })
}

/// Writes one answer as `dir/<topic>.json`, the file replay reads for that RPC (through a
/// temporary file, so that a replay reading the directory never sees half an answer).
fn tape(dir: &Path, topic: &str, answer: &str) -> Result<(), RoundError> {
    let path = dir.join(format!("{topic}.json"));
    let partial = dir.join(format!(".{topic}.json.partial"));
    std::fs::write(&partial, answer)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| RoundError {
            error: BrokerError::Unavailable(format!("recording {}: {e}", path.display())),
            disconnected: false,
        })
}

impl Live {
    /// `answer`, written to the tape first when recording.
    fn taped(&self, topic: &str, answer: String) -> Result<String, RoundError> {
        if let Some(dir) = &self.tape {
            tape(dir, topic, &answer)?;
        }
        Ok(answer)
    }

    fn fail(topic: &'static str, e: &flux::Error, timeout: Duration) -> RoundError {
        if is_timeout(e) {
            return RoundError {
                error: BrokerError::Unavailable(format!(
                    "{topic} got no answer within {} (--flux-timeout)",
                    duration::display(timeout)
                )),
                disconnected: false,
            };
        }
        if is_disconnect(e) {
            return RoundError {
                error: BrokerError::Unavailable(format!("connection lost during {topic}: {e}")),
                disconnected: true,
            };
        }
        if is_enosys(e) {
            // No module serves the topic: a broker still starting up (seen on every restart:
            // the socket answers before the resource and job-list modules are loaded), or one
            // without them. Either way there is nothing to serve yet.
            return RoundError {
                error: BrokerError::Unavailable(format!(
                    "{topic}: {e} (is the instance still starting, or is its module not loaded?)"
                )),
                disconnected: false,
            };
        }
        RoundError {
            error: BrokerError::Rpc {
                topic,
                message: e.to_string(),
            },
            disconnected: false,
        }
    }
}

fn is_eperm(e: &flux::Error) -> bool {
    e.errno().is_some_and(|n| {
        std::io::Error::from_raw_os_error(n).kind() == std::io::ErrorKind::PermissionDenied
    })
}

impl Connection for Live {
    fn admin(
        &mut self,
        topic: &'static str,
        payload: &str,
        timeout: Duration,
    ) -> Result<String, AdminFailure> {
        let fail = |e: &flux::Error| {
            if is_eperm(e) {
                return AdminFailure {
                    error: AdminError::NotOwner {
                        topic: topic.into(),
                        message: match e {
                            flux::Error::Flux { message, .. } => message.clone(),
                            other => other.to_string(),
                        },
                    },
                    disconnected: false,
                };
            }
            let mut r = AdminFailure::from(Live::fail(topic, e, timeout));
            if let (AdminError::Refused { message, .. }, flux::Error::Flux { message: m, .. }) =
                (&mut r.error, e)
            {
                message.clone_from(m); // flux's own words, without the C call's name
            }
            r
        };
        let rpc = self
            .handle
            .rpc(topic, Some(payload), 0)
            .map_err(|e| fail(&e))?;
        rpc.get(timeout).map_err(|e| fail(&e))
    }

    fn rpc(
        &mut self,
        topic: &str,
        payload: Option<&str>,
        timeout: Duration,
    ) -> Result<String, RoundError> {
        // Scripts name topics at run time; the error helpers want a static name.
        let fail = |e: &flux::Error| {
            let mut r = Live::fail("a custom metric RPC", e, timeout);
            if let BrokerError::Rpc { message, .. } = &mut r.error {
                *message = format!("{topic}: {message}");
            }
            r
        };
        let rpc = self
            .handle
            .rpc(topic, payload, flux::NODEID_ANY)
            .map_err(|e| fail(&e))?;
        let answer = rpc.get(timeout).map_err(|e| fail(&e))?;
        self.taped(topic, answer)
    }

    fn round(&mut self, timeout: Duration) -> Result<Answers, RoundError> {
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let h = &self.handle;
        let send = |topic: &'static str, payload: Option<&str>, node: u32| {
            h.rpc(topic, payload, node)
                .map_err(|e| Live::fail(topic, &e, timeout))
        };
        // Send all four requests before waiting, so that a round costs one broker round trip.
        let list_payload = job_list_payload();
        let sched = send(TOPIC_SCHED_STATUS, None, 0)?;
        let status = send(TOPIC_RESOURCE_STATUS, None, 0)?;
        let stats = send(TOPIC_JOB_STATS, Some("{}"), flux::NODEID_ANY)?;
        let list = send(TOPIC_JOB_LIST, Some(&list_payload), flux::NODEID_ANY)?;
        // Every answer goes through `get`, so that `record` writes exactly what was asked.
        let get = |rpc: &flux::Rpc<'_>, topic| {
            let answer = rpc
                .get(left())
                .map_err(|e| Live::fail(topic, &e, timeout))?;
            self.taped(topic, answer)
        };
        let sched_status = match sched.get(left()) {
            Err(e) if is_enosys(&e) => get(
                &send(TOPIC_SCHED_STATUS_OLD, None, 0)?,
                TOPIC_SCHED_STATUS_OLD,
            )?,
            other => self.taped(
                TOPIC_SCHED_STATUS,
                other.map_err(|e| Live::fail(TOPIC_SCHED_STATUS, &e, timeout))?,
            )?,
        };
        Ok(Answers {
            sched_status,
            resource_status: get(&status, TOPIC_RESOURCE_STATUS)?,
            job_stats: get(&stats, TOPIC_JOB_STATS)?,
            job_list: get(&list, TOPIC_JOB_LIST)?,
        })
    }
}
