//! This build's version, commit and date, as `build.rs` stamped them: what `version`,
//! `--version`, `/version` and `flux_metrics_api_build_info` say.

/// The package version (`0.1.0`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The full git commit the binary was built from; empty when unknown (a build without `.git`
/// and without `FLUX_METRICS_GIT_COMMIT`).
pub const COMMIT: &str = env!("FLUX_METRICS_GIT_COMMIT");

/// When it was built, RFC 3339 in UTC (`SOURCE_DATE_EPOCH` when that was set).
pub const BUILD_DATE: &str = env!("FLUX_METRICS_BUILD_DATE");

/// `0.1.0 (commit 457c281f0a1b, built 2026-12-02T13:48:42Z)`: the line `version` and
/// `--version` print.
pub fn long() -> &'static str {
    static LONG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LONG.get_or_init(|| format!("{VERSION} (commit {}, built {BUILD_DATE})", short_commit()))
}

/// The commit cut to 12 hex digits, or `unknown`.
pub fn short_commit() -> &'static str {
    match COMMIT.get(..12) {
        Some(c) if !c.is_empty() => c,
        _ if COMMIT.is_empty() => "unknown",
        _ => COMMIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_version_names_version_commit_and_date() {
        let long = long();
        assert!(long.starts_with(VERSION), "{long}");
        assert!(
            long.contains(short_commit()) && long.contains(BUILD_DATE),
            "{long}"
        );
        // RFC 3339 in UTC, as Kubernetes writes buildDate.
        let b = BUILD_DATE.as_bytes();
        assert_eq!(
            (b.len(), b[4], b[10], b[19]),
            (20, b'-', b'T', b'Z'),
            "{BUILD_DATE}"
        );
        assert!(COMMIT.is_empty() || COMMIT.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
