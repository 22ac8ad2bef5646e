//! The one thread that talks to Flux, and the handle the rest of the server uses to ask it.
//!
//! `flux_t` is not thread-safe, so a dedicated OS thread opens, uses and drops the handle. Handlers
//! call [`Broker::snapshot`]: an answer younger than `max_age` is read lock-free from an
//! [`ArcSwapOption`]; otherwise the ask is queued and the thread answers every queued ask with one
//! round of RPCs. The broker therefore sees at most one round in flight and, with a cache, at
//! most one round per `max_age`, however many clients ask. Connection failures are retried with
//! backoff on the next ask; no ask waits longer than the RPC timeout.

mod connection;
mod fault;
mod jobspecs;
mod live;
mod replay;
mod worker;

pub use fault::{FAULT_FILE, Fault};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::sync::oneshot;

use crate::source::rlist::IdSet;
use crate::source::snapshot::{ParseError, Snapshot};
use crate::util::duration;
use worker::Worker;

/// RPC topic that drains ranks (owner only).
pub const TOPIC_DRAIN: &str = "resource.drain";
/// RPC topic that undrains ranks (owner only).
pub const TOPIC_UNDRAIN: &str = "resource.undrain";
/// RPC topic of a broker attribute.
pub const TOPIC_ATTR_GET: &str = "attr.get";

/// Where answers come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A live broker reached through libflux-core.
    Live {
        /// Path of libflux-core; `None` loads [`flux::DEFAULT_SONAME`] from the loader path.
        library: Option<PathBuf>,
        /// Broker URI; `None` lets flux use `FLUX_URI` (or its built-in default).
        uri: Option<String>,
    },
    /// Recorded answers in a directory, one `<topic>.json` file per RPC.
    Replay(PathBuf),
    /// A live broker, as [`Source::Live`], whose every answer is also written to `dir` as
    /// `<topic>.json`: what `flux-metrics-api record` makes for [`Source::Replay`].
    Record {
        /// As in [`Source::Live`].
        library: Option<PathBuf>,
        /// As in [`Source::Live`].
        uri: Option<String>,
        /// Where the answers are written.
        dir: PathBuf,
    },
}

impl Source {
    /// A one-line description for logs and `/readyz`.
    pub fn describe(&self) -> String {
        match self {
            Source::Live { uri: Some(u), .. } => format!("live Flux broker at {u}"),
            Source::Live { uri: None, .. } => match std::env::var("FLUX_URI") {
                Ok(u) => format!("live Flux broker at {u} (FLUX_URI)"),
                Err(_) => "live Flux broker (FLUX_URI unset: flux's default URI)".into(),
            },
            Source::Replay(dir) => {
                format!(
                    "RECORDED answers replayed from {} (not a live broker)",
                    dir.display()
                )
            }
            Source::Record { library, uri, dir } => format!(
                "{}, recorded into {}",
                Source::Live {
                    library: library.clone(),
                    uri: uri.clone()
                }
                .describe(),
                dir.display()
            ),
        }
    }
}

/// Checks that `dir` holds a recorded answer for every RPC of a round (what a replayed round
/// reads, simulated faults aside), for a `--replay` directory given at start.
///
/// # Errors
/// The first answer missing or unreadable, naming its file.
pub fn check_replay(dir: &std::path::Path) -> Result<(), BrokerError> {
    replay::Replay {
        dir: dir.to_owned(),
    }
    .answers()
    .map(|_| ())
    .map_err(|e| e.error)
}

/// Settings of the broker thread.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where answers come from.
    pub source: Source,
    /// An answer younger than this is reused; zero asks the broker every time.
    pub max_age: Duration,
    /// Longest time one round of RPCs (and so one ask) may take.
    pub timeout: Duration,
    /// Most jobspecs read in one round ([`DEFAULT_JOBSPECS_PER_ROUND`]; `usize::MAX` for a
    /// one-shot command that wants them all at once).
    pub jobspecs_per_round: usize,
    /// `--stuck-after` ([`crate::source::snapshot::DEFAULT_STUCK_AFTER`]).
    pub stuck_after: Duration,
}

impl Settings {
    /// Settings reading `source` with these times, and the defaults of the demand model.
    pub fn new(source: Source, max_age: Duration, timeout: Duration) -> Settings {
        Settings {
            source,
            max_age,
            timeout,
            jobspecs_per_round: DEFAULT_JOBSPECS_PER_ROUND,
            stuck_after: crate::source::snapshot::DEFAULT_STUCK_AFTER,
        }
    }
}

/// Jobspecs a serving round reads at most, so that thousands of newly waiting jobs cost a few
/// rounds of a fraction of a second each instead of one long round that holds every answer back.
pub const DEFAULT_JOBSPECS_PER_ROUND: usize = 256;

/// Why there is no snapshot.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BrokerError {
    /// The broker cannot be reached (library missing, no broker, connection lost, no answer in
    /// time). Answered as 503.
    #[error("Flux broker unavailable: {0}")]
    Unavailable(String),
    /// The broker answered an RPC with an error. Answered as 500 with flux's message.
    #[error("Flux RPC {topic} failed: {message}")]
    Rpc {
        /// The RPC topic.
        topic: &'static str,
        /// Flux's error text.
        message: String,
    },
    /// An answer could not be parsed. Answered as 500.
    #[error(transparent)]
    Malformed(#[from] ParseError),
}

/// Why an owner-only RPC (`resource.drain`, `resource.undrain`) or the owner question failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminError {
    /// EPERM: only the instance owner may send it, and this server is not the owner.
    #[error("{topic}: {message} (only the Flux instance owner may send it)")]
    NotOwner {
        /// The RPC topic.
        topic: String,
        /// Flux's error text.
        message: String,
    },
    /// The broker answered with another error (a rank already drained, not drained, out of
    /// range...): the request did nothing.
    #[error("{topic}: {message}")]
    Refused {
        /// The RPC topic.
        topic: String,
        /// Flux's error text.
        message: String,
    },
    /// No answer: the broker cannot be reached, or did not answer in time. The request may or
    /// may not have been carried out.
    #[error(transparent)]
    Unavailable(BrokerError),
}

/// Counters describing the broker thread's work, read by `/readyz` and logs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Rounds of RPCs started.
    pub rounds: AtomicU64,
    /// Rounds (or connection attempts) that failed.
    pub failures: AtomicU64,
    /// Duration of the last successful round, in microseconds.
    pub last_round_micros: AtomicU64,
    /// Jobspecs read and understood (`job-info.lookup`), in all.
    pub jobspecs_read: AtomicU64,
    /// Runnable waiting jobs of the last round counted by their `job-list` entry, their
    /// jobspec not read yet (or unreadable).
    pub jobs_without_jobspec: AtomicU64,
}

struct Fresh {
    snapshot: Arc<Snapshot>,
    at: Instant,
}

struct Shared {
    latest: ArcSwapOption<Fresh>,
    last_error: ArcSwapOption<BrokerError>,
    stats: Stats,
    settings: Settings,
    description: String,
    /// Set while a background refresh is queued or running.
    refreshing: AtomicBool,
    /// Whether snapshots publish the desired size never below the safe size
    /// ([`Snapshot::shrink_floor`]): set while the drain-before-shrink loop runs.
    shrink_floor: AtomicBool,
    /// While the loop runs, its `--undrain-grace` in milliseconds: how long a job waits before
    /// it counts on this server's drains as room ([`DemandInputs::room_after`]).
    room_after_ms: AtomicU64,
}

struct Ask {
    at: Instant,
    /// `None` for a background refresh nobody waits for.
    reply: Option<oneshot::Sender<Result<Arc<Snapshot>, BrokerError>>>,
}

/// One RPC asked for by a custom metric script.
struct RawRpc {
    topic: String,
    payload: Option<String>,
    reply: mpsc::SyncSender<Result<String, String>>,
}

/// One owner-only RPC, or the owner question, for the drain-before-shrink loop.
struct AdminRpc {
    topic: &'static str,
    payload: String,
    reply: oneshot::Sender<Result<String, AdminError>>,
}

enum Msg {
    Ask(Ask),
    Rpc(RawRpc),
    Admin(AdminRpc),
    Stop,
}

/// A cheap, cloneable handle to the broker thread.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Broker {
    /// Starts the broker thread. It connects on the first ask, not here, so the server starts
    /// (and serves discovery and health) even when no broker is up.
    ///
    /// # Errors
    /// When the OS refuses to start a thread.
    pub fn start(settings: Settings) -> std::io::Result<Broker> {
        let description = settings.source.describe();
        let shared = Arc::new(Shared {
            latest: ArcSwapOption::empty(),
            last_error: ArcSwapOption::empty(),
            stats: Stats::default(),
            settings,
            description,
            refreshing: AtomicBool::new(false),
            shrink_floor: AtomicBool::new(false),
            room_after_ms: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let worker_shared = Arc::clone(&shared);
        // The worker (and the handle it opens) is created on the thread that uses it.
        let thread = std::thread::Builder::new()
            .name("flux-broker".into())
            .spawn(move || Worker::new(worker_shared).run(&rx))?;
        Ok(Broker {
            shared,
            tx,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// A snapshot no older than `max_age`, asking the broker if needed.
    ///
    /// # Errors
    /// [`BrokerError`]; never waits longer than the RPC timeout.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, BrokerError> {
        let now = Instant::now();
        let max_age = self.shared.settings.max_age;
        if let Some(fresh) = self.shared.latest.load().as_ref() {
            let age = now.duration_since(fresh.at);
            if age < max_age {
                return Ok(Arc::clone(&fresh.snapshot));
            }
            // Refresh in the background and keep answering with the previous answer while
            // the round runs, so that requests don't all stall on it when the cache expires;
            // never when caching is off, after a failed round, or for longer than max_age more.
            let healthy = self.shared.last_error.load().is_none();
            if !max_age.is_zero() && healthy && age < max_age * 2 {
                if !self.shared.refreshing.swap(true, Ordering::AcqRel)
                    && self
                        .tx
                        .send(Msg::Ask(Ask {
                            at: now,
                            reply: None,
                        }))
                        .is_err()
                {
                    return Err(BrokerError::Unavailable(
                        "the broker thread has stopped".into(),
                    ));
                }
                return Ok(Arc::clone(&fresh.snapshot));
            }
        }
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Msg::Ask(Ask {
                at: now,
                reply: Some(reply),
            }))
            .is_err()
        {
            return Err(BrokerError::Unavailable(
                "the broker thread has stopped".into(),
            ));
        }
        let timeout = self.shared.settings.timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(BrokerError::Unavailable(
                "the broker thread has stopped".into(),
            )),
            Err(_) => Err(BrokerError::Unavailable(format!(
                "no answer within {} (--flux-timeout)",
                duration::display(timeout)
            ))),
        }
    }

    /// The last successful snapshot, however old, without asking the broker.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.shared
            .latest
            .load()
            .as_ref()
            .map(|f| Arc::clone(&f.snapshot))
    }

    /// The error of the last round, if it failed.
    pub fn last_error(&self) -> Option<BrokerError> {
        self.shared
            .last_error
            .load()
            .as_ref()
            .map(|e| (**e).clone())
    }

    /// Counters of the broker thread.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Where answers come from, in words.
    pub fn description(&self) -> &str {
        &self.shared.description
    }

    /// Whether answers are recorded rather than live.
    pub fn is_replay(&self) -> bool {
        matches!(self.shared.settings.source, Source::Replay(_))
    }

    /// Sends one RPC through the broker thread and waits for its answer (JSON text), for custom
    /// metric scripts; blocks, so call it from a blocking thread. Never waits much longer than
    /// the RPC timeout.
    ///
    /// # Errors
    /// Flux's error message, or why the broker cannot be reached.
    pub fn rpc_blocking(&self, topic: &str, payload: Option<&str>) -> Result<String, String> {
        let (reply, rx) = mpsc::sync_channel(1);
        let msg = RawRpc {
            topic: topic.to_owned(),
            payload: payload.map(str::to_owned),
            reply,
        };
        self.tx
            .send(Msg::Rpc(msg))
            .map_err(|_| "the broker thread has stopped".to_owned())?;
        // A round may be running first: allow for it and for this RPC.
        let wait = self.shared.settings.timeout * 2 + Duration::from_millis(100);
        rx.recv_timeout(wait).map_err(|_| {
            format!(
                "{topic} got no answer within {} (--flux-timeout)",
                duration::display(self.shared.settings.timeout)
            )
        })?
    }

    /// Sends an RPC that may change the instance (or asks who owns it) through the broker
    /// thread, and waits for the answer (JSON text), at most about twice the RPC timeout (a
    /// round may be running first).
    ///
    /// # Errors
    /// [`AdminError`]: not the owner, refused, or no answer.
    async fn admin(&self, topic: &'static str, payload: String) -> Result<String, AdminError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || {
            AdminError::Unavailable(BrokerError::Unavailable(
                "the broker thread has stopped".into(),
            ))
        };
        self.tx
            .send(Msg::Admin(AdminRpc {
                topic,
                payload,
                reply,
            }))
            .map_err(|_| stopped())?;
        let timeout = self.shared.settings.timeout;
        match tokio::time::timeout(timeout * 2 + Duration::from_millis(100), rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(AdminError::Unavailable(BrokerError::Unavailable(format!(
                "{topic} got no answer within {} (--flux-timeout)",
                duration::display(timeout)
            )))),
        }
    }

    /// Drains `ranks` with `reason` (`resource.drain`, as `flux resource drain RANKS REASON`
    /// sends it: a rank already drained fails the whole request, so nobody's reason is ever
    /// overwritten).
    ///
    /// # Errors
    /// [`AdminError`].
    pub async fn drain(&self, ranks: &IdSet, reason: &str) -> Result<(), AdminError> {
        let payload = serde_json::json!({"targets": ranks.to_string(), "reason": reason});
        self.admin(TOPIC_DRAIN, payload.to_string()).await.map(drop)
    }

    /// Undrains `ranks` (`resource.undrain`; a rank not drained fails the whole request),
    /// with `reason` for the instance's resource eventlog.
    ///
    /// # Errors
    /// [`AdminError`].
    pub async fn undrain(&self, ranks: &IdSet, reason: &str) -> Result<(), AdminError> {
        let payload = serde_json::json!({"targets": ranks.to_string(), "reason": reason});
        self.admin(TOPIC_UNDRAIN, payload.to_string())
            .await
            .map(drop)
    }

    /// The uid that owns the instance: the broker attribute `security.owner` (`attr.get`).
    ///
    /// # Errors
    /// [`AdminError`], or [`AdminError::Refused`] for an answer that is not a uid.
    pub async fn owner(&self) -> Result<u32, AdminError> {
        let payload = serde_json::json!({"name": "security.owner"}).to_string();
        let answer = self.admin(TOPIC_ATTR_GET, payload).await?;
        let refused = |message: String| AdminError::Refused {
            topic: TOPIC_ATTR_GET.into(),
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(&answer).map_err(|e| refused(format!("malformed answer: {e}")))?;
        v.get("value")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| refused(format!("security.owner is not a uid: {answer}")))
    }

    /// Tells the snapshots whether the drain-before-shrink loop runs, with its undrain grace:
    /// while it does (`Some`), they publish the desired size never below the safe size and
    /// count a waiting job on the loop's drains as room only once it has waited the grace;
    /// `None`, as without the loop.
    pub fn set_shrink_loop(&self, undrain_grace: Option<Duration>) {
        let ms = undrain_grace.map_or(0, |g| u64::try_from(g.as_millis()).unwrap_or(u64::MAX));
        self.shared.room_after_ms.store(ms, Ordering::Release);
        self.shared
            .shrink_floor
            .store(undrain_grace.is_some(), Ordering::Release);
    }

    /// Stops the thread and waits for it (at most one round's timeout).
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::worker::BACKOFF_MAX;
    use super::*;
    use crate::util::scratch::TempDir;
    use std::path::Path;

    fn start(dir: &Path, max_age: Duration, timeout: Duration) -> Broker {
        Broker::start(Settings::new(
            Source::Replay(dir.to_owned()),
            max_age,
            timeout,
        ))
        .unwrap()
    }

    /// queue-constrained: the batch job waits behind the big one although the model places it.
    /// Past --stuck-after it needs a new node, unless its queue is stopped (read from the
    /// replayed `job-manager.queue-status.json`), which more nodes would not cure.
    #[tokio::test]
    async fn jobs_of_a_stopped_queue_are_never_taken_as_stuck() {
        let tmp = TempDir::with_scenario("queue-constrained");
        let dir = tmp.path();
        let settings = Settings {
            stuck_after: Duration::from_millis(500), // the recording is 1 s after submission
            ..Settings::new(
                Source::Replay(dir.to_owned()),
                Duration::ZERO,
                Duration::from_secs(5),
            )
        };
        let needed = |b: &Broker| {
            let b = b.clone();
            async move {
                b.snapshot()
                    .await
                    .unwrap()
                    .needed_size(Some("batch"))
                    .unwrap()
            }
        };
        let b = Broker::start(settings.clone()).unwrap();
        assert_eq!(needed(&b).await, 5);
        assert_eq!(b.stats().jobspecs_read.load(Ordering::Relaxed), 2);
        b.stop();
        std::fs::write(
            dir.join("job-manager.queue-status.json"),
            r#"{"batch": {"enable": true, "start": false}}"#,
        )
        .unwrap();
        let b = Broker::start(settings).unwrap();
        assert_eq!(needed(&b).await, 3);
        b.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_asks_share_one_round() {
        let tmp = TempDir::with_scenario("busy");
        let dir = tmp.path();
        let b = start(dir, Duration::from_secs(60), Duration::from_secs(5));
        let asks: Vec<_> = (0..500)
            .map(|_| {
                tokio::spawn({
                    let b = b.clone();
                    async move { b.snapshot().await }
                })
            })
            .collect();
        for a in asks {
            assert_eq!(a.await.unwrap().unwrap().nodes.up, 4);
        }
        assert_eq!(b.stats().rounds.load(Ordering::Relaxed), 1);
        b.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_cache_rounds_are_bounded_by_concurrency_not_asks() {
        let tmp = TempDir::with_scenario("busy");
        let dir = tmp.path();
        std::fs::write(dir.join(FAULT_FILE), "delay 20ms").unwrap();
        let b = start(dir, Duration::ZERO, Duration::from_secs(5));
        let asks: Vec<_> = (0..200)
            .map(|_| {
                tokio::spawn({
                    let b = b.clone();
                    async move { b.snapshot().await }
                })
            })
            .collect();
        for a in asks {
            a.await.unwrap().unwrap();
        }
        // Asks queued during a round are all answered by the next one.
        let rounds = b.stats().rounds.load(Ordering::Relaxed);
        assert!(
            (1..=10).contains(&rounds),
            "{rounds} rounds for 200 concurrent asks"
        );
        b.stop();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_answers_are_refreshed_in_the_background_once() {
        let tmp = TempDir::with_scenario("busy");
        let dir = tmp.path();
        let max_age = Duration::from_millis(500);
        let b = start(dir, max_age, Duration::from_secs(5));
        let first = b.snapshot().await.unwrap();
        let rounds = || b.stats().rounds.load(Ordering::Relaxed);
        assert_eq!(rounds(), 1);
        std::fs::write(dir.join(FAULT_FILE), "delay 300ms").unwrap();
        tokio::time::sleep(max_age + Duration::from_millis(50)).await;
        // Expired but younger than twice max_age: every ask gets the previous answer rather than
        // waiting for the round that the first of them started (the answer that round brings is
        // a new snapshot, so an ask that waited would not get `first`). How fast that is, is
        // measured by scripts/bench.sh (BENCHMARKS.md), not here.
        for _ in 0..50 {
            let s = b.snapshot().await.unwrap();
            assert!(Arc::ptr_eq(&s, &first));
        }
        // The refresh lands: a new answer, from one round for the 50 asks.
        let refreshed = async {
            loop {
                let s = b.snapshot().await.unwrap();
                if !Arc::ptr_eq(&s, &first) {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let second = tokio::time::timeout(Duration::from_secs(10), refreshed)
            .await
            .expect("the background refresh never landed");
        assert!(!Arc::ptr_eq(&second, &first));
        assert_eq!(rounds(), 2, "one refresh for 50 asks");

        // Past twice max_age nothing stale is served: the ask waits for its round.
        std::fs::write(dir.join(FAULT_FILE), "unavailable").unwrap();
        tokio::time::sleep(max_age * 2 + Duration::from_millis(50)).await;
        assert!(b.snapshot().await.is_err());
        b.stop();
    }

    #[tokio::test]
    async fn broker_faults_come_and_go() {
        let tmp = TempDir::with_scenario("idle");
        let dir = tmp.path();
        let b = start(dir, Duration::ZERO, Duration::from_millis(300));
        assert!(b.snapshot().await.is_ok());

        std::fs::write(dir.join(FAULT_FILE), "unavailable").unwrap();
        let e = b.snapshot().await.unwrap_err();
        assert!(matches!(e, BrokerError::Unavailable(_)), "{e}");
        assert_eq!(b.last_error(), Some(e));

        std::fs::write(dir.join(FAULT_FILE), "hang").unwrap();
        tokio::time::sleep(BACKOFF_MAX).await;
        // A timeout error, not a hang: the deadline is the broker's own.
        let e = tokio::time::timeout(Duration::from_secs(10), b.snapshot())
            .await
            .expect("an ask of a hanging broker never ended")
            .unwrap_err();
        assert!(e.to_string().contains("no answer within 300ms"), "{e}");

        std::fs::write(dir.join(FAULT_FILE), "error Function not implemented").unwrap();
        tokio::time::sleep(BACKOFF_MAX + Duration::from_millis(400)).await;
        let e = b.snapshot().await.unwrap_err();
        assert!(
            matches!(&e, BrokerError::Rpc { message, .. } if message == "Function not implemented"),
            "{e}"
        );

        // The broker comes back: answers resume after at most one backoff period.
        std::fs::remove_file(dir.join(FAULT_FILE)).unwrap();
        tokio::time::sleep(BACKOFF_MAX).await;
        assert_eq!(b.snapshot().await.unwrap().nodes.up, 4);
        assert_eq!(b.last_error(), None);
        b.stop();
    }

    #[tokio::test]
    async fn drains_and_undrains_are_replayed_into_resource_status() {
        let tmp = TempDir::with_scenario("drained"); // rank 3: "maintenance window"
        let dir = tmp.path();
        let b = start(dir, Duration::ZERO, Duration::from_secs(5));
        let ids = |s: &str| IdSet::parse(s).unwrap();
        let refused = |r: Result<(), AdminError>| match r {
            Err(AdminError::Refused { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(b.drain(&ids("2-3"), "x").await),
            "rank 3 already drained or excluded"
        );
        assert_eq!(
            refused(b.drain(&ids("7"), "x").await),
            "idset is out of range"
        );
        b.drain(&ids("1-2"), "flux-metrics-api: shrinking to 1")
            .await
            .unwrap();
        let s = b.snapshot().await.unwrap();
        assert_eq!(s.drained.to_string(), "1-3");
        assert_eq!(s.shrink_drains, [(ids("1-2"), 1)]);
        assert_eq!(
            refused(b.undrain(&ids("0-1"), "y").await),
            "rank 0 not drained"
        );
        b.undrain(&ids("1"), "y").await.unwrap();
        let s = b.snapshot().await.unwrap();
        assert_eq!(
            (s.drained.to_string(), s.shrink_drains.len()),
            ("2-3".into(), 1)
        );
        // The owner: unknown without a recorded answer; with one, EPERM for anyone else.
        assert!(matches!(b.owner().await, Err(AdminError::Refused { .. })));
        let me = crate::util::process::uid().unwrap();
        std::fs::write(dir.join("attr.get.json"), format!(r#"{{"value": "{me}"}}"#)).unwrap();
        assert_eq!(b.owner().await, Ok(me));
        b.undrain(&ids("2"), "y").await.unwrap();
        let other = me.wrapping_add(1);
        std::fs::write(
            dir.join("attr.get.json"),
            format!(r#"{{"value": "{other}"}}"#),
        )
        .unwrap();
        assert!(matches!(
            b.drain(&ids("2"), "x").await,
            Err(AdminError::NotOwner { .. })
        ));
        // A broker that cannot be reached: no answer, whatever was asked.
        std::fs::write(dir.join(FAULT_FILE), "unavailable").unwrap();
        assert!(matches!(
            b.undrain(&ids("3"), "y").await,
            Err(AdminError::Unavailable(_))
        ));
        b.stop();
        let status = std::fs::read_to_string(dir.join("resource.status.json")).unwrap();
        assert!(status.contains("maintenance window"), "{status}");
    }

    #[tokio::test]
    async fn missing_library_is_unavailable_with_a_hint() {
        let b = Broker::start(Settings::new(
            Source::Live {
                library: Some("/nonexistent/libflux-core.so.2".into()),
                uri: None,
            },
            Duration::from_secs(1),
            Duration::from_secs(2),
        ))
        .unwrap();
        let e = b.snapshot().await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, BrokerError::Unavailable(_)), "{text}");
        assert!(
            text.contains("/nonexistent/libflux-core.so.2") && text.contains("--flux-core-lib"),
            "{text}"
        );
        b.stop();
    }
}
