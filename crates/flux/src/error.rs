//! The one error type of this crate, and the helpers every C return value goes through.
//! Messages are written for the operator who reads them in a log: what failed, why, and
//! where it helps, what to do about it.

use std::ffi::{CStr, c_char, c_int};
use std::io;
use std::path::PathBuf;
use std::ptr::NonNull;

/// `std::result::Result` with this crate's [`enum@Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when loading libflux-core or talking to a broker.
///
/// Each message already includes its cause's text, so log it with `{}`/`%e`; the cause is
/// still returned by [`std::error::Error::source`] for code that inspects it.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `dlopen()` of libflux-core failed, or it lacks one of the symbols this crate uses.
    #[error(
        "cannot load libflux-core from {path:?}: {source} \
         (set --flux-core-lib or FLUX_CORE_LIB to its path)"
    )]
    Load {
        /// The path or soname that was tried.
        path: PathBuf,
        /// The loader's own explanation (`dlerror()` text).
        source: libloading::Error,
    },
    /// The loaded libflux-core is older than [`MIN_VERSION`](crate::MIN_VERSION).
    #[error("libflux-core version {found:?} is not supported: {min} or newer is required")]
    Version {
        /// What `flux_core_version_string()` answered.
        found: String,
        /// The oldest supported version.
        min: &'static str,
    },
    /// A libflux-core call failed and only `errno` says why (NULL or -1 returned).
    #[error("{call}: {}", strerror(source))]
    Os {
        /// The C function that failed, e.g. `flux_future_wait_for`.
        call: &'static str,
        /// `errno` as read right after the call; `ETIMEDOUT` for a timed-out RPC.
        source: io::Error,
    },
    /// A libflux-core call failed and flux explained why: the text of a `flux_error_t`,
    /// or the error string of an RPC's error answer.
    #[error("{call}: {}", flux_message(*errno, message))]
    Flux {
        /// The C function that failed, e.g. `flux_open_ex` or `flux_rpc_get`.
        call: &'static str,
        /// The error number flux reported (`ENOSYS` for a service nobody provides, ...).
        errno: i32,
        /// Flux's explanation, or `flux_strerror(errno)` when it gave none.
        message: String,
    },
    /// A string handed to libflux-core contains a NUL byte.
    #[error("string passed to libflux-core contains a NUL byte: {0}")]
    Nul(#[from] std::ffi::NulError),
}

impl Error {
    /// The error number behind an [`Error::Os`] or [`Error::Flux`], `None` otherwise.
    ///
    /// Callers use it to react to specific failures, e.g. `ETIMEDOUT` (a slow broker),
    /// `ENOSYS` (an RPC an older flux-core doesn't serve) or `ECONNRESET` (broker gone).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            Error::Flux { errno, .. } => Some(*errno),
            Error::Load { .. } | Error::Version { .. } | Error::Nul(_) => None,
        }
    }

    /// Builds an [`Error::Os`] from `errno` as it is now. Call it right after the failing
    /// C call, before anything else can overwrite `errno`.
    pub(crate) fn last_os(call: &'static str) -> Error {
        let source = io::Error::last_os_error();
        // A C function that failed without setting errno would otherwise read "Success".
        let source = match source.raw_os_error() {
            Some(0) | None => io::Error::other("failed without setting errno"),
            Some(_) => source,
        };
        Error::Os { call, source }
    }
}

/// `Ok(ptr)` for a non-NULL return, else [`Error::Os`] with the current `errno`.
pub(crate) fn check_ptr<T>(ptr: *mut T, call: &'static str) -> Result<NonNull<T>> {
    NonNull::new(ptr).ok_or_else(|| Error::last_os(call))
}

/// `Ok(())` for a return of 0 or more (flux's success convention), else [`Error::Os`]
/// with the current `errno`.
pub(crate) fn check_rc(rc: c_int, call: &'static str) -> Result<()> {
    if rc < 0 {
        Err(Error::last_os(call))
    } else {
        Ok(())
    }
}

/// Copies a C string that libflux-core owns; `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid for this call.
pub(crate) unsafe fn owned_string(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` is non-NULL, so by the caller's promise a live NUL-terminated string.
    let s = unsafe { CStr::from_ptr(ptr) };
    Some(s.to_string_lossy().into_owned())
}

/// The OS's text for an error without std's " (os error N)" suffix, so that messages read
/// like flux's own (`Connection refused`).
fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(n) => text
            .strip_suffix(&format!(" (os error {n})"))
            .map_or(text.clone(), str::to_owned),
        None => text,
    }
}

/// `"<strerror>: <flux's text>"`, dropping whichever part is empty or repeats the other
/// (flux often falls back to the bare strerror text).
fn flux_message(errno: i32, message: &str) -> String {
    let os = strerror(&io::Error::from_raw_os_error(errno));
    if message.is_empty() || message == os {
        os
    } else if errno == 0 || message.contains(&os) {
        message.to_owned()
    } else {
        format!("{os}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETIMEDOUT: i32 = 110;
    const ENOSYS: i32 = 38;
    const ECONNREFUSED: i32 = 111;

    #[test]
    fn errno_comes_from_os_and_flux_errors_only() {
        let os = Error::Os {
            call: "flux_rpc",
            source: io::Error::from_raw_os_error(ETIMEDOUT),
        };
        assert_eq!(os.errno(), Some(ETIMEDOUT));
        let flux = Error::Flux {
            call: "flux_rpc_get",
            errno: ENOSYS,
            message: String::new(),
        };
        assert_eq!(flux.errno(), Some(ENOSYS));
        let other = Error::Os {
            call: "flux_rpc",
            source: io::Error::other("no errno"),
        };
        assert_eq!(other.errno(), None);
        assert_eq!(
            Error::Version {
                found: "0.1.0".into(),
                min: "0.50.0"
            }
            .errno(),
            None
        );
        let nul = std::ffi::CString::new("a\0b").unwrap_err();
        assert_eq!(Error::from(nul).errno(), None);
    }

    #[test]
    fn os_error_reads_like_strerror() {
        let e = Error::Os {
            call: "flux_future_wait_for",
            source: io::Error::from_raw_os_error(ETIMEDOUT),
        };
        assert_eq!(e.to_string(), "flux_future_wait_for: Connection timed out");
    }

    #[test]
    fn flux_error_shows_strerror_and_flux_text_once() {
        let e = |errno, message: &str| {
            Error::Flux {
                call: "flux_open_ex",
                errno,
                message: message.into(),
            }
            .to_string()
        };
        assert_eq!(
            e(ECONNREFUSED, "cannot connect to local:///tmp/x"),
            "flux_open_ex: Connection refused: cannot connect to local:///tmp/x"
        );
        assert_eq!(e(ENOSYS, ""), "flux_open_ex: Function not implemented");
        assert_eq!(
            e(ENOSYS, "Function not implemented"),
            "flux_open_ex: Function not implemented"
        );
        assert_eq!(
            e(ECONNREFUSED, "connect: Connection refused"),
            "flux_open_ex: connect: Connection refused"
        );
    }

    #[test]
    fn check_helpers_pass_success_through() {
        let mut x = 0_u8;
        assert!(check_ptr(&raw mut x, "test").is_ok());
        assert!(check_rc(0, "test").is_ok());
        assert!(matches!(
            check_ptr(std::ptr::null_mut::<u8>(), "t"),
            Err(Error::Os { call: "t", .. })
        ));
        assert!(matches!(
            check_rc(-1, "t"),
            Err(Error::Os { call: "t", .. })
        ));
    }
}
