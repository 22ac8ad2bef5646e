//! A connection to a Flux broker (`flux_t`) and the RPCs sent over it. Waiting for and
//! reading answers is `rpc.rs`'s job.
//!
//! `flux_t` is not thread-safe, so a [`Handle`] is `!Send + !Sync`: it is created, used and
//! dropped on one thread (the server's broker thread).

use std::ffi::{CString, c_char};
use std::fmt;
use std::ptr::{self, NonNull};

use flux_core_sys::{flux_error_t, flux_t};

use crate::error::{Error, Result, check_ptr};
use crate::library::Library;
use crate::rpc::Rpc;

/// Sends a request to whichever broker rank provides the service (`FLUX_NODEID_ANY`).
pub const NODEID_ANY: u32 = flux_core_sys::FLUX_NODEID_ANY;

/// An open connection to a Flux broker, closed on drop.
///
/// `!Send + !Sync` (the `NonNull<flux_t>` inside sees to it, and a test pins it): flux
/// does not document `flux_t` as thread-safe, so a handle stays on the thread that opened it.
///
/// RPCs borrow the handle, so none can outlive it:
///
/// ```compile_fail,E0505
/// # fn f(lib: &flux::Library) -> flux::Result<()> {
/// let h = flux::Handle::open(lib, None)?;
/// let rpc = h.rpc("broker.ping", Some("{}"), flux::NODEID_ANY)?;
/// h.close(); // error: `h` is still borrowed by `rpc`
/// rpc.get(std::time::Duration::from_secs(5))?;
/// # Ok(()) }
/// ```
///
/// The same with the handle closed after its last RPC compiles:
///
/// ```no_run
/// # fn f(lib: &flux::Library) -> flux::Result<()> {
/// let h = flux::Handle::open(lib, None)?;
/// let rpc = h.rpc("broker.ping", Some("{}"), flux::NODEID_ANY)?;
/// let answer = rpc.get(std::time::Duration::from_secs(5))?;
/// drop(rpc);
/// h.close();
/// # Ok(()) }
/// ```
pub struct Handle {
    ptr: NonNull<flux_t>,
    // Dropped after `ptr` is closed (fields drop after `Drop::drop`), so libflux-core stays
    // loaded for as long as the handle needs it.
    lib: Library,
}

impl Handle {
    /// Connects to a broker with `flux_open_ex(uri, 0, &err)`, see [flux_open(3)].
    ///
    /// `uri` `None` lets flux choose: `FLUX_URI` from the environment (set for every
    /// process inside a Flux instance), else the local system instance.
    ///
    /// [flux_open(3)]: https://flux-framework.readthedocs.io/projects/flux-core/en/latest/man3/flux_open.html
    ///
    /// # Errors
    /// [`Error::Flux`] with flux's explanation (or [`Error::Os`] if it gave none) when the
    /// broker can't be reached; [`Error::Nul`] if `uri` contains a NUL byte.
    pub fn open(lib: &Library, uri: Option<&str>) -> Result<Handle> {
        let uri = uri.map(CString::new).transpose()?;
        let uri_ptr = uri.as_ref().map_or(ptr::null(), |c| c.as_ptr());
        let mut err = flux_error_t::default();
        // SAFETY: `uri_ptr` is NULL or points into `uri`, which lives until the end of this
        // function; `err` is a valid, writable flux_error_t for the duration of the call.
        let raw = unsafe { lib.api().flux_open_ex(uri_ptr, 0, &raw mut err) };
        let ptr = check_ptr(raw, "flux_open_ex").map_err(|e| with_flux_text(e, &err))?;
        Ok(Handle {
            ptr,
            lib: lib.clone(),
        })
    }

    /// Sends a request with `flux_rpc(h, topic, payload, nodeid, 0)` and returns without
    /// waiting; read the answer with [`Rpc::get`].
    ///
    /// `payload` is JSON text (`None` sends none); `nodeid` is a broker rank or
    /// [`NODEID_ANY`].
    ///
    /// # Errors
    /// [`Error::Os`] if the request can't be sent (e.g. the broker went away);
    /// [`Error::Nul`] if `topic` or `payload` contains a NUL byte.
    pub fn rpc(&self, topic: &str, payload: Option<&str>, nodeid: u32) -> Result<Rpc<'_>> {
        let topic = CString::new(topic)?;
        let payload = payload.map(CString::new).transpose()?;
        let payload_ptr: *const c_char = payload.as_ref().map_or(ptr::null(), |c| c.as_ptr());
        // SAFETY: `self.ptr` is an open handle owned by `self`; `topic` and `payload` are
        // locals that outlive the call, and flux_rpc copies both into the request message.
        let raw = unsafe {
            self.lib
                .api()
                .flux_rpc(self.ptr.as_ptr(), topic.as_ptr(), payload_ptr, nodeid, 0)
        };
        let future = check_ptr(raw, "flux_rpc")?;
        Ok(Rpc::new(future, self))
    }

    /// Closes the connection now. Dropping the handle does the same; this only makes the
    /// point where it happens explicit. `flux_close` reports no errors.
    pub fn close(self) {
        drop(self);
    }

    /// The library this handle was opened with.
    pub(crate) fn library(&self) -> &Library {
        &self.lib
    }
}

impl Drop for Handle {
    /// Best effort, like `flux_close` itself: it returns nothing to check.
    fn drop(&mut self) {
        // SAFETY: `self.ptr` came from flux_open_ex, is closed exactly once (here), and no
        // RPC can still use it: each `Rpc` borrows the handle, so all are gone by now.
        unsafe { self.lib.api().flux_close(self.ptr.as_ptr()) };
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("ptr", &self.ptr)
            .field("lib", &self.lib)
            .finish()
    }
}

/// Turns a failed `flux_open_ex` into [`Error::Flux`] carrying the `flux_error_t` text,
/// keeping the plain [`Error::Os`] when flux wrote no text.
fn with_flux_text(e: Error, err: &flux_error_t) -> Error {
    let text = flux_error_text(err);
    match e {
        Error::Os { call, source } if !text.is_empty() => Error::Flux {
            call,
            errno: source.raw_os_error().unwrap_or(0),
            message: text,
        },
        e => e,
    }
}

/// The text of a `flux_error_t`, up to its first NUL (or its end, if flux wrote none).
fn flux_error_text(err: &flux_error_t) -> String {
    // `c_char` is i8 or u8 depending on the target; either way one byte per element.
    let bytes: Vec<u8> = err
        .text
        .iter()
        .map(|c| u8::from_ne_bytes(c.to_ne_bytes()))
        .collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_not_impl_any!(Handle: Send, Sync);
    static_assertions::assert_not_impl_any!(Rpc<'static>: Send, Sync);

    fn error_with(text: &str) -> flux_error_t {
        let mut err = flux_error_t::default();
        for (dst, src) in err.text.iter_mut().zip(text.bytes()) {
            *dst = c_char::from_ne_bytes([src]);
        }
        err
    }

    #[test]
    fn open_failure_keeps_flux_text_and_errno() {
        let os = Error::Os {
            call: "flux_open_ex",
            source: std::io::Error::from_raw_os_error(111),
        };
        let e = with_flux_text(os, &error_with("cannot connect to local:///nowhere"));
        assert!(
            matches!(&e, Error::Flux { call: "flux_open_ex", errno: 111, message }
                if message == "cannot connect to local:///nowhere"),
            "{e:?}"
        );
    }

    #[test]
    fn open_failure_without_flux_text_stays_an_os_error() {
        let os = Error::Os {
            call: "flux_open_ex",
            source: std::io::Error::from_raw_os_error(2),
        };
        let e = with_flux_text(os, &flux_error_t::default());
        assert!(
            matches!(
                &e,
                Error::Os {
                    call: "flux_open_ex",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.errno(), Some(2));
    }

    #[test]
    fn flux_error_text_stops_at_nul_or_buffer_end() {
        assert_eq!(flux_error_text(&error_with("abc")), "abc");
        let full = "x".repeat(500);
        assert_eq!(
            flux_error_text(&error_with(&full)).len(),
            flux_error_t::default().text.len()
        );
    }
}
