//! Stamps the binary with the commit it was built from and when: `FLUX_METRICS_GIT_COMMIT` and
//! `FLUX_METRICS_BUILD_DATE` for `src/util/version.rs` (`version`, `--version`, `/version`).
//!
//! The commit is `git rev-parse HEAD` when the source is a git checkout; a build without `.git`
//! (the Dockerfile's, which ignores it) passes it in `FLUX_METRICS_GIT_COMMIT` instead. The date
//! is `SOURCE_DATE_EPOCH` when set (reproducible builds), else the time of the build.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FLUX_METRICS_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let commit = git(&["rev-parse", "HEAD"])
        .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .or_else(|| std::env::var("FLUX_METRICS_GIT_COMMIT").ok())
        .unwrap_or_default();
    // Build again when HEAD moves: HEAD itself, the branch it names, and the packed refs.
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["rev-parse", "--symbolic-full-name", "HEAD"])
            .and_then(|r| git(&["rev-parse", "--git-path", &r])),
        git(&["rev-parse", "--git-path", "packed-refs"]),
    ]
    .into_iter()
    .flatten()
    {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=FLUX_METRICS_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=FLUX_METRICS_BUILD_DATE={}", rfc3339(epoch));
}

/// The trimmed output of `git ARGS` in the package's directory, if git runs and succeeds.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// `2026-12-02T13:48:42Z` for seconds since the epoch (UTC; Howard Hinnant's civil-from-days).
fn rfc3339(epoch: u64) -> String {
    let days = i64::try_from(epoch / 86_400).unwrap_or(0);
    let secs = epoch % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}
