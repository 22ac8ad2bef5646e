//! Safe wrapper over a run-time loaded libflux-core: load the library, open a handle to a
//! broker, send RPCs and read their JSON answers. It does not parse the answers; that is
//! the server's job.
//!
//! # Layout
//! - `library`: [`Library::load`] `dlopen()`s libflux-core and checks [`MIN_VERSION`];
//! - `handle`: [`Handle`] owns a `flux_t` (one thread only) and sends RPCs;
//! - `rpc`: [`Rpc`] owns a `flux_future_t` and waits for its answer;
//! - `error`: [`enum@Error`], and the one place C return values are checked.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! # fn main() -> flux::Result<()> {
//! let lib = flux::Library::load(None)?; // libflux-core.so.2 from the loader's search path
//! let h = flux::Handle::open(&lib, None)?; // FLUX_URI
//! let status = h.rpc("resource.sched-status", Some("{}"), 0)?.get(Duration::from_secs(5))?;
//! println!("{status}");
//! # Ok(()) }
//! ```
//!
//! `unsafe` lives here and in `flux-core-sys` only; each block says why it is sound.

mod error;
mod handle;
mod library;
mod rpc;

pub use error::{Error, Result};
pub use handle::{Handle, NODEID_ANY};
pub use library::{DEFAULT_SONAME, Library, MIN_VERSION};
pub use rpc::Rpc;
