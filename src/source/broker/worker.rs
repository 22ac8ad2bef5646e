//! The broker thread's loop: it takes every queued ask at once, answers them with at most one
//! round of RPCs (or with an answer young enough), sends the scripts' RPCs on the same
//! connection, and after a failure waits out a short backoff before it tries again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::connection::{AdminFailure, Connection, RoundError};
use super::jobspecs::Jobspecs;
use super::live::Live;
use super::replay::Replay;
use super::{AdminError, Ask, BrokerError, Fresh, Msg, Shared, Source};
use crate::source::snapshot::{DemandInputs, Listing, Snapshot};

/// Backoff between failed attempts: short, so that answers resume within about a second of the
/// broker coming back.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(super) const BACKOFF_MAX: Duration = Duration::from_millis(500);

pub(super) struct Worker {
    shared: Arc<Shared>,
    library: Option<flux::Library>,
    conn: Option<Box<dyn Connection>>,
    retry_at: Option<Instant>,
    backoff: Duration,
    jobspecs: Jobspecs,
}

impl Worker {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Worker {
            shared,
            library: None,
            conn: None,
            retry_at: None,
            backoff: BACKOFF_MIN,
            jobspecs: Jobspecs::default(),
        }
    }

    pub(super) fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        let mut asks = Vec::new();
        let mut rpcs = Vec::new();
        let mut admins = Vec::new();
        while let Ok(msg) = rx.recv() {
            let mut stop = false;
            for msg in std::iter::once(msg).chain(rx.try_iter()) {
                match msg {
                    Msg::Ask(a) => asks.push(a),
                    Msg::Rpc(r) => rpcs.push(r),
                    Msg::Admin(a) => admins.push(a),
                    Msg::Stop => stop = true,
                }
            }
            if stop {
                break;
            }
            self.serve(&mut asks);
            for rpc in rpcs.drain(..) {
                let answer = self.raw_rpc(&rpc.topic, rpc.payload.as_deref());
                let _ = rpc.reply.send(answer);
            }
            for admin in admins.drain(..) {
                let answer = self.admin_rpc(admin.topic, &admin.payload);
                let _ = admin.reply.send(answer);
            }
        }
        tracing::debug!("broker thread stopped");
    }

    /// Answers every queued ask, running at most one round.
    fn serve(&mut self, asks: &mut Vec<Ask>) {
        self.answer(asks);
        // Any queued background refresh has now been served by a round or a young answer.
        self.shared.refreshing.store(false, Ordering::Release);
    }

    fn answer(&mut self, asks: &mut Vec<Ask>) {
        let max_age = self.shared.settings.max_age;
        // An ask made before the last answer arrived, or within max_age of it, needs no round.
        if let Some(fresh) = self.shared.latest.load_full() {
            let young = fresh.at.elapsed() < max_age;
            let (done, waiting): (Vec<Ask>, Vec<Ask>) =
                asks.drain(..).partition(|ask| young || fresh.at >= ask.at);
            for ask in done {
                if let Some(reply) = ask.reply {
                    let _ = reply.send(Ok(Arc::clone(&fresh.snapshot)));
                }
            }
            *asks = waiting;
        }
        if asks.is_empty() {
            return;
        }
        let answer = self.round();
        for ask in asks.drain(..) {
            if let Some(reply) = ask.reply {
                let _ = reply.send(answer.clone());
            }
        }
    }

    fn round(&mut self) -> Result<Arc<Snapshot>, BrokerError> {
        if let (Some(at), Some(err)) = (self.retry_at, self.shared.last_error.load_full()) {
            if Instant::now() < at {
                return Err((*err).clone()); // still backing off: answer at once
            }
        }
        let result = self.try_round();
        match &result {
            Ok(_) => {
                if self.shared.last_error.swap(None).is_some() {
                    tracing::info!(source = %self.shared.description, "Flux broker answers again");
                }
                self.retry_at = None;
                self.backoff = BACKOFF_MIN;
            }
            Err(e) => {
                self.shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                let previous = self.shared.last_error.swap(Some(Arc::new(e.clone())));
                if previous.as_deref() != Some(e) {
                    tracing::warn!(error = %e, retry_in = ?self.backoff, "broker round failed");
                }
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
        result
    }

    /// One RPC for a custom metric script, on the same connection as the rounds.
    fn raw_rpc(&mut self, topic: &str, payload: Option<&str>) -> Result<String, String> {
        if let (Some(at), Some(err)) = (self.retry_at, self.shared.last_error.load_full()) {
            if Instant::now() < at {
                return Err(err.to_string());
            }
        }
        let settings = &self.shared.settings;
        if self.conn.is_none() {
            self.conn =
                Some(connect(&settings.source, &mut self.library).map_err(|e| e.to_string())?);
        }
        let conn = self.conn.as_mut().ok_or("no connection to the broker")?;
        conn.rpc(topic, payload, settings.timeout).map_err(
            |RoundError {
                 error,
                 disconnected,
             }| {
                if disconnected {
                    self.conn = None;
                }
                match error {
                    BrokerError::Rpc { message, .. } => message,
                    other => other.to_string(),
                }
            },
        )
    }

    /// One owner-only RPC (or the owner question) for the drain-before-shrink loop, on the same
    /// connection as the rounds.
    fn admin_rpc(&mut self, topic: &'static str, payload: &str) -> Result<String, AdminError> {
        if let (Some(at), Some(err)) = (self.retry_at, self.shared.last_error.load_full()) {
            if Instant::now() < at {
                return Err(AdminError::Unavailable((*err).clone()));
            }
        }
        let settings = &self.shared.settings;
        if self.conn.is_none() {
            self.conn = Some(
                connect(&settings.source, &mut self.library).map_err(AdminError::Unavailable)?,
            );
        }
        let conn = self.conn.as_mut().ok_or_else(|| {
            AdminError::Unavailable(BrokerError::Unavailable("no connection".into()))
        })?;
        conn.admin(topic, payload, settings.timeout).map_err(
            |AdminFailure {
                 error,
                 disconnected,
             }| {
                if disconnected {
                    self.conn = None;
                }
                error
            },
        )
    }

    fn try_round(&mut self) -> Result<Arc<Snapshot>, BrokerError> {
        let settings = &self.shared.settings;
        if self.conn.is_none() {
            self.conn = Some(connect(&settings.source, &mut self.library)?);
        }
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| BrokerError::Unavailable("no connection".into()))?;
        self.shared.stats.rounds.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let answers = match conn.round(settings.timeout) {
            Ok(a) => a,
            Err(RoundError {
                error,
                disconnected,
            }) => {
                if disconnected {
                    self.conn = None;
                }
                return Err(error);
            }
        };
        let listing = Listing::parse(&answers.job_list)?;
        let gone = self.jobspecs.prune(&listing);
        conn.forget(&gone);
        let wanted = self.jobspecs.wanted(&listing, settings.jobspecs_per_round);
        if !wanted.is_empty() {
            // The jobspecs get what is left of the round's time; the answers that came late
            // are asked for again next round.
            let left = settings.timeout.saturating_sub(started.elapsed());
            match conn.lookups(&wanted, left) {
                Ok(answers) => {
                    let stats = &self.shared.stats;
                    for (id, lookup) in wanted.iter().zip(answers) {
                        if self.jobspecs.keep(*id, lookup) {
                            stats.jobspecs_read.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                // The round's answers stand; the jobs wait for their jobspecs.
                Err(e) => extra_failed(&mut self.conn, "reading jobspecs", &e),
            }
        }
        // Only jobs that have waited past --stuck-after need their queue's status.
        let clock = answers.recorded_at.unwrap_or_else(Utc::now);
        let now = clock.timestamp_micros() as f64 / 1e6;
        let old = listing.queues_waiting_longer_than(now, settings.stuck_after);
        let mut stopped_queues = BTreeSet::new();
        if let (false, Some(conn)) = (old.is_empty(), self.conn.as_mut()) {
            let left = settings.timeout.saturating_sub(started.elapsed());
            match conn.queues_started(&old, left) {
                Ok(started) => {
                    for (queue, started) in old.into_iter().zip(started) {
                        if started == Some(false) {
                            stopped_queues.insert(queue);
                        }
                    }
                }
                Err(e) => extra_failed(&mut self.conn, "reading the status of queues", &e),
            }
        }
        let demand = DemandInputs {
            shapes: Some(&self.jobspecs.shapes),
            stuck_after: settings.stuck_after,
            stopped_queues: Some(&stopped_queues),
            room_after: Duration::from_millis(self.shared.room_after_ms.load(Ordering::Acquire)),
        };
        let mut snapshot = Snapshot::build(&answers, &listing, demand, Utc::now())?;
        self.shared
            .stats
            .jobs_without_jobspec
            .store(snapshot.jobs.unshaped, Ordering::Relaxed);
        snapshot.shrink_floor = self.shared.shrink_floor.load(Ordering::Acquire);
        let snapshot = Arc::new(snapshot);
        let took = started.elapsed();
        self.shared.stats.last_round_micros.store(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        tracing::debug!(took = ?took, "broker round");
        self.shared.latest.store(Some(Arc::new(Fresh {
            snapshot: Arc::clone(&snapshot),
            at: Instant::now(),
        })));
        Ok(snapshot)
    }
}

/// A failed RPC after a round's own answers (jobspecs, queue statuses): the round stands, the
/// failure is logged, and a lost connection is reopened on the next ask.
fn extra_failed(conn: &mut Option<Box<dyn Connection>>, what: &str, e: &RoundError) {
    tracing::warn!(error = %e.error, "{what} failed");
    if e.disconnected {
        *conn = None;
    }
}

fn connect(
    source: &Source,
    library: &mut Option<flux::Library>,
) -> Result<Box<dyn Connection>, BrokerError> {
    match source {
        Source::Replay(dir) => Ok(Box::new(Replay { dir: dir.clone() })),
        Source::Live { library: path, uri } => live(path.as_deref(), uri.as_deref(), None, library),
        Source::Record {
            library: path,
            uri,
            dir,
        } => live(path.as_deref(), uri.as_deref(), Some(dir.clone()), library),
    }
}

/// Loads the library (once) and opens a handle; with `tape`, every answer is also recorded.
fn live(
    path: Option<&std::path::Path>,
    uri: Option<&str>,
    tape: Option<std::path::PathBuf>,
    library: &mut Option<flux::Library>,
) -> Result<Box<dyn Connection>, BrokerError> {
    let lib = match library {
        Some(lib) => lib.clone(),
        None => {
            let lib =
                flux::Library::load(path).map_err(|e| BrokerError::Unavailable(e.to_string()))?;
            tracing::info!(version = lib.version(), path = %lib.path().display(), "loaded libflux-core");
            library.insert(lib).clone()
        }
    };
    let handle = flux::Handle::open(&lib, uri).map_err(|e| {
        let hint = if uri.is_none() && std::env::var_os("FLUX_URI").is_none() {
            " (FLUX_URI is unset: run inside a Flux instance, or pass --flux-uri)"
        } else {
            ""
        };
        BrokerError::Unavailable(format!("{e}{hint}"))
    })?;
    tracing::info!("connected to the Flux broker");
    Ok(Box::new(Live {
        handle,
        tape,
        taped_lookups: std::collections::BTreeMap::new(),
    }))
}
