//! The `flux-metrics-api` binary: parse flags, set up logging, run the command, map failures
//! to an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use flux_metrics::cli::{Cli, Command, LogFormat};
use flux_metrics::server::config::Config;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `get` prints for a person: only problems go to the log unless more is asked for.
    let quiet_get = matches!(cli.command, Command::Get(_)) && !(cli.log.verbose || cli.log.debug);
    let level = if quiet_get { "warn" } else { cli.log.filter() };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = match cli.command {
        Command::Version => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Get(args) => flux_metrics::cli::get::run(&args),
        Command::Certs(args) => flux_metrics::cli::certs::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Manifests(args) => {
            flux_metrics::cli::manifests::run(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Start(args) => start(*args).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("flux-metrics-api: {e:#}");
        ExitCode::FAILURE
    })
}

fn start(args: flux_metrics::cli::StartArgs) -> anyhow::Result<()> {
    let config = Config::try_from(args)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .thread_name("flux-metrics-api")
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot listen on {}:{}: {e}", config.host, config.port)
            })?;
        flux_metrics::run(config, listener, shutdown_signal()).await
    })
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
