//! Build script: this crate links libtorch; wire its run path and keep `libtorch_cuda.so`.

#[allow(dead_code)]
#[path = "../flagcore/src/libtorch_link.rs"]
mod libtorch_link;

fn main() {
    libtorch_link::emit();
}
