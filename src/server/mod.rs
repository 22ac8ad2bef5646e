//! The HTTPS front: [`run`] wires the server together (certificates, the router's [`state`]:
//! custom metrics and the broker thread, the history sampler, the router) and serves it with
//! the accept loop of `listener.rs`;
//! [`tls`] and [`trust`] hold the certificates and the client-certificate rules, [`cluster`]
//! reads them from Kubernetes (from outside a pod with a [`kubeconfig`]), [`pki`] makes and
//! reads certificates, and [`config`] is what `start` was asked to do.

pub mod cluster;
pub mod config;
pub mod kubeconfig;
mod listener;
pub mod pki;
mod slots;
pub mod tls;
pub mod trust;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::routes::{self, AppState, Inner};
use crate::custom::Custom;
use crate::ops::history::History;
use crate::ops::telemetry::Telemetry;
use crate::server::config::Config;
use crate::server::tls::TlsState;
use crate::source::broker::Broker;
use crate::source::catalogue::CATALOGUE;

/// Runs the server on `listener` until `shutdown` completes, then lets requests in flight finish
/// (within `--shutdown-grace`) and stops the broker thread.
///
/// # Errors
/// Startup failures: bad certificates, or a broker thread that cannot start.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = TlsState::load(config.tls.clone(), config.auth.clone()).await?;
    let reloader = tls.as_ref().map(TlsState::spawn_reloader);
    let state = state(&config)?;
    let broker = state.broker.clone();
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    tracing::info!(
        %addr,
        scheme = if tls.is_some() { "https" } else { "http" },
        source = broker.description(),
        max_age = ?config.broker.max_age,
        "serving the custom and external metrics APIs"
    );
    // Where a person opens the dashboard: this host's name for an address that means "every
    // interface" (through `kubectl port-forward`, localhost).
    let host = if addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        match addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    };
    tracing::info!(
        url = format!(
            "{}://{host}:{}/ui",
            if tls.is_some() { "https" } else { "http" },
            addr.port()
        ),
        "dashboard (docs/dashboard.md)"
    );
    if tls.is_none() {
        tracing::warn!(
            "--insecure-http: serving plain HTTP; kube-aggregator and the HPA need HTTPS"
        );
    }
    let shrink = config
        .shrink
        .zip(state.shrink.clone())
        .map(|(settings, status)| {
            crate::source::shrink::driver::spawn(broker.clone(), settings, status)
        });
    let leftovers = shrink
        .is_none()
        .then(|| tokio::spawn(warn_of_leftover_drains(broker.clone())));
    let sampler = tokio::spawn(crate::ops::history::sample(
        Arc::clone(&state.history),
        state.broker.clone(),
        state.custom.clone(),
        state.overrides.clone(),
    ));
    let app = routes::router(state);
    let grace_ends = listener::serve(listener, tls, app, config.limits, shutdown).await;
    sampler.abort();
    if let Some(r) = reloader {
        r.abort();
    }
    if let Some(l) = leftovers {
        l.abort();
    }
    if let Some(shrink) = shrink {
        // A snapshot and an undrain, each within --flux-timeout.
        shrink
            .stop(config.broker.timeout * 2 + Duration::from_secs(1))
            .await;
    }
    stop_broker(broker, grace_ends).await;
    tracing::info!("stopped");
    Ok(())
}

/// What the router serves for `config`: the `--custom-metric` files loaded and watched, the API
/// token read, the broker thread started, an empty history (which [`run`] samples), fresh
/// counters. Everything but the transport: the router-level tests build their state here too.
/// The broker thread runs until `state.broker.stop()`.
///
/// # Errors
/// A custom metric file that does not load, an unreadable token, a broker thread that cannot
/// start. Must be called inside a Tokio runtime (the file watcher is a task).
pub fn state(config: &Config) -> anyhow::Result<AppState> {
    let custom = load_custom(config)?;
    let api_token = read_token(config.api_token_file.as_deref())?;
    let broker = Broker::start(config.broker.clone()).context("starting the broker thread")?;
    if broker.is_replay() {
        tracing::warn!(
            source = broker.description(),
            "REPLAY MODE: serving recorded answers, not live Flux state"
        );
    }
    let overrides = config.allow_writes.then(|| {
        tracing::warn!(
            "REHEARSAL: --allow-writes: POST /write-metrics/<path of a read> overrides that value until the server stops"
        );
        Arc::new(crate::ops::rehearsal::Overrides::default())
    });
    let history = Arc::new(History::new(
        config.history_interval,
        config.history_retention,
    ));
    Ok(AppState::new(Inner {
        broker,
        api_alias: config.api_alias.clone(),
        telemetry: Telemetry::default(),
        custom,
        history,
        api_token,
        discovery: Default::default(),
        shrink: config.shrink.map(|_| {
            crate::source::shrink::driver::Status::new(
                "starting: waiting for the broker's first answer",
            )
        }),
        overrides,
        answers: Default::default(),
    }))
}

/// Stops the broker thread, waiting for it no later than the end of the grace period (and at
/// least a moment): a round stuck on a hanging broker must not hold the exit for a whole
/// `--flux-timeout`. A thread of its own rather than `spawn_blocking`, because dropping the
/// runtime waits for blocking tasks.
async fn stop_broker(broker: Broker, grace_ends: Instant) {
    let (done, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopper = std::thread::Builder::new()
        .name("flux-broker-stop".into())
        .spawn(move || {
            broker.stop();
            let _ = done.send(());
        });
    if stopper.is_err() {
        return tracing::warn!(
            "cannot start a thread to stop the broker thread; not waiting for it"
        );
    }
    let wait = grace_ends
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    if tokio::time::timeout(wait, stopped).await.is_err() {
        tracing::warn!("the broker thread is still in a round of RPCs; not waiting for it");
    }
}

/// Without `--drain-before-shrink`, drains an earlier run made for a shrink are left alone (a
/// server that was not asked to drain never changes the instance); says so once, with what to
/// do. They exist only when that run could not undrain them as it stopped.
async fn warn_of_leftover_drains(broker: Broker) {
    let Ok(snapshot) = broker.snapshot().await else {
        return;
    };
    let ranks =
        crate::source::rlist::IdSet::union_all(snapshot.shrink_drains.iter().map(|(r, _)| r));
    if !ranks.is_empty() {
        tracing::warn!(
            ranks = %ranks,
            "ranks drained for a shrink by an earlier run with --drain-before-shrink are still drained; \
             this server (without the flag) leaves them: `flux resource undrain {ranks}` returns them, \
             or start with --drain-before-shrink"
        );
    }
}

/// Reads the `--api-token-file` token.
///
/// # Errors
/// An unreadable or empty file.
pub fn read_token(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading --api-token-file {}", path.display()))?;
    let token = token.trim();
    if token.is_empty() {
        anyhow::bail!("--api-token-file {} is empty", path.display());
    }
    Ok(Some(token.to_owned()))
}

/// Loads the `--custom-metric` files of `config` as the server does at start, without watching
/// them (`check` loads them so too).
///
/// # Errors
/// A file that cannot be read or does not load (see [`Custom::load`]).
pub fn custom_metrics(config: &Config) -> anyhow::Result<Option<Custom>> {
    if config.custom_metrics.is_empty() {
        return Ok(None);
    }
    let builtins: Vec<&str> = CATALOGUE.iter().map(|m| m.name).collect();
    let settings = crate::custom::Settings {
        max_age: config.broker.max_age,
        ..config.custom.clone()
    };
    Custom::load(&config.custom_metrics, &builtins, settings).map(Some)
}

/// Loads the `--custom-metric` files and watches them for edits.
fn load_custom(config: &Config) -> anyhow::Result<Option<Arc<Custom>>> {
    let Some(custom) = custom_metrics(config)? else {
        return Ok(None);
    };
    let custom = Arc::new(custom);
    tracing::info!(metrics = ?custom.names(), "loaded custom metrics");
    custom.watch();
    Ok(Some(custom))
}
