//! Rust element types that tensor views can hold, tied to their [`DType`].

use crate::DType;

/// A plain-old-data element with a fixed [`DType`]; `bool` is left out because not every byte
/// is a valid `bool`.
pub trait Element: bytemuck::Pod + Send + Sync + std::fmt::Debug + 'static {
    const DTYPE: DType;
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => {
        $(impl Element for $t {
            const DTYPE: DType = DType::$d;
        })*
    };
}

element!(
    u8 => U8,
    i8 => I8,
    i16 => I16,
    i32 => I32,
    i64 => I64,
    half::f16 => F16,
    half::bf16 => BF16,
    f32 => F32,
    f64 => F64,
);
