//! One outstanding RPC (`flux_future_t`): waiting for its answer and reading it. Sending it
//! is [`Handle::rpc`](crate::Handle::rpc)'s job.

use std::ffi::c_char;
use std::fmt;
use std::ptr::{self, NonNull};
use std::time::Duration;

use flux_core_sys::flux_future_t;

use crate::error::{Error, Result, check_rc, owned_string};
use crate::handle::Handle;

/// An RPC sent with [`Handle::rpc`], whose answer may not have arrived yet.
///
/// It borrows its handle, so it can't outlive it (see [`Handle`] for a `compile_fail`
/// proof). Dropping it destroys the future (`flux_future_destroy`); an answer that arrives
/// later is discarded by flux.
pub struct Rpc<'h> {
    ptr: NonNull<flux_future_t>,
    handle: &'h Handle,
}

impl<'h> Rpc<'h> {
    /// Takes ownership of a future that `flux_rpc` returned on `handle`.
    pub(crate) fn new(ptr: NonNull<flux_future_t>, handle: &'h Handle) -> Rpc<'h> {
        Rpc { ptr, handle }
    }
}

impl Rpc<'_> {
    /// Waits up to `timeout` for the answer (`flux_future_wait_for`), then reads it
    /// (`flux_rpc_get`) and returns its JSON text, or an empty string if the answer has no
    /// payload.
    ///
    /// Calling it again after a timeout keeps waiting for the same answer; calling it
    /// after an answer arrived returns that answer again.
    ///
    /// # Errors
    /// - [`Error::Os`] with `ETIMEDOUT` if no answer came within `timeout`;
    /// - [`Error::Flux`] if the broker answered with an error: its `errno` (`ENOSYS` for
    ///   an unknown topic, ...) and its message, or `flux_strerror(errno)` if it sent none.
    ///   The topic is not part of the message: callers add it as context.
    pub fn get(&self, timeout: Duration) -> Result<String> {
        let api = self.handle.library().api();
        let f = self.ptr.as_ptr();
        // SAFETY: `f` is a live future owned by `self`, on a handle that the borrow keeps
        // open; the timeout is a finite, non-negative number of seconds.
        let rc = unsafe { api.flux_future_wait_for(f, timeout.as_secs_f64()) };
        check_rc(rc, "flux_future_wait_for")?;

        let mut payload: *const c_char = ptr::null();
        // SAFETY: as above for `f`; `payload` is a valid place for flux to store a pointer.
        let rc = unsafe { api.flux_rpc_get(f, &raw mut payload) };
        if let Err(e) = check_rc(rc, "flux_rpc_get") {
            let errno = e.errno().unwrap_or(0);
            // SAFETY: `f` is live (as above). The error string, if any, is owned by the
            // future (or static, from flux_strerror), and is copied before `f` can go away.
            let message = unsafe { owned_string(api.flux_future_error_string(f)) }
                // SAFETY: flux_strerror accepts any int and returns a static string.
                .or_else(|| unsafe { owned_string(api.flux_strerror(errno)) })
                .unwrap_or_default();
            return Err(Error::Flux {
                call: "flux_rpc_get",
                errno,
                message,
            });
        }
        // SAFETY: on success `payload` is NULL or a NUL-terminated string owned by `f`,
        // which `self` keeps alive while it is copied.
        Ok(unsafe { owned_string(payload) }.unwrap_or_default())
    }
}

impl Drop for Rpc<'_> {
    fn drop(&mut self) {
        // SAFETY: `self.ptr` came from flux_rpc on a handle that is still open (the borrow
        // guarantees it) and is destroyed exactly once, here; nothing else holds it.
        unsafe {
            self.handle
                .library()
                .api()
                .flux_future_destroy(self.ptr.as_ptr())
        };
    }
}

impl fmt::Debug for Rpc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rpc")
            .field("ptr", &self.ptr)
            .finish_non_exhaustive()
    }
}
