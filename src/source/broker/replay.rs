//! Recorded answers instead of a broker (`--replay DIR`): `DIR/<topic>.json`, read afresh each
//! round so that edits show up, and the simulated faults of `DIR/fault` ([`super::Fault`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::connection::{Connection, RoundError};
use super::{BrokerError, FAULT_FILE, Fault};
use crate::source::snapshot::{
    Answers, TOPIC_JOB_LIST, TOPIC_JOB_STATS, TOPIC_RESOURCE_STATUS, TOPIC_SCHED_STATUS,
    TOPIC_SCHED_STATUS_OLD,
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

impl Connection for Replay {
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
        })
    }
}

impl Replay {
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
