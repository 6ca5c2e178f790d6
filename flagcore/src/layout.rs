//! Shape and strides (in elements) of a strided tensor, and the index arithmetic on them.

use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
}

impl Layout {
    /// A layout with explicit strides; checks the ranks agree and the extent does not overflow.
    pub fn new(shape: Vec<usize>, strides: Vec<usize>) -> Result<Self> {
        if shape.len() != strides.len() {
            return Err(Error::Shape(format!(
                "shape {shape:?} has rank {} but strides {strides:?} have rank {}",
                shape.len(),
                strides.len()
            )));
        }
        let layout = Layout { shape, strides };
        layout.checked_extent().ok_or_else(|| {
            Error::Shape(format!(
                "shape {:?} with strides {:?} addresses more elements than memory holds",
                layout.shape, layout.strides
            ))
        })?;
        Ok(layout)
    }

    /// Row-major (C order) strides.
    pub fn contiguous(shape: Vec<usize>) -> Self {
        let mut strides = vec![0; shape.len()];
        let mut acc = 1usize;
        for (stride, &dim) in strides.iter_mut().zip(&shape).rev() {
            *stride = acc;
            acc = acc.saturating_mul(dim);
        }
        Layout { shape, strides }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Element count; saturates instead of wrapping, so an impossible shape never matches a
    /// real slice length.
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// How many elements the backing slice must hold: one past the farthest addressed element.
    pub fn extent(&self) -> usize {
        self.checked_extent().unwrap_or(usize::MAX)
    }

    fn checked_extent(&self) -> Option<usize> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        self.shape
            .iter()
            .zip(&self.strides)
            .try_fold(1usize, |acc, (&d, &s)| {
                acc.checked_add((d - 1).checked_mul(s)?)
            })
    }

    /// Whether elements sit in row-major order with no gaps (size-1 dims may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected = expected.saturating_mul(d);
        }
        true
    }

    /// The flat offset of a multi-index, or `None` when it is out of bounds.
    pub fn offset(&self, index: &[usize]) -> Option<usize> {
        if index.len() != self.rank() {
            return None;
        }
        let mut off = 0;
        for ((&i, &d), &s) in index.iter().zip(&self.shape).zip(&self.strides) {
            if i >= d {
                return None;
            }
            off += i * s;
        }
        Some(off)
    }

    /// Reorders the dimensions: `dims[k]` is the old dimension that becomes dimension `k`.
    pub fn permute(&self, dims: &[usize]) -> Result<Self> {
        let mut seen = vec![false; self.rank()];
        let valid = dims.len() == self.rank()
            && dims
                .iter()
                .all(|&d| d < seen.len() && !std::mem::replace(&mut seen[d], true));
        if !valid {
            return Err(Error::Shape(format!(
                "permutation {dims:?} does not reorder the {} dimensions of shape {:?}",
                self.rank(),
                self.shape
            )));
        }
        Ok(Layout {
            shape: dims.iter().map(|&d| self.shape[d]).collect(),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
        })
    }

    /// Keeps `len` entries of dimension `dim` from `start`; returns the new layout and the
    /// element offset where it begins.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<(Self, usize)> {
        let size = *self.shape.get(dim).ok_or_else(|| {
            Error::Shape(format!(
                "narrow: dimension {dim} out of range for shape {:?}",
                self.shape
            ))
        })?;
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::Shape(format!(
                "narrow: {start}..{} is outside dimension {dim} of size {size}",
                start.saturating_add(len)
            )));
        }
        let mut shape = self.shape.clone();
        shape[dim] = len;
        let offset = if len == 0 {
            0
        } else {
            start * self.strides[dim]
        };
        Ok((
            Layout {
                shape,
                strides: self.strides.clone(),
            },
            offset,
        ))
    }

    /// Flat offsets of every element in row-major logical order.
    pub fn offsets(&self) -> impl Iterator<Item = usize> + '_ {
        let numel = self.numel();
        let mut index = vec![0usize; self.rank()];
        let mut offset = 0usize;
        (0..numel).map(move |n| {
            if n > 0 {
                // Odometer increment, carrying from the last dimension.
                for d in (0..index.len()).rev() {
                    index[d] += 1;
                    offset += self.strides[d];
                    if index[d] < self.shape[d] {
                        break;
                    }
                    offset -= index[d] * self.strides[d];
                    index[d] = 0;
                }
            }
            offset
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_strides_and_offsets() {
        let l = Layout::contiguous(vec![2, 3, 4]);
        assert_eq!(l.strides(), &[12, 4, 1]);
        assert!(l.is_contiguous());
        assert_eq!(l.extent(), 24);
        assert_eq!(l.offsets().collect::<Vec<_>>(), (0..24).collect::<Vec<_>>());
        assert_eq!(l.offset(&[1, 2, 3]), Some(23));
        assert_eq!(l.offset(&[2, 0, 0]), None);
    }

    #[test]
    fn permute_and_narrow() {
        let l = Layout::contiguous(vec![2, 3]);
        let t = l.permute(&[1, 0]).unwrap();
        assert_eq!(t.shape(), &[3, 2]);
        assert!(!t.is_contiguous());
        assert_eq!(t.offsets().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
        assert!(l.permute(&[0, 0]).is_err());
        assert!(l.permute(&[0]).is_err());
        let (n, off) = l.narrow(1, 1, 2).unwrap();
        assert_eq!((n.shape(), off), (&[2, 2][..], 1));
        assert_eq!(n.offsets().collect::<Vec<_>>(), vec![0, 1, 3, 4]);
        assert!(l.narrow(1, 2, 2).is_err());
        assert!(l.narrow(2, 0, 1).is_err());
    }

    #[test]
    fn rank_mismatch_and_broadcast_strides() {
        assert!(Layout::new(vec![2, 3], vec![1]).is_err());
        let b = Layout::new(vec![4, 3], vec![0, 1]).unwrap();
        assert_eq!(b.extent(), 3);
        assert!(!b.is_contiguous());
        assert!(Layout::new(vec![usize::MAX, 3], vec![usize::MAX, 1]).is_err());
        assert_eq!(Layout::new(vec![0, 5], vec![5, 1]).unwrap().extent(), 0);
    }
}
