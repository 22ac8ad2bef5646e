//! Test only: a directory of its own under the system temp dir, removed on drop (a failed
//! assertion included), for unit tests that write files. The integration tests have the same
//! guard in `tests/common` (they cannot see `cfg(test)` items of the library).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory, removed with everything in it on drop.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh, empty directory whose name holds `tag`, the pid and a counter.
    pub(crate) fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "flux-metrics-unit-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir { path }
    }

    /// A fresh directory holding a copy of the recorded scenario `scenario` of `tests/fixtures`.
    pub(crate) fn with_scenario(scenario: &str) -> TempDir {
        let dir = TempDir::new(scenario);
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(scenario);
        for entry in std::fs::read_dir(src).expect("reading a scenario") {
            let entry = entry.expect("reading a scenario entry");
            std::fs::copy(entry.path(), dir.path.join(entry.file_name()))
                .expect("copying a recorded answer");
        }
        dir
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `text` to the file `name` in the directory; returns its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, text).expect("writing a file in a temp dir");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
