//! Borrowing `tch::Tensor` memory as [`TensorView`]s, and copying views into tensors.
//!
//! A view borrows the tensor, so the tensor outlives it; it does not stop another handle to
//! the same storage (a `shallow_clone`) from writing to it meanwhile, as with any libtorch
//! `data_ptr`.

use crate::{DType, Layout};
use crate::{Element, Error, Result, TensorView, TensorViewMut};
use tch::Tensor;

/// Checks a tensor can be viewed as `T` in host memory; returns its layout.
fn checked_layout<T: Element>(t: &Tensor) -> Result<Layout> {
    if !t.defined() {
        return Err(Error::Shape("tensor is undefined".to_string()));
    }
    if t.device() != tch::Device::Cpu {
        return Err(Error::NotOnCpu(format!("{:?}", t.device())));
    }
    let actual = DType::try_from(t.f_kind()?)?;
    if actual != T::DTYPE {
        return Err(Error::DTypeMismatch {
            expected: T::DTYPE,
            actual,
        });
    }
    let to_usize = |v: Vec<i64>, what: &str| {
        v.into_iter()
            .map(|x| usize::try_from(x).map_err(|_| Error::Shape(format!("negative {what} {x}"))))
            .collect::<Result<Vec<usize>>>()
    };
    Layout::new(to_usize(t.size(), "size")?, to_usize(t.stride(), "stride")?)
}

/// A read-only view of a CPU tensor's elements (any strides).
pub fn view<T: Element>(t: &Tensor) -> Result<TensorView<'_, T>> {
    let layout = checked_layout::<T>(t)?;
    let len = layout.extent();
    let ptr = t.data_ptr() as *const T;
    let data: &[T] = if len == 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: the tensor is a defined CPU tensor of element type T; libtorch keeps its
        // storage alive while `t` is borrowed, and every offset the layout addresses is below
        // `extent()` elements from `data_ptr` (which already includes the storage offset).
        unsafe { std::slice::from_raw_parts(ptr, len) }
    };
    TensorView::new(data, layout.shape(), layout.strides())
}

/// A mutable view of a CPU tensor's elements (any strides).
pub fn view_mut<T: Element>(t: &mut Tensor) -> Result<TensorViewMut<'_, T>> {
    let layout = checked_layout::<T>(t)?;
    let len = layout.extent();
    let ptr = t.data_ptr() as *mut T;
    let data: &mut [T] = if len == 0 || ptr.is_null() {
        &mut []
    } else {
        // SAFETY: as in `view`; the exclusive borrow of `t` stands for exclusive access.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    };
    TensorViewMut::new(data, layout.shape(), layout.strides())
}

/// The elements of a contiguous CPU tensor; a strided tensor is a `NotContiguous` error.
pub fn contiguous_slice<T: Element>(t: &Tensor) -> Result<&[T]> {
    view::<T>(t)?.contiguous_slice()
}

/// A new CPU tensor holding a copy of the view's elements, in row-major order.
pub fn from_view<T: Element>(v: &TensorView<'_, T>) -> Result<Tensor> {
    let shape = v
        .shape()
        .iter()
        .map(|&d| i64::try_from(d).map_err(|_| Error::Shape(format!("dimension {d} too large"))))
        .collect::<Result<Vec<i64>>>()?;
    let owned;
    let elements = match v.as_slice() {
        Some(s) => s,
        None => {
            owned = v.to_vec();
            &owned
        }
    };
    let bytes: &[u8] = bytemuck::cast_slice(elements);
    Ok(Tensor::f_from_data_size(bytes, &shape, T::DTYPE.into())?)
}
