//! The dashboard in a real browser: headless Chromium loads `/ui` from servers replaying recorded
//! scenarios over plain HTTP, and the test checks what is drawn in the rendered DOM: the
//! autoscaling panel's sizes and chart (three series that stay apart when equal, a time axis
//! that starts at the first sample), the rank map (a cell per rank with its hostname, state and
//! GPUs), a failing custom metric's error, the per-queue table and a series' history opened from
//! the URL; then it saves screenshots at laptop and phone sizes as test artifacts
//! (`target/ui-screenshot.png`, `target/ui-screenshot-phone.png`). Without a browser, the page's
//! reachability (`/` and `/ui/` lead to it, it loads without the API token, its data does not)
//! is checked over HTTPS.
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

/// `elastic` changed into a MiniCluster with a rank in every state: 8 ranks `flux-sample-[0-7]`,
/// brokers 0-4 and 6 online (current size 7), rank 3 drained, rank 5 down, rank 7 absent; jobs
/// fill ranks 0-1 and half of 2.
fn every_state(dir: &Path) {
    let edit = |file: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let path = dir.join(file);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&path, v.to_string()).unwrap();
    };
    edit("resource.status.json", &|v| {
        v["online"] = "0-4,6".into();
        v["offline"] = "5,7".into();
        v["drain"] = serde_json::json!({"3": {"timestamp": 1.0, "reason": "maintenance window"}});
    });
    edit("resource.sched-status.json", &|v| {
        v["down"]["execution"]["R_lite"] =
            serde_json::json!([{"rank": "3,5,7", "children": {"core": "0-3"}}]);
        v["down"]["execution"]["nodelist"] = serde_json::json!(["flux-sample-[3,5,7]"]);
    });
}

/// The start tags of every element whose start tag holds every attribute of `attrs`.
fn elements<'a>(dom: &'a str, attrs: &[(&str, &str)]) -> Vec<&'a str> {
    let markup = dom.split("<script").next().unwrap_or(dom);
    markup
        .split('<')
        .filter_map(|piece| piece.split_once('>').map(|(tag, _)| tag))
        .filter(|tag| {
            attrs
                .iter()
                .all(|(k, v)| tag.contains(&format!(" {k}=\"{v}\"")))
        })
        .collect()
}

fn skipped() -> bool {
    let _ = std::io::stderr().write_all(
        b"SKIPPED tests/ui.rs (browser part): no chromium or chromium-browser on PATH (bash .ci/ui-deps.sh installs it)\n",
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_draws_autoscaling_ranks_and_errors_in_headless_chromium() {
    let Some(browser) = find_chromium() else {
        skipped();
        return;
    };
    let dir = TempDir::with_scenario("elastic");
    every_state(dir.path());
    let script = dir.path().join("broken.rhai");
    std::fs::write(
        &script,
        "/// Always fails.\nfn broken_metric(flux) { throw \"no such queue: gpu\"; }\n",
    )
    .unwrap();
    let started = chrono::Utc::now();
    let server = Server::start(dir.path(), |c| {
        c.tls = TlsSource::Plain;
        c.history_interval = Duration::from_secs(1);
        c.custom_metrics = vec![script.clone()];
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
        for (shot, size) in [(&laptop, "1280,1100"), (&phone, "390,844")] {
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
        "RECORDED hidden in replay mode: <{badge}>"
    );
    let (conn, _) = element(&dom, &[("id", "connection")]).expect("no connection state");
    assert_eq!(attribute(conn, "data-state"), Some("connected"), "<{conn}>");

    // Autoscaling first: the sizes, then the rank map, before any other metric.
    for (metric, value) in [
        ("minicluster_current_size", "7"),
        ("minicluster_desired_size", "8"),
        ("minicluster_min_size", "3"),
    ] {
        assert_eq!(text_of(&dom, &[("data-metric", metric)]), value, "{metric}");
    }
    // The ranks drained for a shrink (--drain-before-shrink) sit in the same panel.
    assert_eq!(
        text_of(&dom, &[("data-metric", "node_shrink_drained_count")]),
        "0"
    );
    let at = |needle: &str| dom.find(needle).unwrap_or_else(|| panic!("no {needle}"));
    assert!(at("data-metric=\"node_shrink_drained_count\"") < at("id=\"rankgrid\""));
    assert!(at("data-metric=\"minicluster_desired_size\"") < at("id=\"rankgrid\""));
    assert!(at("id=\"rankgrid\"") < at("data-metric=\"node_up_count\""));
    // The size chart: three series, each with its own dash pattern so that equal ones stay
    // visible, on a time axis that starts at the first sample (seconds ago, not an hour).
    let (size, _) = element(&dom, &[("data-chart", "size")]).expect("no size chart");
    let points: usize = attribute(size, "data-points")
        .expect("size chart not drawn")
        .parse()
        .unwrap();
    assert!(points >= 1, "<{size}>");
    let first = attribute(size, "data-first").expect("no data-first");
    let first = chrono::DateTime::parse_from_rfc3339(first).expect("data-first is a time");
    assert!(
        first >= started - chrono::Duration::seconds(2),
        "the axis starts at {first}, before the server's first sample ({started})"
    );
    let dashes: Vec<Option<&str>> = [
        "minicluster_current_size",
        "minicluster_desired_size",
        "minicluster_min_size",
    ]
    .iter()
    .map(|m| {
        let tags = elements(&dom, &[("data-series", m)]);
        let path = tags
            .iter()
            .find(|t| t.starts_with("path"))
            .unwrap_or_else(|| panic!("no path drawn for {m}"));
        attribute(path, "stroke-dasharray")
    })
    .collect();
    let mut distinct = dashes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "series share a stroke: {dashes:?}");

    // The rank map: one cell per rank, its hostname and state.
    assert_eq!(
        elements(&dom, &[("class", "rank")]).len(),
        8,
        "one cell per rank"
    );
    for (rank, state) in [
        (0, "full"),
        (1, "full"),
        (2, "partial"),
        (3, "drained"),
        (4, "free"),
        (5, "down"),
        (6, "free"),
        (7, "absent"),
    ] {
        let host = format!("flux-sample-{rank}");
        let rank = rank.to_string();
        let cell = elements(&dom, &[("data-rank", &rank), ("data-state", state)]);
        assert_eq!(cell.len(), 1, "rank {rank} is not drawn {state}");
        assert_eq!(attribute(cell[0], "data-host"), Some(host.as_str()));
        assert!(
            text_of(&dom, &[("data-rank", &rank), ("data-state", state)]).is_empty(),
            "the cell's text is in its children"
        );
    }
    assert!(
        dom.contains(">flux-sample-5<"),
        "hostnames are shown in the cells"
    );

    // A failing custom metric shows its error instead of vanishing.
    let error = text_of(&dom, &[("data-error", "broken_metric")]);
    assert!(error.contains("no such queue: gpu"), "{error:?}");
    assert_eq!(text_of(&dom, &[("data-metric", "broken_metric")]), "error");
    assert!(
        element(&dom, &[("id", "error")]).is_some_and(|(tag, _)| tag.contains("hidden")),
        "the error banner shows"
    );
    // Names never wrap inside an identifier: no break opportunities are inserted in them.
    assert!(!dom.contains("<wbr>"), "names are broken up with <wbr>");

    for shot in &shots {
        assert_png(shot);
        let _ = std::io::stderr()
            .write_all(format!("dashboard screenshot: {}\n", shot.display()).as_bytes());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_draws_queues_gpus_and_a_history_opened_from_the_url() {
    let Some(browser) = find_chromium() else {
        skipped();
        return;
    };
    let server = Server::start("gpus-queues", |c| {
        c.tls = TlsSource::Plain;
        c.history_interval = Duration::from_secs(1);
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let url = format!(
        "http://{}/ui#history=job_queue_state_sched_count@debug",
        server.addr
    );
    let dom = tokio::task::spawn_blocking(move || chromium(&browser, &url, &["--dump-dom"]).stdout)
        .await
        .expect("the browser task panicked");

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
    // GPUs on the rank cells: 2 per node, 8 in all, 2 allocated.
    let cells = elements(&dom, &[("class", "rank")]);
    assert_eq!(cells.len(), 4);
    let sum = |attr: &str| -> u64 {
        cells
            .iter()
            .map(|c| attribute(c, attr).unwrap_or("0").parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!((sum("data-gpus"), sum("data-gpus-allocated")), (8, 2));
    assert_eq!(attribute(cells[0], "data-host"), Some("node0"));
    // The history of the series named in the URL, drawn.
    let (panel, _) = element(&dom, &[("id", "history")]).expect("no history panel");
    assert!(
        !panel.contains(" hidden"),
        "the history is not open: <{panel}>"
    );
    assert_eq!(
        attribute(panel, "data-metric"),
        Some("job_queue_state_sched_count")
    );
    assert_eq!(attribute(panel, "data-queue"), Some("debug"));
    let (chart, _) = element(&dom, &[("data-chart", "history")]).expect("no history chart");
    let points: usize = attribute(chart, "data-points")
        .expect("history not drawn")
        .parse()
        .unwrap();
    assert!(points >= 1, "<{chart}>");
    for chart in ["nodes", "cores", "jobs", "size"] {
        let (tag, _) = element(&dom, &[("data-chart", chart)]).unwrap();
        assert!(
            attribute(tag, "data-points").is_some_and(|p| p != "0"),
            "{chart}: <{tag}>"
        );
    }
    server.shutdown().await;
}

/// Without a browser: `/` and `/ui/` lead to the page, the page loads without the API token (it
/// asks for it), and the data it reads does not.
#[tokio::test]
async fn the_page_is_reachable_without_the_token_and_its_data_is_not() {
    let dir = TempDir::new("ui-token");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let server = Server::start("idle", |c| c.api_token_file = Some(token.clone())).await;
    let page = server.get("/ui").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("id=\"token\""),
        "the page has its token form"
    );
    for (path, to) in [("/", "ui"), ("/ui/", "../ui")] {
        let r = server.get(path).await;
        assert_eq!(r.status, 302, "{path}");
        assert_eq!(
            r.headers.get("location").and_then(|v| v.to_str().ok()),
            Some(to)
        );
    }
    for path in ["/api/v1/metrics", "/api/v1/ranks", "/api/v1/status"] {
        let r = server.get(path).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        let r = server
            .client()
            .get_with(path, &[("authorization", "Bearer s3cret")])
            .await;
        assert_eq!(r.status, 200, "{path}");
    }
    let ranks = server
        .client()
        .get_with("/api/v1/ranks", &[("authorization", "Bearer s3cret")])
        .await
        .expect_json(200);
    assert_eq!(ranks["ranks"][0]["hostname"], "vm", "{ranks}");
    assert_eq!(ranks["ranks"][0]["state"], "free", "{ranks}");
    server.shutdown().await;
}
