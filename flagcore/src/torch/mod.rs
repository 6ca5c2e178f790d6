//! libtorch (`tch`) helpers, behind the `torch` feature: dtype and device conversions, views of
//! `tch::Tensor` memory, seeding, and safetensors I/O.

mod safetensors_io;
mod tensor_view;

pub use safetensors_io::{load_safetensors, save_safetensors};
pub use tensor_view::{contiguous_slice, from_view, view, view_mut};

use crate::{DType, Device, Error, Result};
use tch::Kind;

impl From<DType> for Kind {
    fn from(d: DType) -> Kind {
        match d {
            DType::Bool => Kind::Bool,
            DType::U8 => Kind::Uint8,
            DType::I8 => Kind::Int8,
            DType::I16 => Kind::Int16,
            DType::I32 => Kind::Int,
            DType::I64 => Kind::Int64,
            DType::F16 => Kind::Half,
            DType::BF16 => Kind::BFloat16,
            DType::F32 => Kind::Float,
            DType::F64 => Kind::Double,
        }
    }
}

impl TryFrom<Kind> for DType {
    type Error = Error;

    /// Complex, quantized and fp8 kinds have no `DType`.
    fn try_from(k: Kind) -> Result<DType> {
        Ok(match k {
            Kind::Bool => DType::Bool,
            Kind::Uint8 => DType::U8,
            Kind::Int8 => DType::I8,
            Kind::Int16 => DType::I16,
            Kind::Int => DType::I32,
            Kind::Int64 => DType::I64,
            Kind::Half => DType::F16,
            Kind::BFloat16 => DType::BF16,
            Kind::Float => DType::F32,
            Kind::Double => DType::F64,
            other => return Err(Error::ParseDType(format!("{other:?}"))),
        })
    }
}

impl Device {
    /// The libtorch device; `auto` becomes `cuda:0` when libtorch sees a GPU, else the CPU.
    pub fn to_tch(self) -> tch::Device {
        match self {
            Device::Cpu => tch::Device::Cpu,
            Device::Cuda(i) => tch::Device::Cuda(i),
            Device::Auto => tch::Device::cuda_if_available(),
        }
    }

    /// Like [`to_tch`](Self::to_tch), but an explicit CUDA device that libtorch cannot use is
    /// a typed error instead of a failure at the first tensor op.
    pub fn resolve_tch(self) -> Result<tch::Device> {
        if let Device::Cuda(i) = self {
            let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
            if i >= count {
                return Err(Error::CudaUnavailable(format!(
                    "{self} was asked for, but libtorch sees {count} CUDA device(s)"
                )));
            }
        }
        Ok(self.to_tch())
    }

    pub fn from_tch(d: tch::Device) -> Result<Device> {
        match d {
            tch::Device::Cpu => Ok(Device::Cpu),
            tch::Device::Cuda(i) => Ok(Device::Cuda(i)),
            other => Err(Error::ParseDevice(format!("{other:?}"))),
        }
    }
}

/// Seeds libtorch's CPU generator and, when present, every CUDA generator.
pub fn manual_seed(seed: u64) {
    // libtorch takes the seed as a signed 64-bit value; keep all 64 bits.
    tch::manual_seed(seed as i64);
    if tch::Cuda::is_available() {
        tch::Cuda::manual_seed_all(seed);
    }
}

/// The libtorch release this crate was linked against (e.g. `2.11.0+cu130`).
pub fn libtorch_version() -> Option<&'static str> {
    option_env!("FLAGCORE_LIBTORCH_VERSION")
}

/// The folder of the libtorch shared libraries baked into binaries' run path.
pub fn libtorch_lib_dir() -> Option<&'static str> {
    option_env!("FLAGCORE_LIBTORCH_LIB")
}
