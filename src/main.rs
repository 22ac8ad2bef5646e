//! The `flux-metrics-api` binary: parse flags, set up logging, run the command, map failures
//! to an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use flux_metrics::cli::{self, Cli, Command, LogFormat};
use flux_metrics::server::config::Config;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log.merged(cli.command.log());
    // `get`, `record` and `check` print for a person and say every problem themselves: the log
    // adds only errors, unless more is asked for, so that nothing is said twice.
    let for_a_person = matches!(
        cli.command,
        Command::Get(_) | Command::Record(_) | Command::Check(_)
    );
    let quiet = for_a_person && !(log.verbose || log.debug);
    let level = if quiet { "error" } else { log.filter() };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match log.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let ok = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Version => {
            println!("flux-metrics-api {}", flux_metrics::util::version::long());
            Ok(ExitCode::SUCCESS)
        }
        Command::Get(args) => cli::get::run(&args),
        Command::Record(args) => ok(cli::record::run(&args)),
        Command::Check(args) => cli::check::run(*args),
        Command::Certs(args) => ok(cli::certs::run(&args)),
        Command::Manifests(args) => ok(cli::manifests::run(&args)),
        Command::Completions(args) => ok(cli::completions(&args)),
        Command::Start(args) => ok(start(*args)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("flux-metrics-api: {e:#}");
        ExitCode::FAILURE
    })
}

fn start(args: cli::StartArgs) -> anyhow::Result<()> {
    let config = Config::try_from(args)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One thread serving requests (the default) is a current-thread runtime: the accept loop and
    // the connections share it without the work-stealing scheduler's hand-offs (BENCHMARKS.md).
    let mut builder = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(config.threads);
        b
    };
    let runtime = builder
        .thread_name("flux-metrics-api")
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot listen on {}:{}: {e}", config.host, config.port)
            })?;
        flux_metrics::run(config, listener, shutdown_signal()).await
    });
    // `run` has waited out --shutdown-grace; a custom metric still blocked in `flux.rpc` (or
    // spinning towards its timeout) must not hold the exit, as dropping the runtime would.
    runtime.shutdown_background();
    result
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
