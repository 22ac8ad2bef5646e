//! Flags into configs: the only place the command line is checked. Each `TryFrom` turns the
//! raw clap arguments of one command into the validated settings of the layer that runs it.

use std::time::Duration;

use anyhow::{Context, bail};

use super::{BrokerArgs, CustomArgs, DEFAULT_API_PATH, LiveArgs, StartArgs};
use crate::server::config::{AuthSource, Config, Limits, TlsSource};
use crate::server::pki::serving_names;
use crate::source::broker::{BrokerError, Settings, Source, check_replay};

impl TryFrom<&BrokerArgs> for Source {
    type Error = anyhow::Error;

    fn try_from(b: &BrokerArgs) -> anyhow::Result<Source> {
        match &b.replay {
            Some(dir) => {
                let meta = std::fs::metadata(dir).with_context(|| {
                    format!("--replay {}: cannot read the directory", dir.display())
                })?;
                if !meta.is_dir() {
                    bail!(
                        "--replay {}: not a directory of recorded broker answers",
                        dir.display()
                    );
                }
                if let Err(e) = check_replay(dir) {
                    let why = match e {
                        BrokerError::Rpc { message, .. } => message,
                        other => other.to_string(),
                    };
                    bail!(
                        "--replay {}: {why}\nRecord the answers of a live broker with \
                         `flux-metrics-api record {}` inside the Flux instance, or replay a \
                         scenario of example/scenarios/",
                        dir.display(),
                        dir.display()
                    );
                }
                Ok(Source::Replay(dir.clone()))
            }
            None => Ok(Source::from(&b.live)),
        }
    }
}

impl From<&LiveArgs> for Source {
    fn from(l: &LiveArgs) -> Source {
        Source::Live {
            library: l.flux_core_lib.clone(),
            uri: l.flux_uri.clone(),
        }
    }
}

/// Broker settings with no cache and every jobspec read in the first round (what one-shot
/// commands want) for `source`.
fn settings(source: Source, live: &LiveArgs) -> anyhow::Result<Settings> {
    if live.flux_timeout.is_zero() {
        bail!("--flux-timeout must be more than 0");
    }
    Ok(Settings {
        jobspecs_per_round: usize::MAX,
        ..Settings::new(source, Duration::ZERO, live.flux_timeout)
    })
}

impl TryFrom<&BrokerArgs> for Settings {
    type Error = anyhow::Error;

    fn try_from(b: &BrokerArgs) -> anyhow::Result<Settings> {
        if b.stuck_after.is_zero() {
            bail!(
                "--stuck-after must be more than 0: it is how long a job may wait where the \
                 demand model says it fits before it counts as needing new nodes"
            );
        }
        Ok(Settings {
            stuck_after: b.stuck_after,
            ..settings(Source::try_from(b)?, &b.live)?
        })
    }
}

impl TryFrom<&LiveArgs> for Settings {
    type Error = anyhow::Error;

    fn try_from(l: &LiveArgs) -> anyhow::Result<Settings> {
        settings(Source::from(l), l)
    }
}

impl TryFrom<&CustomArgs> for crate::custom::Settings {
    type Error = anyhow::Error;

    /// The limits of custom metric scripts; `max_age` is left at its default for the caller.
    fn try_from(c: &CustomArgs) -> anyhow::Result<crate::custom::Settings> {
        if c.custom_metric_timeout.is_zero() {
            bail!("--custom-metric-timeout must be more than 0");
        }
        if c.custom_metric_max_memory < 1 << 20 {
            bail!("--custom-metric-max-memory must be at least 1MiB");
        }
        if let Some(bad) = c
            .custom_metric_allow_rpc
            .iter()
            .find(|t| t.is_empty() || t.contains(char::is_whitespace) || t.starts_with('*'))
        {
            bail!(
                "--custom-metric-allow-rpc {bad:?} is not a topic (e.g. job-manager.getattr, or job-manager.* for all of a service)"
            );
        }
        Ok(crate::custom::Settings {
            timeout: c.custom_metric_timeout,
            max_memory: c.custom_metric_max_memory,
            allow_rpc: c.custom_metric_allow_rpc.clone(),
            ..Default::default()
        })
    }
}

impl TryFrom<StartArgs> for Config {
    type Error = anyhow::Error;

    fn try_from(a: StartArgs) -> anyhow::Result<Config> {
        if a.history_interval < Duration::from_secs(1) {
            bail!("--history-interval must be at least 1s");
        }
        if a.history_retention < a.history_interval {
            bail!("--history-retention must be at least --history-interval");
        }
        let custom = crate::custom::Settings::try_from(&a.custom)?;
        let tls = match (a.ssl_certfile, a.ssl_keyfile, a.insecure_http) {
            (_, _, true) => TlsSource::Plain,
            (Some(cert), Some(key), false) => TlsSource::Files { cert, key },
            (None, None, false) => {
                TlsSource::SelfSigned(serving_names(&a.namespace, &a.service_name))
            }
            (Some(_), None, false) => bail!("--ssl-certfile was given without --ssl-keyfile"),
            (None, Some(_), false) => bail!("--ssl-keyfile was given without --ssl-certfile"),
        };
        let api_path = a.api_path.trim_end_matches('/');
        if !api_path.starts_with('/') {
            bail!("--api-path {:?} must start with /", a.api_path);
        }
        let api_alias = (api_path != DEFAULT_API_PATH).then(|| api_path.to_owned());
        if a.threads == 0 {
            bail!("--threads must be at least 1");
        }
        if a.max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        if a.max_connections_per_address == 0 {
            bail!("--max-connections-per-address must be at least 1");
        }
        for (flag, d) in [
            ("--handshake-timeout", a.handshake_timeout),
            ("--header-timeout", a.header_timeout),
            ("--idle-timeout", a.idle_timeout),
            ("--write-timeout", a.write_timeout),
        ] {
            if d.is_zero() {
                bail!("{flag} must be more than 0");
            }
        }
        let auth = match (
            a.authentication_from_cluster,
            a.client_ca_file,
            a.requestheader_client_ca_file,
        ) {
            (true, _, _) => AuthSource::Cluster {
                kubeconfig: a.authentication_kubeconfig,
            },
            (false, None, None) => {
                if !a.requestheader_allowed_names.is_empty() {
                    bail!("--requestheader-allowed-names needs --requestheader-client-ca-file");
                }
                AuthSource::Open
            }
            (false, client_ca, requestheader_ca) => AuthSource::Files {
                client_ca,
                requestheader_ca,
                allowed_names: a
                    .requestheader_allowed_names
                    .into_iter()
                    .filter(|n| !n.is_empty())
                    .collect(),
            },
        };
        if auth != AuthSource::Open && tls == TlsSource::Plain {
            bail!("client certificate authentication needs HTTPS: drop --insecure-http");
        }
        let mut broker = Settings::try_from(&a.broker)?;
        if a.allow_writes && !matches!(broker.source, Source::Replay(_)) {
            bail!(
                "--allow-writes needs --replay DIR: rehearsal values override recorded answers, \
                 never a live broker's (an HPA would scale a real cluster on invented numbers)"
            );
        }
        broker.max_age = if a.no_cache {
            Duration::ZERO
        } else {
            a.max_age
        };
        // A server reads new jobspecs a few hundred a round, so that no round waits long.
        broker.jobspecs_per_round = crate::source::broker::DEFAULT_JOBSPECS_PER_ROUND;
        Ok(Config {
            host: a.host,
            port: a.port,
            tls,
            api_alias,
            broker,
            limits: Limits {
                max_connections: a.max_connections,
                max_connections_per_address: a.max_connections_per_address,
                handshake_timeout: a.handshake_timeout,
                header_timeout: a.header_timeout,
                idle_timeout: a.idle_timeout,
                write_timeout: a.write_timeout,
                shutdown_grace: a.shutdown_grace,
            },
            auth,
            threads: a.threads,
            custom_metrics: a.custom.custom_metric,
            custom,
            history_interval: a.history_interval,
            history_retention: a.history_retention,
            api_token_file: a.api_token_file,
            shrink: a
                .drain_before_shrink
                .then_some(crate::source::shrink::Settings {
                    shrink_delay: a.shrink_delay,
                    undrain_grace: a.undrain_grace,
                    ..Default::default()
                }),
            allow_writes: a.allow_writes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::{CommandFactory, Parser};
    use std::path::PathBuf;

    fn start(args: &[&str]) -> anyhow::Result<Config> {
        let mut argv = vec!["flux-metrics-api", "start"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Start(s) => Config::try_from(*s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn python_command_line_still_works() {
        let c = start(&[
            "--port",
            "8443",
            "--ssl-certfile",
            "/etc/certs/tls.crt",
            "--ssl-keyfile",
            "/etc/certs/tls.key",
            "--namespace",
            "flux-operator",
            "--service-name",
            "custom-metrics-apiserver",
        ])
        .unwrap();
        assert_eq!(c.port, 8443);
        assert_eq!(
            c.tls,
            TlsSource::Files {
                cert: "/etc/certs/tls.crt".into(),
                key: "/etc/certs/tls.key".into()
            }
        );
        assert_eq!(c.api_alias, None);
        assert_eq!(c.broker.max_age, Duration::from_secs(1));
    }

    #[test]
    fn self_signed_names_cover_the_service() {
        let c = start(&["--namespace", "ns", "--service-name", "svc"]).unwrap();
        let TlsSource::SelfSigned(names) = c.tls else {
            panic!()
        };
        for n in [
            "svc",
            "svc.ns",
            "svc.ns.svc",
            "svc.ns.svc.cluster.local",
            "localhost",
            "127.0.0.1",
        ] {
            assert!(names.iter().any(|x| x == n), "{n}");
        }
    }

    #[test]
    fn key_without_cert_is_an_error() {
        let e = start(&["--ssl-keyfile", "k.pem"]).unwrap_err();
        assert!(e.to_string().contains("without --ssl-certfile"), "{e}");
        let e = start(&["--ssl-certfile", "c.pem"]).unwrap_err();
        assert!(e.to_string().contains("without --ssl-keyfile"), "{e}");
    }

    #[test]
    fn no_cache_means_max_age_zero_and_refuses_a_max_age() {
        assert_eq!(
            start(&["--no-cache"]).unwrap().broker.max_age,
            Duration::ZERO
        );
        assert_eq!(
            start(&["--max-age", "250ms"]).unwrap().broker.max_age,
            Duration::from_millis(250)
        );
        let e = start(&["--no-cache", "--max-age", "3s"]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("--no-cache") && text.contains("--max-age"),
            "{text}"
        );
    }

    #[test]
    fn api_path_alias_only_when_not_standard() {
        assert_eq!(
            start(&["--api-path", "/apis/custom.metrics.k8s.io/v1beta2/"])
                .unwrap()
                .api_alias,
            None
        );
        assert_eq!(
            start(&["--api-path", "/metrics/api"])
                .unwrap()
                .api_alias
                .as_deref(),
            Some("/metrics/api")
        );
        assert!(start(&["--api-path", "relative"]).is_err());
    }

    #[test]
    fn replay_dir_must_exist() {
        let e = start(&["--replay", "/nonexistent/dir"]).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/dir"), "{e:#}");
    }

    #[test]
    fn replay_dir_without_answers_names_the_missing_file() {
        let dir = std::env::temp_dir().join(format!("flux-metrics-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = start(&["--replay", dir.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        let _ = std::fs::remove_dir_all(&dir);
        // The current name of the RPC, not the one before flux-core 0.49, and what to do.
        assert!(e.contains("resource.sched-status.json"), "{e}");
        assert!(!e.contains("sched.resource-status"), "{e}");
        assert!(e.contains("flux-metrics-api record"), "{e}");
    }

    #[test]
    fn writes_are_allowed_with_replay_only() {
        let replay = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/idle");
        assert!(
            start(&["--replay", replay, "--allow-writes"])
                .unwrap()
                .allow_writes
        );
        assert!(!start(&["--replay", replay]).unwrap().allow_writes);
        let e = start(&["--allow-writes"]).unwrap_err().to_string();
        assert!(e.contains("--allow-writes needs --replay"), "{e}");
    }

    #[test]
    fn custom_metric_files_and_timeout() {
        let c = start(&["--custom-metric", "a.rhai", "--custom-metric", "b.rhai"]).unwrap();
        assert_eq!(
            c.custom_metrics,
            [PathBuf::from("a.rhai"), PathBuf::from("b.rhai")]
        );
        assert_eq!(c.custom.timeout, Duration::from_secs(2));
        assert_eq!(c.custom.max_memory, 32 << 20);
        assert!(c.custom.allow_rpc.is_empty());
        assert!(start(&["--custom-metric-timeout", "0s"]).is_err());
        assert!(start(&["--custom-metric-max-memory", "100KiB"]).is_err());
        let c = start(&[
            "--custom-metric-max-memory",
            "8MiB",
            "--custom-metric-allow-rpc",
            "job-manager.getattr,kvs.*",
        ])
        .unwrap();
        assert_eq!(c.custom.max_memory, 8 << 20);
        assert_eq!(c.custom.allow_rpc, ["job-manager.getattr", "kvs.*"]);
        assert!(start(&["--custom-metric-allow-rpc", "*"]).is_err());
    }

    #[test]
    fn authentication_flags() {
        assert_eq!(start(&[]).unwrap().auth, AuthSource::Open);
        let c = start(&[
            "--requestheader-client-ca-file",
            "/rh.crt",
            "--requestheader-allowed-names",
            "front-proxy-client,aggregator",
        ])
        .unwrap();
        assert_eq!(
            c.auth,
            AuthSource::Files {
                client_ca: None,
                requestheader_ca: Some("/rh.crt".into()),
                allowed_names: vec!["front-proxy-client".into(), "aggregator".into()],
            }
        );
        assert_eq!(
            start(&["--authentication-from-cluster"]).unwrap().auth,
            AuthSource::Cluster { kubeconfig: None }
        );
        assert_eq!(
            start(&[
                "--authentication-from-cluster",
                "--authentication-kubeconfig",
                "/k/config"
            ])
            .unwrap()
            .auth,
            AuthSource::Cluster {
                kubeconfig: Some("/k/config".into())
            }
        );
        // The kubeconfig only says how to read the ConfigMap: alone it would be a no-op.
        let e = start(&["--authentication-kubeconfig", "/k/config"]).unwrap_err();
        assert!(
            e.to_string().contains("--authentication-from-cluster"),
            "{e}"
        );
        assert!(start(&["--requestheader-allowed-names", "x"]).is_err());
        assert!(start(&["--client-ca-file", "/c.crt", "--insecure-http"]).is_err());
    }

    #[test]
    fn drain_before_shrink_is_off_by_default_and_its_delays_need_it() {
        assert_eq!(start(&[]).unwrap().shrink, None);
        let s = start(&["--drain-before-shrink"]).unwrap().shrink.unwrap();
        assert_eq!(
            (s.shrink_delay, s.undrain_grace),
            (Duration::from_secs(300), Duration::from_secs(30))
        );
        let s = start(&[
            "--drain-before-shrink",
            "--shrink-delay",
            "2m",
            "--undrain-grace",
            "0",
        ])
        .unwrap()
        .shrink
        .unwrap();
        assert_eq!(
            (s.shrink_delay, s.undrain_grace),
            (Duration::from_secs(120), Duration::ZERO)
        );
        let e = start(&["--shrink-delay", "2m"]).unwrap_err();
        assert!(e.to_string().contains("--drain-before-shrink"), "{e}");
    }
}
