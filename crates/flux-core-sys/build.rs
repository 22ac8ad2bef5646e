//! Regenerates the raw bindings from an installed flux-core, only with feature `bindgen`.
//! The default build does nothing here: `src/bindings.rs` is checked in, so it needs no
//! flux-core, no headers and no libclang. `scripts/gen-bindings.sh` runs this same code
//! to refresh `src/bindings.rs`, so the two can never disagree on flags.

fn main() {
    generate();
}

/// Default build: the checked-in `src/bindings.rs` is used as is.
#[cfg(not(feature = "bindgen"))]
fn generate() {}

/// Feature `bindgen`: writes `$OUT_DIR/bindings.rs` from the flux-core that pkg-config finds.
#[cfg(feature = "bindgen")]
fn generate() {
    // Keep in step with `flux::MIN_VERSION` (crates/flux/src/library.rs says why 0.50.0).
    const MIN_VERSION: &str = "0.50.0";
    // Everything the `flux` crate calls, and nothing else: `dynamic_link_require_all`
    // makes every bound symbol mandatory at load time, so each extra one is a way to fail.
    const FUNCTIONS: &[&str] = &[
        "flux_open_ex",
        "flux_close",
        "flux_rpc",
        "flux_rpc_get",
        "flux_future_wait_for",
        "flux_future_destroy",
        "flux_future_error_string",
        "flux_strerror",
        "flux_core_version_string",
    ];

    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Only the include paths are used: we never link against libflux-core (it is
    // dlopen()ed at run time), hence cargo_metadata(false) and no `links` key.
    let flux = pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(false)
        .probe("flux-core")
        .unwrap_or_else(|e| {
            panic!(
                "feature `bindgen` needs flux-core >= {MIN_VERSION} visible to pkg-config \
                 (set PKG_CONFIG_PATH to its lib/pkgconfig): {e}"
            )
        });

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(
            flux.include_paths
                .iter()
                .map(|p| format!("-I{}", p.display())),
        )
        // Generated code must compile with the workspace's MSRV and edition.
        .rust_target(bindgen::RustTarget::stable(85, 0).expect("1.85 is a known Rust target"))
        .rust_edition(bindgen::RustEdition::Edition2024)
        .dynamic_library_name("FluxCore")
        .dynamic_link_require_all(true)
        .wrap_unsafe_ops(true)
        .allowlist_type("flux_t|flux_future_t|flux_error_t")
        .allowlist_var("FLUX_NODEID_ANY")
        // `flux_error_t` holds a 160-byte buffer: `Default` gives callers a zeroed one.
        .derive_default(true)
        // flux's headers use plain `/* */` comments; leaving them out keeps the output
        // identical whether it comes from an installed flux-core or the wheel's header.
        .generate_comments(false)
        .sort_semantically(true)
        .merge_extern_blocks(true)
        // Reruns this script when any header it read changes (an upgraded flux-core).
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }

    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("bindings.rs");
    builder
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on wrapper.h: {e}"))
        .write_to_file(&out)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
