//! What the CPU has, for the code that comes in AVX-512 and AVX2 + FMA versions (kernels,
//! packing, exponentials): one place that says which features each version needs.

/// AVX-512F: `avx512.rs` and the AVX-512 loops.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// AVX2 and FMA: `avx2.rs` and the AVX2 loops.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}
