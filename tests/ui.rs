//! The dashboard in a real browser: headless Chromium loads `/ui` from a server replaying the
//! `gpus-queues` scenario over plain HTTP, the test checks the values, the per-queue table and
//! the charts in the rendered DOM, then saves screenshots at laptop and phone sizes as test
//! artifacts (`target/ui-screenshot.png`, `target/ui-screenshot-phone.png`).
//!
//! Without `chromium` (or `chromium-browser`) on PATH the test prints one SKIPPED line and passes:
//! `.ci/ui-deps.sh` installs it in CI.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::bin::{Output, Process};
use common::{Server, TempDir};
use flux_metrics::server::config::TlsSource;

/// Longest a single Chromium run may take before it is killed.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// The first of `chromium`, `chromium-browser` found on PATH.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Runs headless Chromium on `url` with `extra` flags and a fresh profile, killing it after
/// [`BROWSER_TIMEOUT`]. Panics when it fails or takes too long.
fn chromium(browser: &Path, url: &str, extra: &[&str]) -> Output {
    let dir = TempDir::new("chromium");
    let profile = dir.path().join("profile");
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--virtual-time-budget=8000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url);
    // Output is collected while it runs: a DOM larger than a pipe's buffer cannot block it.
    let run = Process::spawn(cmd).finish(BROWSER_TIMEOUT);
    run.assert_success();
    run
}

/// The start tag (attributes) and the text right after it, of the first element whose start
/// tag holds every `name="value"` of `attrs`. Only the markup before the page's script counts.
fn element<'a>(dom: &'a str, attrs: &[(&str, &str)]) -> Option<(&'a str, &'a str)> {
    let markup = dom.split("<script").next().unwrap_or(dom);
    markup.split('<').find_map(|piece| {
        let (tag, text) = piece.split_once('>')?;
        attrs
            .iter()
            .all(|(k, v)| tag.contains(&format!(" {k}=\"{v}\"")))
            .then_some((tag, text))
    })
}

/// The text of the element whose start tag holds every attribute of `attrs`.
fn text_of<'a>(dom: &'a str, attrs: &[(&str, &str)]) -> &'a str {
    element(dom, attrs)
        .unwrap_or_else(|| panic!("no element with {attrs:?} in the rendered page:\n{dom}"))
        .1
        .trim()
}

/// The value of attribute `name` in the start tag `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[start..].split('"').next()
}

/// Checks that the screenshot at `path` is a PNG of some substance.
fn assert_png(path: &Path) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert!(
        bytes.len() > 20_000,
        "{} is only {} bytes: an empty page?",
        path.display(),
        bytes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_renders_in_headless_chromium() {
    let Some(browser) = find_chromium() else {
        let _ = std::io::stderr().write_all(
            b"SKIPPED tests/ui.rs: no chromium or chromium-browser on PATH (bash .ci/ui-deps.sh installs it)\n",
        );
        return;
    };
    let server = Server::start("gpus-queues", |c| {
        c.tls = TlsSource::Plain;
        c.history_interval = Duration::from_secs(1);
    })
    .await;
    // A few history samples for the charts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let url = format!("http://{}/ui", server.addr);

    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).expect("creating target/");
    let laptop = target.join("ui-screenshot.png");
    let phone = target.join("ui-screenshot-phone.png");
    for shot in [&laptop, &phone] {
        let _ = std::fs::remove_file(shot);
    }

    let (dom, shots) = tokio::task::spawn_blocking(move || {
        let dom = chromium(&browser, &url, &["--dump-dom"]).stdout;
        for (shot, size) in [(&laptop, "1280,900"), (&phone, "390,844")] {
            chromium(
                &browser,
                &url,
                &[
                    &format!("--screenshot={}", shot.display()),
                    &format!("--window-size={size}"),
                ],
            );
        }
        (dom, [laptop, phone])
    })
    .await
    .expect("the browser task panicked");

    // Header: recorded answers, a connected broker.
    let (badge, _) = element(&dom, &[("id", "recorded")]).expect("no RECORDED badge");
    assert!(
        !badge.contains("hidden"),
        "the RECORDED badge is hidden in replay mode: <{badge}>"
    );
    let (conn, _) = element(&dom, &[("id", "connection")]).expect("no connection state");
    assert_eq!(attribute(conn, "data-state"), Some("connected"), "<{conn}>");
    assert!(
        dom.contains("gpus-queues"),
        "the source is not named in the page"
    );

    // Every metric's value, as the scenario's truth.json has them, with its help text.
    for (metric, value) in [
        ("node_up_count", "4"),
        ("node_free_count", "4"),
        ("node_allocated_count", "4"),
        ("node_cores_up_count", "16"),
        ("node_cores_free_count", "5"),
        ("node_cores_allocated_count", "11"),
        ("node_gpus_up_count", "8"),
        ("node_gpus_free_count", "6"),
        ("job_queue_state_run_count", "3"),
        ("job_queue_state_sched_count", "2"),
        ("job_queue_pending_count", "2"),
        ("minicluster_desired_size", "4"),
    ] {
        assert_eq!(
            text_of(&dom, &[("data-metric", metric)]),
            value,
            "value of {metric}"
        );
    }
    let cards = dom.matches(" data-metric=\"").count();
    assert_eq!(
        cards,
        flux_metrics::source::catalogue::CATALOGUE.len(),
        "one card per metric"
    );
    assert!(
        dom.contains("Nodes up (not down, not drained)."),
        "help text missing"
    );
    assert!(
        dom.contains("Cores allocated to jobs on up nodes."),
        "help text missing"
    );

    // The per-queue table.
    for (queue, state, value) in [
        ("batch", "run", "2"),
        ("batch", "sched", "0"),
        ("debug", "run", "1"),
        ("debug", "sched", "2"),
        ("debug", "pending", "2"),
    ] {
        assert_eq!(
            text_of(&dom, &[("data-queue", queue), ("data-state", state)]),
            value,
            "{queue} {state}"
        );
    }

    // The charts: drawn, every series with at least one point.
    for chart in ["nodes", "cores", "jobs"] {
        let (tag, _) =
            element(&dom, &[("data-chart", chart)]).unwrap_or_else(|| panic!("no chart {chart}"));
        let points: usize = attribute(tag, "data-points")
            .unwrap_or_else(|| panic!("chart {chart} was not drawn: <{tag}>"))
            .parse()
            .expect("data-points is a number");
        assert!(points >= 1, "chart {chart} has no points: <{tag}>");
    }
    assert!(
        dom.matches("<svg").count() >= 3,
        "fewer than three SVG charts"
    );
    assert!(
        dom.matches("<path ").count() >= 9,
        "fewer than nine series drawn"
    );
    assert!(
        element(&dom, &[("id", "error")]).is_some_and(|(tag, _)| tag.contains("hidden")),
        "the error banner shows: {dom}"
    );

    for shot in &shots {
        assert_png(shot);
        let _ = std::io::stderr()
            .write_all(format!("dashboard screenshot: {}\n", shot.display()).as_bytes());
    }
    server.shutdown().await;
}
