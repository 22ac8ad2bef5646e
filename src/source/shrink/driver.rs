//! The drain-before-shrink loop at run time: once a second it asks for a snapshot (sharing the
//! broker cache with every request), feeds the decision ([`Shrinker`]) and sends its drains and
//! undrains through the broker thread. At start it checks that this server owns the Flux
//! instance (drains are owner-only); when it stops it undrains what it drained.
//!
//! It never crashes and never hammers the broker: a failed drain or undrain waits out a backoff
//! (1 s doubling to a minute) before the next one, and EPERM turns the loop off for good.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Decision, Observation, Settings, Shrinker, reason};
use crate::source::broker::{AdminError, Broker};
use crate::source::rlist::IdSet;
use crate::util::duration;

/// How often the loop looks: at most the default `--max-age`, so that it sees the answers the
/// HPA is served.
pub const TICK: Duration = Duration::from_secs(1);
/// First wait after a failed drain or undrain; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between two failing drains or undrains.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The reason recorded (in the resource eventlog) with an undrain for more nodes.
pub const UNDRAIN_REASON: &str = "flux-metrics-api: needed again";
/// The reason recorded with the undrains made when the server stops.
pub const STOP_REASON: &str = "flux-metrics-api: stopping";

/// What the loop is doing, in one line, for `/readyz` and the logs.
#[derive(Clone)]
pub struct Status(Arc<ArcSwap<String>>);

impl Status {
    /// A status that says `line` until the loop says more.
    pub fn new(line: &str) -> Self {
        Status(Arc::new(ArcSwap::from_pointee(line.to_owned())))
    }

    fn set(&self, line: String) {
        self.0.store(Arc::new(line));
    }

    /// The current line.
    pub fn line(&self) -> String {
        (**self.0.load()).clone()
    }
}

/// The running loop: [`Running::stop`] ends it and undrains this server's drains.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    status: Status,
}

impl Running {
    /// What the loop is doing.
    pub fn status(&self) -> Status {
        self.status.clone()
    }

    /// Stops the loop and undrains the ranks it drained, waiting no longer than `within`.
    pub async fn stop(mut self, within: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(within, &mut self.task).await.is_err() {
            tracing::warn!(
                "drain before shrink: the release of this server's drains did not finish in time; \
                 they stay drained (a restarted server recognises them)"
            );
            self.task.abort();
        }
    }
}

/// Starts the loop on `broker`; it reports what it does in `status`.
pub fn spawn(broker: Broker, settings: Settings, status: Status) -> Running {
    broker.set_shrink_loop(Some(settings.undrain_grace));
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(
        Loop {
            broker,
            shrinker: Shrinker::new(settings),
            status: status.clone(),
            owner_checked: false,
            off: false,
            last_taken: None,
            safe_size: 0,
            backoff: Backoff::new(),
            last_failure: None,
        }
        .run(stopped),
    );
    Running {
        stop: Some(stop),
        task,
        status,
    }
}

/// When the next drain or undrain may be sent after failures: 1 s after the first, doubling
/// up to a minute; any success starts over.
#[derive(Clone, Debug)]
struct Backoff {
    retry_at: Option<Instant>,
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            retry_at: None,
            next: BACKOFF_MIN,
        }
    }

    fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| now >= at)
    }

    /// Records a failure at `now`; answers how long the next attempt waits.
    fn failed(&mut self, now: Instant) -> Duration {
        let wait = self.next;
        self.retry_at = Some(now + wait);
        self.next = (wait * 2).min(BACKOFF_MAX);
        wait
    }

    fn succeeded(&mut self) {
        *self = Backoff::new();
    }
}

struct Loop {
    broker: Broker,
    shrinker: Shrinker,
    status: Status,
    owner_checked: bool,
    /// Not the owner: nothing is ever drained.
    off: bool,
    last_taken: Option<DateTime<Utc>>,
    safe_size: u64,
    backoff: Backoff,
    last_failure: Option<String>,
}

fn now_secs() -> f64 {
    Utc::now().timestamp_micros() as f64 / 1e6
}

impl Loop {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = ticks.tick() => {
                    tokio::select! {
                        _ = &mut stopped => break,
                        () = self.tick() => {}
                    }
                }
            }
        }
        self.release().await;
    }

    async fn tick(&mut self) {
        if self.off {
            return;
        }
        let snapshot = match self.broker.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                self.shrinker.forget();
                return self.status.set(format!(
                    "waiting: the broker cannot be asked ({e}); nothing is decided on stale data"
                ));
            }
        };
        if self.last_taken == Some(snapshot.taken_at) {
            return; // the same answer again: nothing new
        }
        self.last_taken = Some(snapshot.taken_at);
        self.safe_size = snapshot.nodes.safe_size;
        if !self.owner_checked {
            self.check_owner().await;
            if self.off {
                return;
            }
        }
        let needed = snapshot.needed_size(None).unwrap_or(snapshot.nodes.all);
        let obs = Observation::of(&snapshot, needed, snapshot.desired_size());
        self.shrinker.observe(obs);
        let decision = self.shrinker.decide();
        if !self.backoff.ready(Instant::now()) {
            return;
        }
        if !decision.undrain.is_empty() {
            let ranks = &decision.undrain;
            match self.broker.undrain(ranks, UNDRAIN_REASON).await {
                Ok(()) => {
                    tracing::info!(
                        ranks = %ranks,
                        needed,
                        "drain before shrink: undrained, the desired size stayed above them for --undrain-grace"
                    );
                    let sent = Decision {
                        undrain: ranks.clone(),
                        ..Decision::default()
                    };
                    self.succeeded(&sent);
                }
                Err(e) => return self.failed("undrain", ranks, &e),
            }
        }
        if !decision.drain.is_empty() {
            let ranks = &decision.drain;
            match self.broker.drain(ranks, &reason(decision.size)).await {
                Ok(()) => {
                    tracing::info!(
                        ranks = %ranks,
                        size = decision.size,
                        "drain before shrink: drained, the size Flux needs stayed below the current size for --shrink-delay"
                    );
                    let sent = Decision {
                        undrain: IdSet::default(),
                        ..decision.clone()
                    };
                    self.succeeded(&sent);
                }
                Err(e) => return self.failed("drain", ranks, &e),
            }
        }
        self.report();
    }

    fn report(&self) {
        let s = self.shrinker.settings();
        let ours = self.shrinker.ours();
        let mut line = format!(
            "on (--shrink-delay {}, --undrain-grace {}): ",
            duration::display(s.shrink_delay),
            duration::display(s.undrain_grace)
        );
        if ours.is_empty() {
            line.push_str("no rank drained for a shrink");
        } else {
            line.push_str(&format!("ranks {ours} drained for a shrink"));
        }
        line.push_str(&format!(
            "; the cluster can shrink to {} now",
            self.safe_size
        ));
        let released = self.shrinker.released();
        if !released.is_empty() {
            line.push_str(&format!(
                "; ranks {released} undrained by someone else, left alone until N drops"
            ));
        }
        if let Some(f) = &self.last_failure {
            line.push_str(&format!("; {f}"));
        }
        self.status.set(line);
    }

    fn succeeded(&mut self, sent: &Decision) {
        self.shrinker.sent(sent, now_secs());
        self.backoff.succeeded();
        self.last_failure = None;
    }

    fn failed(&mut self, what: &str, ranks: &IdSet, e: &AdminError) {
        if let AdminError::NotOwner { .. } = e {
            return self.not_owner(&e.to_string());
        }
        let wait = self.backoff.failed(Instant::now());
        let message = e.to_string();
        // Logged once per kind of failure, not once per retry.
        if self
            .last_failure
            .as_deref()
            .is_none_or(|f| !f.ends_with(&message))
        {
            tracing::warn!(error = %e, ranks = %ranks, retry_in = ?wait, "drain before shrink: {what} failed");
        }
        self.last_failure = Some(format!(
            "the last {what} of ranks {ranks} failed (next try in {}): {message}",
            duration::display(wait)
        ));
        self.report();
    }

    async fn check_owner(&mut self) {
        let uid = crate::util::process::uid();
        match (self.broker.owner().await, uid) {
            (Ok(owner), Some(uid)) if owner != uid => self.not_owner(&format!(
                "this server runs as uid {uid} and the Flux instance is owned by uid {owner}"
            )),
            (Ok(owner), _) => {
                self.owner_checked = true;
                tracing::info!(
                    owner,
                    "drain before shrink: on; this server owns the Flux instance"
                );
            }
            (Err(AdminError::Unavailable(e)), _) => {
                tracing::debug!(error = %e, "drain before shrink: owner check postponed");
            }
            (Err(e), _) => {
                self.owner_checked = true;
                tracing::info!(
                    error = %e,
                    "drain before shrink: on; cannot tell who owns the Flux instance, a refused drain will tell"
                );
            }
        }
    }

    fn not_owner(&mut self, why: &str) {
        self.off = true;
        self.owner_checked = true;
        self.broker.set_shrink_loop(None);
        tracing::warn!(
            "drain before shrink is OFF: {why}; drains are owner-only, so nothing is drained \
             (the metrics are served as without --drain-before-shrink)"
        );
        self.status.set(format!(
            "OFF: {why}; drains are owner-only, so nothing is drained (metrics are served as without --drain-before-shrink)"
        ));
    }

    /// Undrains this server's drains (the server stops): ranks drained for a shrink that will
    /// not be watched any more would stay out of use.
    async fn release(&mut self) {
        self.broker.set_shrink_loop(None);
        if self.off {
            return;
        }
        for attempt in 0..2 {
            let ours = match self.broker.snapshot().await {
                Ok(s) => super::Observation::of(&s, 0, 0)
                    .ours()
                    .union(&self.shrinker.ours()),
                Err(_) => self.shrinker.ours(),
            };
            if ours.is_empty() {
                return;
            }
            match self.broker.undrain(&ours, STOP_REASON).await {
                Ok(()) => {
                    return tracing::info!(ranks = %ours, "drain before shrink: stopping; undrained this server's drains");
                }
                // Someone undrained one meanwhile: look again, once.
                Err(AdminError::Refused { .. }) if attempt == 0 => {
                    self.last_taken = None;
                    tokio::time::sleep(TICK).await;
                }
                Err(e) => {
                    return tracing::warn!(
                        error = %e,
                        ranks = %ours,
                        "drain before shrink: stopping; could not undrain this server's drains: \
                         they stay drained until `flux resource undrain` or a restarted server lifts them"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_from_a_second_to_a_minute_and_a_success_starts_over() {
        let t0 = Instant::now();
        let mut b = Backoff::new();
        assert!(b.ready(t0));
        let waits: Vec<u64> = (0..9).map(|_| b.failed(t0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(!b.ready(t0 + Duration::from_secs(59)));
        assert!(b.ready(t0 + Duration::from_secs(60)));
        b.succeeded();
        assert!(b.ready(t0));
        assert_eq!(b.failed(t0), BACKOFF_MIN);
    }

    #[test]
    fn an_hour_of_failing_drains_is_at_most_a_few_dozen_rpcs() {
        // One attempt whenever the backoff allows, one look a second (TICK).
        let t0 = Instant::now();
        let mut b = Backoff::new();
        let attempts = (0..3600)
            .map(|s| t0 + Duration::from_secs(s))
            .filter(|&now| b.ready(now) && b.failed(now) > Duration::ZERO)
            .count();
        assert!(attempts <= 3600 / 60 + 7, "{attempts} attempts");
    }
}
