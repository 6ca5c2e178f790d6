//! The CUDA context helper never panics: where no driver loads it is a typed error.
#![cfg(feature = "cuda")]

use flagcore::Error;

#[test]
fn context_is_a_typed_error_without_a_driver() {
    match flagcore::cuda::context(0) {
        Ok(ctx) => assert!(flagcore::cuda::driver_present() && ctx.ordinal() == 0),
        Err(Error::CudaUnavailable(why)) => {
            assert!(!why.is_empty());
            if !flagcore::cuda::driver_present() {
                assert!(why.contains("libcuda.so"), "{why}");
            }
        }
        Err(other) => panic!("expected CudaUnavailable, got {other}"),
    }
    let count = flagcore::cuda::device_count().unwrap_or(0);
    assert!(matches!(
        flagcore::cuda::context(count),
        Err(Error::CudaUnavailable(_))
    ));
}
