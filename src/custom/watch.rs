//! Reloading the files without a restart: when one changes (its modification time or size,
//! checked every second) and on SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use super::Custom;
use crate::util::stamp::stamps;

/// How often [`Custom::watch`] looks at the files' modification times and sizes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

impl Custom {
    /// Spawns a task that calls [`Custom::reload`] when a file's modification time or size
    /// changes (checked every second) and on SIGHUP. The task ends when the last other `Arc` of
    /// `self` is dropped.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn watch(self: &Arc<Self>) {
        let this = Arc::downgrade(self);
        let files = self.files.clone();
        let initial = self.stamps_at_load.clone();
        tokio::spawn(async move {
            let mut seen = initial;
            let mut hangup = Hangup::install();
            let mut tick = tokio::time::interval(WATCH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let reason = tokio::select! {
                    _ = tick.tick() => {
                        if this.strong_count() == 0 {
                            return;
                        }
                        let now = stamps(&files);
                        if now == seen {
                            continue;
                        }
                        seen = now;
                        "a file changed"
                    }
                    () = hangup.recv() => "SIGHUP",
                };
                let Some(custom) = this.upgrade() else { return };
                tracing::info!(reason, "reloading custom metric files");
                // Errors are logged by `reload`; the watcher carries on with the last good versions.
                let _already_logged = tokio::task::spawn_blocking(move || custom.reload()).await;
            }
        });
    }
}

/// SIGHUP as a stream of wake-ups; never fires where it cannot be installed.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn install() -> Hangup {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::hangup()) {
                Ok(s) => Hangup { signal: Some(s) },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; reloading on changes only");
                    Hangup { signal: None }
                }
            }
        }
        #[cfg(not(unix))]
        Hangup {}
    }

    /// Waits for the next SIGHUP.
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut() {
            if s.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await;
    }
}
