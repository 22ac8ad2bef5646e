//! Recorded answers instead of a broker (`--replay DIR`): `DIR/<topic>.json`, read afresh each
//! round so that edits show up, and the simulated faults of `DIR/fault` ([`super::Fault`]).
//! Drains and undrains are written into `DIR/resource.status.json`, so that the
//! drain-before-shrink loop can be exercised without a broker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use super::connection::{AdminFailure, Connection, RoundError};
use super::jobspecs::Lookup;
use super::{
    AdminError, BrokerError, FAULT_FILE, Fault, TOPIC_ATTR_GET, TOPIC_DRAIN, TOPIC_UNDRAIN,
};
use crate::source::rlist::IdSet;
use crate::source::snapshot::{
    Answers, RECORDED_AT_FILE, TOPIC_JOB_INFO_LOOKUP, TOPIC_JOB_LIST, TOPIC_JOB_STATS,
    TOPIC_QUEUE_STATUS, TOPIC_RESOURCE_STATUS, TOPIC_SCHED_STATUS, TOPIC_SCHED_STATUS_OLD,
    queue_is_started,
};
use crate::util::duration;

/// Recorded answers: `<dir>/<topic>.json`, read afresh each round so that edits show up.
pub(super) struct Replay {
    pub(super) dir: PathBuf,
}

impl Replay {
    fn read(&self, topic: &'static str) -> Result<String, std::io::Error> {
        std::fs::read_to_string(self.dir.join(format!("{topic}.json")))
    }

    fn answer(&self, topic: &'static str) -> Result<String, RoundError> {
        self.read(topic)
            .map_err(|e| replay_error(&self.dir, topic, &e))
    }
}

fn replay_error(dir: &Path, topic: &'static str, e: &std::io::Error) -> RoundError {
    RoundError {
        error: BrokerError::Rpc {
            topic,
            message: format!(
                "no recorded answer: {}: {e}",
                dir.join(format!("{topic}.json")).display()
            ),
        },
        disconnected: false,
    }
}

/// The owner-only RPCs, replayed: a drain or undrain changes the `drain` entries of
/// `resource.status.json` as the resource module would (`resource.sched-status.json` is left
/// as recorded); `attr.get` answers from `attr.get.json`, and when that file names an owner
/// other than this process, drains and undrains are refused with EPERM as a broker refuses a
/// guest.
impl Replay {
    fn attr_get(&self) -> Result<String, AdminFailure> {
        let path = self.dir.join(format!("{TOPIC_ATTR_GET}.json"));
        std::fs::read_to_string(&path).map_err(|e| {
            refused(
                TOPIC_ATTR_GET,
                format!("no recorded answer: {}: {e}", path.display()),
            )
        })
    }

    /// Whether `attr.get.json` says another user owns the instance.
    fn owned_by_someone_else(&self) -> bool {
        let Ok(text) = self.attr_get() else {
            return false;
        };
        let owner = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("value")?.as_str()?.parse::<u32>().ok());
        owner.is_some() && owner != crate::util::process::uid()
    }

    fn change_drains(&self, topic: &'static str, payload: &str) -> Result<String, AdminFailure> {
        #[derive(serde::Deserialize)]
        struct Request {
            targets: String,
            #[serde(default)]
            reason: Option<String>,
        }
        let request: Request = serde_json::from_str(payload)
            .map_err(|e| refused(topic, format!("malformed request: {e}")))?;
        let targets = IdSet::parse(&request.targets).map_err(|e| refused(topic, e.to_string()))?;
        if targets.is_empty() {
            return Err(refused(topic, "idset is empty".into()));
        }
        let path = self.dir.join(format!("{TOPIC_RESOURCE_STATUS}.json"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| refused(topic, format!("{}: {e}", path.display())))?;
        let mut status: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| refused(topic, format!("{}: {e}", path.display())))?;
        let set = |key: &str| {
            IdSet::parse(status.get(key).and_then(|v| v.as_str()).unwrap_or("")).unwrap_or_default()
        };
        let (all, exclude) = (set("online").union(&set("offline")), set("exclude"));
        // Rank by rank: the entries are few in a replay directory.
        let mut drains: BTreeMap<u32, serde_json::Value> = BTreeMap::new();
        if let Some(map) = status.get("drain").and_then(|d| d.as_object()) {
            for (ranks, info) in map {
                let ranks = IdSet::parse(ranks).map_err(|e| refused(topic, e.to_string()))?;
                drains.extend(ranks.iter().map(|r| (r, info.clone())));
            }
        }
        let drained: IdSet = drains.keys().copied().collect();
        let ranks_word = |s: &IdSet| if s.len() > 1 { "ranks" } else { "rank" };
        if !targets.is_subset(&all) {
            return Err(refused(topic, "idset is out of range".into()));
        }
        if topic == TOPIC_DRAIN {
            let bad = targets.intersection(&drained.union(&exclude));
            if !bad.is_empty() {
                return Err(refused(
                    topic,
                    format!("{} {bad} already drained or excluded", ranks_word(&bad)),
                ));
            }
            let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
            let info =
                serde_json::json!({"timestamp": now, "reason": request.reason.unwrap_or_default()});
            drains.extend(targets.iter().map(|r| (r, info.clone())));
        } else {
            let bad = targets.difference(&drained);
            if !bad.is_empty() {
                return Err(refused(
                    topic,
                    format!("{} {bad} not drained", ranks_word(&bad)),
                ));
            }
            drains.retain(|r, _| !targets.contains(*r));
        }
        // Ranks with the same timestamp and reason share one entry, as flux writes them.
        let mut grouped: Vec<(serde_json::Value, Vec<u32>)> = Vec::new();
        for (rank, info) in drains {
            match grouped.iter_mut().find(|(i, _)| *i == info) {
                Some((_, ranks)) => ranks.push(rank),
                None => grouped.push((info, vec![rank])),
            }
        }
        let map: serde_json::Map<String, serde_json::Value> = grouped
            .into_iter()
            .map(|(info, ranks)| (ranks.into_iter().collect::<IdSet>().to_string(), info))
            .collect();
        status["drain"] = serde_json::Value::Object(map);
        // Whole files only: a round reading it meanwhile sees the old answer or the new one.
        let tmp = self.dir.join(format!(".{TOPIC_RESOURCE_STATUS}.json.tmp"));
        let body = serde_json::to_string_pretty(&status).unwrap_or_default();
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| refused(topic, format!("{}: {e}", path.display())))?;
        Ok(String::new())
    }
}

fn refused(topic: &'static str, message: String) -> AdminFailure {
    AdminFailure {
        error: AdminError::Refused {
            topic: topic.into(),
            message,
        },
        disconnected: false,
    }
}

impl Connection for Replay {
    fn admin(
        &mut self,
        topic: &'static str,
        payload: &str,
        timeout: Duration,
    ) -> Result<String, AdminFailure> {
        self.inject_fault(timeout)?;
        match topic {
            TOPIC_ATTR_GET => self.attr_get(),
            TOPIC_DRAIN | TOPIC_UNDRAIN if self.owned_by_someone_else() => Err(AdminFailure {
                error: AdminError::NotOwner {
                    topic: topic.into(),
                    message: "Operation not permitted".into(),
                },
                disconnected: false,
            }),
            TOPIC_DRAIN | TOPIC_UNDRAIN => self.change_drains(topic, payload),
            _ => Err(refused(topic, "not replayed".into())),
        }
    }

    fn rpc(
        &mut self,
        topic: &str,
        _payload: Option<&str>,
        timeout: Duration,
    ) -> Result<String, RoundError> {
        self.inject_fault(timeout)?;
        let valid = !topic.is_empty()
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
            && !topic.starts_with('.');
        if !valid {
            return Err(RoundError {
                error: BrokerError::Rpc {
                    topic: "replay",
                    message: format!("invalid topic {topic:?}"),
                },
                disconnected: false,
            });
        }
        let path = self.dir.join(format!("{topic}.json"));
        std::fs::read_to_string(&path).map_err(|e| RoundError {
            error: BrokerError::Rpc {
                topic: "replay",
                message: format!("{topic}: no recorded answer: {}: {e}", path.display()),
            },
            disconnected: false,
        })
    }

    fn round(&mut self, timeout: Duration) -> Result<Answers, RoundError> {
        self.inject_fault(timeout)?;
        self.answers()
    }

    /// Queue statuses from `job-manager.queue-status.json`, an object of answers by queue name
    /// (`""`: the anonymous queue), as `record` writes it; without the file, or without an entry,
    /// the queue is started.
    fn queues_started(
        &mut self,
        queues: &[String],
        _timeout: Duration,
    ) -> Result<Vec<Option<bool>>, RoundError> {
        let path = self.dir.join(format!("{TOPIC_QUEUE_STATUS}.json"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(vec![Some(true); queues.len()]);
        };
        let recorded: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| RoundError {
                error: BrokerError::Rpc {
                    topic: TOPIC_QUEUE_STATUS,
                    message: format!("{}: {e}", path.display()),
                },
                disconnected: false,
            })?;
        Ok(queues
            .iter()
            .map(|q| {
                recorded
                    .get(q)
                    .map_or(Some(true), |a| queue_is_started(&a.to_string()))
            })
            .collect())
    }

    /// Jobspecs from `job-info.lookup.json`, an object of answers by job id (as `record` writes
    /// it); without the file, or without an entry, the lookup is refused as for a job that is
    /// gone, and the job counts by its `job-list` entry.
    fn lookups(&mut self, ids: &[u64], _timeout: Duration) -> Result<Vec<Lookup>, RoundError> {
        let path = self.dir.join(format!("{TOPIC_JOB_INFO_LOOKUP}.json"));
        let recorded: BTreeMap<String, serde_json::Value> = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| RoundError {
                error: BrokerError::Rpc {
                    topic: TOPIC_JOB_INFO_LOOKUP,
                    message: format!("{}: {e}", path.display()),
                },
                disconnected: false,
            })?,
            Err(_) => BTreeMap::new(),
        };
        Ok(ids
            .iter()
            .map(|id| match recorded.get(&id.to_string()) {
                Some(answer) => Lookup::Answer(answer.to_string()),
                None => Lookup::Refused(format!("no recorded answer in {}", path.display())),
            })
            .collect())
    }
}

impl Replay {
    /// The recorded answers of one round, as the files hold them now.
    pub(super) fn answers(&self) -> Result<Answers, RoundError> {
        let sched_status = match self.read(TOPIC_SCHED_STATUS) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Recorded before flux-core 0.49, under the RPC's old name; when neither file
                // is there, name the current one.
                self.read(TOPIC_SCHED_STATUS_OLD)
                    .map_err(|_| replay_error(&self.dir, TOPIC_SCHED_STATUS, &e))?
            }
            Err(e) => return Err(replay_error(&self.dir, TOPIC_SCHED_STATUS, &e)),
        };
        Ok(Answers {
            sched_status,
            resource_status: self.answer(TOPIC_RESOURCE_STATUS)?,
            job_stats: self.answer(TOPIC_JOB_STATS)?,
            job_list: self.answer(TOPIC_JOB_LIST)?,
            recorded_at: self.recorded_at(),
        })
    }
}

impl Replay {
    /// When the answers were recorded (`recorded-at`); an unreadable file is as none.
    fn recorded_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let text = std::fs::read_to_string(self.dir.join(RECORDED_AT_FILE)).ok()?;
        match chrono::DateTime::parse_from_rfc3339(text.trim()) {
            Ok(t) => Some(t.to_utc()),
            Err(e) => {
                tracing::warn!(file = %self.dir.join(RECORDED_AT_FILE).display(), error = %e, "not an RFC 3339 time: job ages are measured now");
                None
            }
        }
    }

    fn inject_fault(&self, timeout: Duration) -> Result<(), RoundError> {
        let Ok(text) = std::fs::read_to_string(self.dir.join(FAULT_FILE)) else {
            return Ok(());
        };
        let fault = Fault::parse(&text).map_err(|e| RoundError {
            error: BrokerError::Rpc {
                topic: "replay",
                message: e,
            },
            disconnected: false,
        })?;
        let unavailable = |message: String| RoundError {
            error: BrokerError::Unavailable(message),
            disconnected: true,
        };
        match fault {
            Fault::Unavailable => Err(unavailable("simulated fault: connection refused".into())),
            Fault::Hang => {
                std::thread::sleep(timeout);
                Err(unavailable(format!(
                    "simulated fault: no answer within {} (--flux-timeout)",
                    duration::display(timeout)
                )))
            }
            Fault::Delay(d) if d >= timeout => {
                std::thread::sleep(timeout);
                Err(unavailable(format!(
                    "simulated fault: no answer within {} (--flux-timeout)",
                    duration::display(timeout)
                )))
            }
            Fault::Delay(d) => {
                std::thread::sleep(d);
                Ok(())
            }
            Fault::Error(message) => Err(RoundError {
                error: BrokerError::Rpc {
                    topic: TOPIC_SCHED_STATUS,
                    message,
                },
                disconnected: false,
            }),
        }
    }
}
