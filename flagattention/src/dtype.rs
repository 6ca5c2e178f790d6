//! The element types the operators take: f32, bf16 and f16, all computed in f32 (rows are
//! converted on the way in and out, so every product accumulates in f32).

use flagcore::Element;
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// An input/output element: converts to and from f32, a row at a time.
pub trait Float: Element + Copy {
    fn rows_to_f32(src: &[Self], dst: &mut [f32]);
    fn rows_from_f32(src: &[f32], dst: &mut [Self]);
    fn to_f32(self) -> f32;
    fn from_f32(x: f32) -> Self;
    /// The slice as f32 when it is f32 (read or written in place, no conversion).
    fn as_f32(_s: &[Self]) -> Option<&[f32]> {
        None
    }
    fn as_f32_mut(_s: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}

impl Float for f32 {
    fn rows_to_f32(src: &[Self], dst: &mut [f32]) {
        dst.copy_from_slice(src)
    }
    fn rows_from_f32(src: &[f32], dst: &mut [Self]) {
        dst.copy_from_slice(src)
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(x: f32) -> Self {
        x
    }
    fn as_f32(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        Some(s)
    }
}

macro_rules! half_float {
    ($($t:ty),*) => {$(
        impl Float for $t {
            fn rows_to_f32(src: &[Self], dst: &mut [f32]) {
                src.convert_to_f32_slice(dst)
            }
            fn rows_from_f32(src: &[f32], dst: &mut [Self]) {
                dst.convert_from_f32_slice(src)
            }
            fn to_f32(self) -> f32 {
                <$t>::to_f32(self)
            }
            fn from_f32(x: f32) -> Self {
                <$t>::from_f32(x)
            }
        }
    )*};
}
half_float!(bf16, f16);
