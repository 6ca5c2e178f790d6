//! Build script: wire libtorch into this crate's binaries when a workspace build turns
//! `flagcore/torch` on (see `flagcore/src/libtorch_link.rs`).

#[allow(dead_code)]
#[path = "../flagcore/src/libtorch_link.rs"]
mod libtorch_link;

fn main() {
    libtorch_link::emit_if_flagcore_torch();
}
