//! Build script: wire libtorch into this crate's binaries when its `tch` feature is on, or
//! when a workspace build turns `flagcore/torch` on (see `flagcore/src/libtorch_link.rs`).

#[allow(dead_code)]
#[path = "../flagcore/src/libtorch_link.rs"]
mod libtorch_link;

fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_TCH");
    if std::env::var_os("CARGO_FEATURE_TCH").is_some() {
        libtorch_link::emit();
    } else {
        libtorch_link::emit_if_flagcore_torch();
    }
}
