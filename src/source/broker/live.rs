//! A live broker: rounds and script RPCs through libflux-core, on the broker thread's handle.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use chrono::SubsecRound;

use super::connection::{AdminFailure, Connection, RoundError};
use super::jobspecs::Lookup;
use super::{AdminError, BrokerError};
use crate::source::snapshot::{
    Answers, RECORDED_AT_FILE, TOPIC_JOB_INFO_LOOKUP, TOPIC_JOB_LIST, TOPIC_JOB_STATS,
    TOPIC_QUEUE_STATUS, TOPIC_RESOURCE_STATUS, TOPIC_SCHED_STATUS, TOPIC_SCHED_STATUS_OLD,
    job_list_payload, jobspec_lookup_payload, queue_is_started, queue_status_payload,
};
use crate::util::duration;

pub(super) struct Live {
    pub(super) handle: flux::Handle,
    /// With `record`: the directory every answer is also written to, as `<topic>.json`.
    pub(super) tape: Option<PathBuf>,
    /// With `record`: the jobspec answers of the listed jobs, by id, written together as
    /// `job-info.lookup.json` (what replay answers lookups from).
    pub(super) taped_lookups: BTreeMap<u64, serde_json::Value>,
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

/// Writes one answer as `dir/<file>` (`<topic>.json` for an RPC, the file replay reads for it),
/// through a temporary file, so that a replay reading the directory never sees half an answer.
fn tape(dir: &Path, file: &str, answer: &str) -> Result<(), RoundError> {
    let path = dir.join(file);
    let partial = dir.join(format!(".{file}.partial"));
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
            tape(dir, &format!("{topic}.json"), &answer)?;
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

impl Live {
    /// Writes the recorded jobspec answers, when recording.
    fn tape_lookups(&self) -> Result<(), RoundError> {
        let Some(dir) = &self.tape else {
            return Ok(());
        };
        let map: serde_json::Map<String, serde_json::Value> = self
            .taped_lookups
            .iter()
            .map(|(id, v)| (id.to_string(), v.clone()))
            .collect();
        let text = serde_json::to_string_pretty(&map).unwrap_or_default();
        tape(dir, &format!("{TOPIC_JOB_INFO_LOOKUP}.json"), &text)
    }
}

impl Connection for Live {
    fn lookups(&mut self, ids: &[u64], timeout: Duration) -> Result<Vec<Lookup>, RoundError> {
        let deadline = Instant::now() + timeout;
        let h = &self.handle;
        let mut sent = Vec::with_capacity(ids.len());
        for &id in ids {
            let payload = jobspec_lookup_payload(id);
            let rpc = h
                .rpc(TOPIC_JOB_INFO_LOOKUP, Some(&payload), flux::NODEID_ANY)
                .map_err(|e| Live::fail(TOPIC_JOB_INFO_LOOKUP, &e, timeout))?;
            sent.push(rpc);
        }
        let mut out = Vec::with_capacity(ids.len());
        let mut answered = Vec::new();
        for (rpc, &id) in sent.iter().zip(ids) {
            let left = deadline.saturating_duration_since(Instant::now());
            out.push(match rpc.get(left) {
                Ok(answer) => {
                    if self.tape.is_some() {
                        answered.push((id, answer.clone()));
                    }
                    Lookup::Answer(answer)
                }
                Err(e) if is_timeout(&e) => Lookup::Late,
                Err(e) if is_disconnect(&e) => {
                    return Err(Live::fail(TOPIC_JOB_INFO_LOOKUP, &e, timeout));
                }
                Err(e) => Lookup::Refused(e.to_string()),
            });
        }
        drop(sent);
        if self.tape.is_some() && !answered.is_empty() {
            for (id, answer) in answered {
                if let Ok(v) = serde_json::from_str(&answer) {
                    self.taped_lookups.insert(id, v);
                }
            }
            self.tape_lookups()?;
        }
        Ok(out)
    }

    fn queues_started(
        &mut self,
        queues: &[String],
        timeout: Duration,
    ) -> Result<Vec<Option<bool>>, RoundError> {
        let deadline = Instant::now() + timeout;
        let mut sent = Vec::with_capacity(queues.len());
        for q in queues {
            let payload = queue_status_payload(q);
            let rpc = self
                .handle
                .rpc(TOPIC_QUEUE_STATUS, Some(&payload), flux::NODEID_ANY)
                .map_err(|e| Live::fail(TOPIC_QUEUE_STATUS, &e, timeout))?;
            sent.push(rpc);
        }
        let mut out = Vec::with_capacity(queues.len());
        let mut answered = serde_json::Map::new();
        for (rpc, q) in sent.iter().zip(queues) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rpc.get(left) {
                Ok(answer) => {
                    out.push(queue_is_started(&answer));
                    if let Ok(v) = serde_json::from_str(&answer) {
                        answered.insert(q.clone(), v);
                    }
                }
                Err(e) if is_disconnect(&e) => {
                    return Err(Live::fail(TOPIC_QUEUE_STATUS, &e, timeout));
                }
                Err(_) => out.push(None),
            }
        }
        drop(sent);
        if let Some(dir) = &self.tape {
            let text = serde_json::to_string_pretty(&answered).unwrap_or_default();
            tape(dir, &format!("{TOPIC_QUEUE_STATUS}.json"), &text)?;
        }
        Ok(out)
    }

    fn forget(&mut self, gone: &[u64]) {
        if self.tape.is_some() && !gone.is_empty() {
            for id in gone {
                self.taped_lookups.remove(id);
            }
            if let Err(e) = self.tape_lookups() {
                tracing::warn!(error = %e.error, "recording the jobspecs failed");
            }
        }
    }

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
        let mut answers = Answers {
            sched_status,
            resource_status: get(&status, TOPIC_RESOURCE_STATUS)?,
            job_stats: get(&stats, TOPIC_JOB_STATS)?,
            job_list: get(&list, TOPIC_JOB_LIST)?,
            recorded_at: None,
        };
        if let Some(dir) = &self.tape {
            // The live values are measured on the clock the replay will use.
            let now = chrono::Utc::now().trunc_subsecs(3);
            let text = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            tape(dir, RECORDED_AT_FILE, &format!("{text}\n"))?;
            answers.recorded_at = Some(now);
        }
        Ok(answers)
    }
}
