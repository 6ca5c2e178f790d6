//! A CUDA driver context through cudarc, behind the `cuda` feature.
//!
//! cudarc loads `libcuda.so` at run time and panics when it cannot; this module checks that
//! the driver library loads first and reports its absence as [`Error::CudaUnavailable`].

use crate::{Error, Result};
use cudarc::driver::CudaContext;
use std::sync::Arc;

/// Whether the CUDA driver library can be loaded on this machine.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the driver library; nothing is called through it.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// The number of CUDA devices the driver sees.
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(no_driver());
    }
    let n = CudaContext::device_count().map_err(|e| Error::CudaUnavailable(e.to_string()))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// A context on device `ordinal`, or a typed error where there is no driver or no such device.
pub fn context(ordinal: usize) -> Result<Arc<CudaContext>> {
    let count = device_count()?;
    if ordinal >= count {
        return Err(Error::CudaUnavailable(format!(
            "cuda:{ordinal} was asked for, but the driver sees {count} device(s)"
        )));
    }
    CudaContext::new(ordinal).map_err(|e| Error::CudaUnavailable(format!("cuda:{ordinal}: {e}")))
}

fn no_driver() -> Error {
    Error::CudaUnavailable("the CUDA driver library (libcuda.so) could not be loaded".to_string())
}
