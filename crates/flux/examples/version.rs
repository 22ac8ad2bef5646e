//! Smoke test for a libflux-core build: loads it and prints its version.
//!
//! Usage: `cargo run -p flux --example version [-- /path/to/libflux-core.so.2]`; without an
//! argument it uses `FLUX_CORE_LIB`, then the loader's search path.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let path = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("FLUX_CORE_LIB"))
        .map(PathBuf::from);
    match flux::Library::load(path.as_deref()) {
        Ok(lib) => {
            println!("libflux-core {} ({})", lib.version(), lib.path().display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
