//! Borrowed strided tensors: the type kernel crates take, so they need no libtorch.
//!
//! A view is a slice plus a [`Layout`]; element `index` lives at `data[layout.offset(index)]`.
//! Constructors check that every addressed element lies inside the slice, so indexing a valid
//! view never goes out of bounds.

use crate::{DType, Element, Error, Layout, Result};

/// A read-only strided view over `&[T]`.
#[derive(Clone, Debug)]
pub struct TensorView<'a, T: Element> {
    data: &'a [T],
    layout: Layout,
}

/// A mutable strided view over `&mut [T]`.
#[derive(Debug)]
pub struct TensorViewMut<'a, T: Element> {
    data: &'a mut [T],
    layout: Layout,
}

fn check_fits(layout: &Layout, len: usize) -> Result<()> {
    if layout.extent() > len {
        return Err(Error::Shape(format!(
            "shape {:?} with strides {:?} needs {} elements but the slice holds {len}",
            layout.shape(),
            layout.strides(),
            layout.extent()
        )));
    }
    Ok(())
}

fn check_exact(shape: &[usize], len: usize) -> Result<Layout> {
    let layout = Layout::contiguous(shape.to_vec());
    if layout.numel() != len {
        return Err(Error::Shape(format!(
            "shape {shape:?} holds {} elements but the slice holds {len}",
            layout.numel()
        )));
    }
    Ok(layout)
}

impl<'a, T: Element> TensorView<'a, T> {
    /// A view with explicit strides (in elements).
    pub fn new(data: &'a [T], shape: &[usize], strides: &[usize]) -> Result<Self> {
        let layout = Layout::new(shape.to_vec(), strides.to_vec())?;
        check_fits(&layout, data.len())?;
        Ok(Self { data, layout })
    }

    /// A row-major view; the slice must hold exactly the shape's element count.
    pub fn from_slice(data: &'a [T], shape: &[usize]) -> Result<Self> {
        let layout = check_exact(shape, data.len())?;
        Ok(Self { data, layout })
    }

    pub fn dtype(&self) -> DType {
        T::DTYPE
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
    pub fn strides(&self) -> &[usize] {
        self.layout.strides()
    }
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// The backing slice, starting at the view's first element.
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    /// The elements in row-major order, when the view is contiguous.
    pub fn as_slice(&self) -> Option<&'a [T]> {
        self.is_contiguous().then(|| &self.data[..self.numel()])
    }

    /// Like [`as_slice`](Self::as_slice), with a typed error for strided views.
    pub fn contiguous_slice(&self) -> Result<&'a [T]> {
        self.as_slice().ok_or_else(|| Error::NotContiguous {
            shape: self.shape().to_vec(),
            strides: self.strides().to_vec(),
        })
    }

    pub fn get(&self, index: &[usize]) -> Option<T> {
        self.layout.offset(index).map(|o| self.data[o])
    }

    /// The same memory with dimensions reordered (no copy).
    pub fn permute(&self, dims: &[usize]) -> Result<Self> {
        Ok(Self {
            data: self.data,
            layout: self.layout.permute(dims)?,
        })
    }

    /// A sub-range of one dimension (no copy).
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Self> {
        let (layout, offset) = self.layout.narrow(dim, start, len)?;
        let data = if layout.numel() == 0 {
            &self.data[..0]
        } else {
            &self.data[offset..]
        };
        Ok(Self { data, layout })
    }

    /// A row-major copy of the elements.
    pub fn to_vec(&self) -> Vec<T> {
        match self.as_slice() {
            Some(s) => s.to_vec(),
            None => self.layout.offsets().map(|o| self.data[o]).collect(),
        }
    }
}

impl<'a, T: Element> TensorViewMut<'a, T> {
    /// A mutable view with explicit strides (in elements).
    pub fn new(data: &'a mut [T], shape: &[usize], strides: &[usize]) -> Result<Self> {
        let layout = Layout::new(shape.to_vec(), strides.to_vec())?;
        check_fits(&layout, data.len())?;
        Ok(Self { data, layout })
    }

    /// A row-major mutable view; the slice must hold exactly the shape's element count.
    pub fn from_slice(data: &'a mut [T], shape: &[usize]) -> Result<Self> {
        let layout = check_exact(shape, data.len())?;
        Ok(Self { data, layout })
    }

    pub fn dtype(&self) -> DType {
        T::DTYPE
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
    pub fn strides(&self) -> &[usize] {
        self.layout.strides()
    }
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// A read-only view of the same elements.
    pub fn view(&self) -> TensorView<'_, T> {
        TensorView {
            data: self.data,
            layout: self.layout.clone(),
        }
    }

    /// The elements in row-major order, when the view is contiguous.
    pub fn as_mut_slice(&mut self) -> Option<&mut [T]> {
        let n = self.numel();
        self.layout
            .is_contiguous()
            .then(move || &mut self.data[..n])
    }

    pub fn get_mut(&mut self, index: &[usize]) -> Option<&mut T> {
        let o = self.layout.offset(index)?;
        Some(&mut self.data[o])
    }

    /// Copies `src` (same shape, any strides) into this view, element by element.
    pub fn copy_from(&mut self, src: &TensorView<'_, T>) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::Shape(format!(
                "copy_from: source shape {:?} differs from destination shape {:?}",
                src.shape(),
                self.shape()
            )));
        }
        for (d, s) in self.layout.offsets().zip(src.layout.offsets()) {
            self.data[d] = src.data[s];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    #[test]
    fn strided_view_reads_the_right_elements() {
        let data: Vec<f32> = (0..6).map(|x| x as f32).collect();
        let v = TensorView::from_slice(&data, &[2, 3]).unwrap();
        assert_eq!(v.dtype(), DType::F32);
        assert_eq!(v.get(&[1, 2]), Some(5.0));
        let t = v.permute(&[1, 0]).unwrap();
        assert_eq!(t.to_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert!(t.as_slice().is_none());
        assert!(matches!(
            t.contiguous_slice(),
            Err(Error::NotContiguous { .. })
        ));
        let n = v.narrow(1, 1, 2).unwrap();
        assert_eq!(n.to_vec(), vec![1.0, 2.0, 4.0, 5.0]);
    }

    #[test]
    fn out_of_bounds_layouts_are_rejected() {
        let data = [bf16::ZERO; 5];
        let err = TensorView::new(&data, &[2, 3], &[3, 1])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs 6 elements but the slice holds 5"),
            "{err}"
        );
        assert!(TensorView::from_slice(&data, &[2, 2]).is_err());
        assert!(TensorView::new(&data, &[2, 2], &[3, 1]).is_ok());
        let empty: [f32; 0] = [];
        assert!(
            TensorView::from_slice(&empty, &[1 << 63, 2]).is_err(),
            "an overflowing shape"
        );
    }

    #[test]
    fn mutable_view_copies_a_transpose() {
        let src: Vec<i64> = (0..6).collect();
        let src = TensorView::from_slice(&src, &[2, 3]).unwrap();
        let src_t = src.permute(&[1, 0]).unwrap();
        let mut dst = vec![0i64; 6];
        let mut out = TensorViewMut::from_slice(&mut dst, &[3, 2]).unwrap();
        out.copy_from(&src_t).unwrap();
        *out.get_mut(&[0, 0]).unwrap() = 42;
        assert_eq!(out.view().to_vec(), vec![42, 3, 1, 4, 2, 5]);
        assert!(out.copy_from(&src).is_err());
        assert_eq!(dst, vec![42, 3, 1, 4, 2, 5]);
    }
}
