//! Build script: with the `torch` feature, wire this package's binaries to libtorch.

#[path = "src/libtorch_link.rs"]
mod libtorch_link;

fn main() {
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some() {
        libtorch_link::emit();
    }
}
