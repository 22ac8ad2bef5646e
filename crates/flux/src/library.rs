//! Loading libflux-core at run time and checking its version. Opening handles is
//! `handle.rs`'s job; this file only owns the loaded library.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flux_core_sys::FluxCore;

use crate::error::{Error, Result, owned_string};

/// The soname tried when no path is given: found through the dynamic loader's search path
/// (`LD_LIBRARY_PATH`, `ld.so.cache`, ...). libflux-core has kept soname version 2 since
/// its first releases.
pub const DEFAULT_SONAME: &str = "libflux-core.so.2";

/// The oldest flux-core this crate accepts.
///
/// Every symbol bound here exists since 0.42.0 (`flux_open_ex` was the last to arrive), but
/// the counters of `job-list.job-stats` only mean what `flux jobs --stats` shows since
/// 0.50.0: before it, `failed` also counted canceled and timed-out jobs (flux-core #5048).
/// Older versions would load and silently serve wrong job metrics, so they are refused.
pub const MIN_VERSION: &str = "0.50.0";

/// A loaded libflux-core: cheap to clone, unloaded when the last clone (including the one
/// each [`Handle`](crate::Handle) keeps) is dropped.
#[derive(Clone)]
pub struct Library {
    inner: Arc<Inner>,
}

struct Inner {
    api: FluxCore,
    path: PathBuf,
    version: String,
}

impl Library {
    /// Loads libflux-core from `path`, or the default soname via the dynamic loader
    /// search path.
    ///
    /// Every function this crate uses is resolved now, so a library lacking one fails here
    /// rather than later.
    ///
    /// # Errors
    /// [`Error::Load`] if the library can't be opened or lacks a symbol; [`Error::Version`]
    /// if it is older than [`MIN_VERSION`] (or its version can't be read).
    pub fn load(path: Option<&Path>) -> Result<Library> {
        let path = path.map_or_else(|| PathBuf::from(DEFAULT_SONAME), Path::to_path_buf);
        // SAFETY: loading runs libflux-core's ELF initialisers, which only set up its own
        // state; the library is the one the operator pointed us at (or the system's). The
        // resolved function pointers live in `FluxCore` next to the library that backs
        // them, so they can't outlive it.
        let api = unsafe { FluxCore::new(OsStr::new(&path)) }.map_err(|source| Error::Load {
            path: path.clone(),
            source,
        })?;
        // SAFETY: flux_core_version_string() takes no arguments and returns NULL or a
        // pointer to a static string inside the library, which `api` keeps loaded.
        let version = unsafe { owned_string(api.flux_core_version_string()) }.unwrap_or_default();
        check_version(&version)?;
        Ok(Library {
            inner: Arc::new(Inner { api, path, version }),
        })
    }

    /// The version libflux-core reports (`flux_core_version_string()`), read once at load,
    /// e.g. `0.88.0`.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The path or soname the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The raw function table, for this crate's safe wrappers only.
    pub(crate) fn api(&self) -> &FluxCore {
        &self.inner.api
    }
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.inner.path)
            .field("version", &self.inner.version)
            .finish_non_exhaustive()
    }
}

/// Accepts `version` if it is at least [`MIN_VERSION`]. flux-core versions look like
/// `0.88.0`, or `0.88.0-12-gdeadbeef` for an untagged build (`git describe`).
fn check_version(version: &str) -> Result<()> {
    let too_old = || Error::Version {
        found: version.to_owned(),
        min: MIN_VERSION,
    };
    let found = parse_version(version).ok_or_else(too_old)?;
    let min = parse_version(MIN_VERSION).ok_or_else(too_old)?;
    if found >= min { Ok(()) } else { Err(too_old()) }
}

/// `(major, minor, patch)` from the leading digits of the first three dot-separated fields.
fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let mut fields = version.split('.').map(|f| {
        let digits = f
            .find(|c: char| !c.is_ascii_digit())
            .map_or(f, |end| &f[..end]);
        digits.parse::<u32>().ok()
    });
    Some((
        fields.next()??,
        fields.next()??,
        fields.next().flatten().unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(Library: Clone, Send, Sync);

    #[test]
    fn loading_a_missing_file_names_the_path_and_the_fix() {
        let path = Path::new("/nonexistent/dir/libflux-core.so.2");
        let err = Library::load(Some(path)).unwrap_err();
        assert!(
            matches!(&err, Error::Load { path: p, .. } if p == path),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("\"/nonexistent/dir/libflux-core.so.2\""),
            "{msg}"
        );
        assert!(msg.contains("FLUX_CORE_LIB"), "{msg}");
        assert_eq!(err.errno(), None);
    }

    #[test]
    fn loading_a_library_without_flux_symbols_is_a_load_error() {
        // libc is always there and has none of flux's functions.
        let err = Library::load(Some(Path::new("libc.so.6"))).unwrap_err();
        assert!(matches!(&err, Error::Load { .. }), "{err:?}");
        assert!(err.to_string().contains("flux_open_ex"), "{err}");
    }

    #[test]
    fn versions_at_or_above_the_minimum_are_accepted() {
        for v in ["0.50.0", "0.88.0", "0.88.0-12-gdeadbeef", "1.0.0", "0.50"] {
            assert!(check_version(v).is_ok(), "{v}");
        }
    }

    #[test]
    fn older_or_unreadable_versions_are_refused() {
        for v in ["0.49.0", "0.42.1", "", "unknown", "0"] {
            let err = check_version(v).unwrap_err();
            assert!(matches!(&err, Error::Version { found, min: MIN_VERSION } if found == v));
            assert!(err.to_string().contains(MIN_VERSION), "{err}");
        }
    }
}
