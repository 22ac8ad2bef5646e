//! The reason this server gives its drains, and how it tells them from anyone else's. Apart
//! from the rest of the loop, so that parsing a snapshot (which sorts drains by reason) does not
//! depend on the loop that reads snapshots.

/// The start of the reason of every drain this server makes; how it knows its own drains, after
/// a restart too. An administrator's drain has another reason and is never touched.
pub const REASON_PREFIX: &str = "flux-metrics-api: shrinking to ";

/// The reason of a drain for a shrink to `size` nodes.
pub fn reason(size: u64) -> String {
    format!("{REASON_PREFIX}{size}")
}

/// `Some(size)` when `reason` marks a drain of this server (0 when the size is unreadable),
/// `None` for anyone else's.
pub fn size_of_reason(reason: &str) -> Option<u64> {
    let rest = reason.strip_prefix(REASON_PREFIX)?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some(rest[..digits].parse().unwrap_or(0))
}
