//! Build script: with the `torch` feature, wire this package's binaries to libtorch.

// Shared with other build scripts; this one uses part of it.
#[allow(dead_code)]
#[path = "src/libtorch_link.rs"]
mod libtorch_link;

fn main() {
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some() {
        libtorch_link::emit();
        // Feature unification can switch `torch` on for a crate that never asked for it;
        // dependents read this as DEP_FLAGCORE_TORCH and wire libtorch in their own build.rs.
        println!("cargo:torch=1");
    }
}
