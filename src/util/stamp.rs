//! Noticing that a file changed without reading it: its modification time and size. Kubernetes
//! updates a mounted Secret or ConfigMap by swapping a symlink, which changes both; an editor's
//! save changes at least one.

use std::path::PathBuf;
use std::time::SystemTime;

/// One file's identity for change detection; `None` when it cannot be read.
pub type Stamp = Option<(SystemTime, u64)>;

/// The stamp of each of `files`, in order: compare two of these to see whether any changed.
pub fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_has_no_stamp_and_a_written_one_has() {
        let dir = crate::util::scratch::TempDir::new("stamp");
        let file = dir.path().join("f");
        let before = stamps(std::slice::from_ref(&file));
        assert_eq!(before, [None]);
        std::fs::write(&file, "x").unwrap();
        let after = stamps(std::slice::from_ref(&file));
        assert_ne!(before, after);
        assert_eq!(after[0].map(|(_, len)| len), Some(1));
    }
}
