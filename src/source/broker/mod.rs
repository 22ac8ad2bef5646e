//! The one thread that talks to Flux, and the handle the rest of the server uses to ask it.
//!
//! `flux_t` is not thread-safe, so a dedicated OS thread opens, uses and drops the handle. Handlers
//! call [`Broker::snapshot`]: an answer younger than `max_age` is read lock-free from an
//! [`ArcSwapOption`]; otherwise the ask is queued and the thread answers every queued ask with one
//! round of RPCs. The broker therefore sees at most one round in flight and, with a cache, at
//! most one round per `max_age`, however many clients ask. Connection failures are retried with
//! backoff on the next ask; no ask waits longer than the RPC timeout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use chrono::Utc;
use tokio::sync::oneshot;

use crate::util::duration;

use crate::source::snapshot::{
    Answers, ParseError, Snapshot, TOPIC_JOB_LIST, TOPIC_JOB_STATS, TOPIC_RESOURCE_STATUS,
    TOPIC_SCHED_STATUS, TOPIC_SCHED_STATUS_OLD, job_list_payload,
};

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
        }
    }
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
}

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

/// Counters describing the broker thread's work, read by `/readyz` and logs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Rounds of RPCs started.
    pub rounds: AtomicU64,
    /// Rounds (or connection attempts) that failed.
    pub failures: AtomicU64,
    /// Duration of the last successful round, in microseconds.
    pub last_round_micros: AtomicU64,
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

enum Msg {
    Ask(Ask),
    Rpc(RawRpc),
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

    /// Stops the thread and waits for it (at most one round's timeout).
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl crate::custom::Host for Broker {
    fn rpc(&self, topic: &str, payload: Option<&str>) -> Result<String, String> {
        self.rpc_blocking(topic, payload)
    }
}

/// Backoff between failed attempts: short, so that answers resume within about a second of the
/// broker coming back.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// One way of getting a round of answers (a live handle or a replay directory).
trait Connection {
    fn round(&mut self, timeout: Duration) -> Result<Answers, RoundError>;
    fn rpc(
        &mut self,
        topic: &str,
        payload: Option<&str>,
        timeout: Duration,
    ) -> Result<String, RoundError>;
}

/// A failed round: `disconnected` means the connection must be reopened.
struct RoundError {
    error: BrokerError,
    disconnected: bool,
}

struct Worker {
    shared: Arc<Shared>,
    library: Option<flux::Library>,
    conn: Option<Box<dyn Connection>>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Self {
        Worker {
            shared,
            library: None,
            conn: None,
            retry_at: None,
            backoff: BACKOFF_MIN,
        }
    }

    fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        let mut asks = Vec::new();
        let mut rpcs = Vec::new();
        while let Ok(msg) = rx.recv() {
            let mut stop = false;
            for msg in std::iter::once(msg).chain(rx.try_iter()) {
                match msg {
                    Msg::Ask(a) => asks.push(a),
                    Msg::Rpc(r) => rpcs.push(r),
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
        let snapshot = Arc::new(Snapshot::parse(&answers, Utc::now())?);
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

fn connect(
    source: &Source,
    library: &mut Option<flux::Library>,
) -> Result<Box<dyn Connection>, BrokerError> {
    match source {
        Source::Replay(dir) => Ok(Box::new(Replay { dir: dir.clone() })),
        Source::Live { library: path, uri } => {
            let lib = match library {
                Some(lib) => lib.clone(),
                None => {
                    let lib = flux::Library::load(path.as_deref())
                        .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
                    tracing::info!(version = lib.version(), path = %lib.path().display(), "loaded libflux-core");
                    library.insert(lib).clone()
                }
            };
            let handle = flux::Handle::open(&lib, uri.as_deref()).map_err(|e| {
                let hint = if uri.is_none() && std::env::var_os("FLUX_URI").is_none() {
                    " (FLUX_URI is unset: run inside a Flux instance, or pass --flux-uri)"
                } else {
                    ""
                };
                BrokerError::Unavailable(format!("{e}{hint}"))
            })?;
            tracing::info!("connected to the Flux broker");
            Ok(Box::new(Live { handle }))
        }
    }
}

struct Live {
    handle: flux::Handle,
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

impl Live {
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

impl Connection for Live {
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
        rpc.get(timeout).map_err(|e| fail(&e))
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
        let sched_status = match sched.get(left()) {
            Err(e) if is_enosys(&e) => send(TOPIC_SCHED_STATUS_OLD, None, 0)?
                .get(left())
                .map_err(|e| Live::fail(TOPIC_SCHED_STATUS_OLD, &e, timeout))?,
            other => other.map_err(|e| Live::fail(TOPIC_SCHED_STATUS, &e, timeout))?,
        };
        let get = |rpc: &flux::Rpc<'_>, topic| {
            rpc.get(left()).map_err(|e| Live::fail(topic, &e, timeout))
        };
        Ok(Answers {
            sched_status,
            resource_status: get(&status, TOPIC_RESOURCE_STATUS)?,
            job_stats: get(&stats, TOPIC_JOB_STATS)?,
            job_list: get(&list, TOPIC_JOB_LIST)?,
        })
    }
}

/// Recorded answers: `<dir>/<topic>.json`, read afresh each round so that edits show up.
struct Replay {
    dir: PathBuf,
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
        let sched_status = match self.read(TOPIC_SCHED_STATUS) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.answer(TOPIC_SCHED_STATUS_OLD)?
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

/// Name of the file in a replay directory that simulates a misbehaving broker (a testing aid).
pub const FAULT_FILE: &str = "fault";

/// A simulated broker fault, read from [`FAULT_FILE`] at the start of every replayed round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The broker is gone: rounds fail at once as a refused connection would.
    Unavailable,
    /// The broker accepts requests and never answers: rounds run into the timeout.
    Hang,
    /// The broker answers after a delay.
    Delay(Duration),
    /// The broker answers every RPC with this error.
    Error(String),
}

impl Fault {
    /// Parses the fault file: `unavailable`, `hang`, `delay <duration>` or `error <message>`.
    ///
    /// # Errors
    /// Text naming the accepted forms.
    pub fn parse(text: &str) -> Result<Fault, String> {
        let text = text.trim();
        let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        match (word, rest.trim()) {
            ("unavailable", "") => Ok(Fault::Unavailable),
            ("hang", "") => Ok(Fault::Hang),
            ("delay", d) => crate::util::duration::parse(d).map(Fault::Delay),
            ("error", m) if !m.is_empty() => Ok(Fault::Error(m.to_owned())),
            _ => Err(format!(
                "invalid fault {text:?}: write one of `unavailable`, `hang`, `delay <duration>`, `error <message>`"
            )),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario_copy(name: &str) -> PathBuf {
        use std::sync::atomic::AtomicUsize;
        static N: AtomicUsize = AtomicUsize::new(0);
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let dst = std::env::temp_dir().join(format!(
            "flux-metrics-broker-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dst).unwrap();
        for f in std::fs::read_dir(src).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
        }
        dst
    }

    fn start(dir: &Path, max_age: Duration, timeout: Duration) -> Broker {
        Broker::start(Settings {
            source: Source::Replay(dir.to_owned()),
            max_age,
            timeout,
        })
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_asks_share_one_round() {
        let dir = scenario_copy("busy");
        let b = start(&dir, Duration::from_secs(60), Duration::from_secs(5));
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
        let dir = scenario_copy("busy");
        std::fs::write(dir.join(FAULT_FILE), "delay 20ms").unwrap();
        let b = start(&dir, Duration::ZERO, Duration::from_secs(5));
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
        let dir = scenario_copy("busy");
        let b = start(&dir, Duration::from_millis(200), Duration::from_secs(5));
        let first = b.snapshot().await.unwrap();
        std::fs::write(dir.join(FAULT_FILE), "delay 300ms").unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Expired: the previous answer comes back at once while one round runs behind it.
        for _ in 0..50 {
            let started = Instant::now();
            let s = b.snapshot().await.unwrap();
            assert!(Arc::ptr_eq(&s, &first));
            assert!(
                started.elapsed() < Duration::from_millis(100),
                "{:?}",
                started.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(b.stats().rounds.load(Ordering::Relaxed), 2);
        let second = b.snapshot().await.unwrap();
        assert!(!Arc::ptr_eq(&second, &first));

        // Past twice max_age nothing stale is served: the ask waits for its round.
        std::fs::write(dir.join(FAULT_FILE), "unavailable").unwrap();
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(b.snapshot().await.is_err());
        b.stop();
    }

    #[tokio::test]
    async fn broker_faults_come_and_go() {
        let dir = scenario_copy("idle");
        let b = start(&dir, Duration::ZERO, Duration::from_millis(300));
        assert!(b.snapshot().await.is_ok());

        std::fs::write(dir.join(FAULT_FILE), "unavailable").unwrap();
        let e = b.snapshot().await.unwrap_err();
        assert!(matches!(e, BrokerError::Unavailable(_)), "{e}");
        assert_eq!(b.last_error(), Some(e));

        std::fs::write(dir.join(FAULT_FILE), "hang").unwrap();
        tokio::time::sleep(BACKOFF_MAX).await;
        let started = Instant::now();
        let e = b.snapshot().await.unwrap_err();
        assert!(e.to_string().contains("no answer within 300ms"), "{e}");
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );

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
    async fn missing_library_is_unavailable_with_a_hint() {
        let b = Broker::start(Settings {
            source: Source::Live {
                library: Some("/nonexistent/libflux-core.so.2".into()),
                uri: None,
            },
            max_age: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
        })
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

    #[test]
    fn fault_file_syntax() {
        assert_eq!(Fault::parse("hang\n"), Ok(Fault::Hang));
        assert_eq!(
            Fault::parse("delay 2s"),
            Ok(Fault::Delay(Duration::from_secs(2)))
        );
        assert_eq!(Fault::parse("error boom"), Ok(Fault::Error("boom".into())));
        assert!(Fault::parse("explode").is_err());
        assert!(Fault::parse("error").is_err());
    }
}
