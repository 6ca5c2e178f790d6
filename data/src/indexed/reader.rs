//! Reads an indexed dataset: the index into memory, the tokens through a memory map.

use super::{bin_path, idx_path, TokenDType, MAGIC, VERSION};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct IndexedDataset {
    prefix: PathBuf,
    dtype: TokenDType,
    lengths: Vec<i32>,
    pointers: Vec<i64>,
    doc_indices: Vec<i64>,
    bin: memmap2::Mmap,
}

fn read_array<T: bytemuck::Pod>(
    bytes: &[u8],
    at: &mut usize,
    n: usize,
    path: &Path,
    what: &str,
) -> Result<Vec<T>> {
    let size = std::mem::size_of::<T>();
    let end = n
        .checked_mul(size)
        .and_then(|b| b.checked_add(*at))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            Error::format(
                path,
                format!("byte {at}"),
                format!("truncated: {n} {what} do not fit"),
            )
        })?;
    // The arrays start at unaligned offsets (the header is 34 bytes): copy element by element.
    let out = bytes[*at..end]
        .chunks_exact(size)
        .map(bytemuck::pod_read_unaligned)
        .collect();
    *at = end;
    Ok(out)
}

impl IndexedDataset {
    pub fn open(prefix: &Path) -> Result<Self> {
        let idx_file = idx_path(prefix);
        let bytes = std::fs::read(&idx_file).map_err(|e| Error::io(&idx_file, e))?;
        let fail = |at: &str, m: String| Error::format(&idx_file, at, m);
        if bytes.len() < 34 || &bytes[..9] != MAGIC {
            return Err(fail(
                "header",
                "not a Megatron index (magic MMIDIDX missing)".into(),
            ));
        }
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        let version = u64_at(9);
        if version != VERSION {
            return Err(fail(
                "header",
                format!("version {version}, expected {VERSION}"),
            ));
        }
        let dtype = TokenDType::from_code(bytes[17]).ok_or_else(|| {
            fail(
                "header",
                format!(
                    "token dtype code {} (only 8 = u16 and 4 = i32 hold token ids)",
                    bytes[17]
                ),
            )
        })?;
        let n_seq = usize::try_from(u64_at(18))
            .map_err(|_| fail("header", "sequence count too large".into()))?;
        let n_doc = usize::try_from(u64_at(26))
            .map_err(|_| fail("header", "document count too large".into()))?;
        let mut at = 34;
        let lengths: Vec<i32> = read_array(&bytes, &mut at, n_seq, &idx_file, "sequence lengths")?;
        let pointers: Vec<i64> =
            read_array(&bytes, &mut at, n_seq, &idx_file, "sequence pointers")?;
        let doc_indices: Vec<i64> =
            read_array(&bytes, &mut at, n_doc, &idx_file, "document indices")?;
        let bin_file = bin_path(prefix);
        let file = std::fs::File::open(&bin_file).map_err(|e| Error::io(&bin_file, e))?;
        // SAFETY: read-only map of a file we do not modify; see memmap2's caveats on files
        // truncated by other processes.
        let bin = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&bin_file, e))?;
        let ds = Self {
            prefix: prefix.to_path_buf(),
            dtype,
            lengths,
            pointers,
            doc_indices,
            bin,
        };
        ds.validate()?;
        Ok(ds)
    }

    fn validate(&self) -> Result<()> {
        let fail = |m: String| Error::format(idx_path(&self.prefix), "index", m);
        let item = self.dtype.size() as i64;
        for (i, (&len, &ptr)) in self.lengths.iter().zip(&self.pointers).enumerate() {
            let end = ptr.checked_add(len as i64 * item);
            if len < 0 || ptr < 0 || end.is_none_or(|e| e as u64 > self.bin.len() as u64) {
                return Err(fail(format!(
                    "sequence {i} (pointer {ptr}, length {len}) lies outside the .bin of {} bytes",
                    self.bin.len()
                )));
            }
        }
        if self.doc_indices.first() != Some(&0) {
            return Err(fail("document indices must start at 0".into()));
        }
        if self.doc_indices.windows(2).any(|w| w[1] < w[0])
            || self
                .doc_indices
                .last()
                .is_some_and(|&l| l as usize != self.lengths.len())
        {
            return Err(fail(
                "document indices must rise to the sequence count".into(),
            ));
        }
        Ok(())
    }

    pub fn dtype(&self) -> TokenDType {
        self.dtype
    }

    /// Number of sequences (one per document for what we write).
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    pub fn num_documents(&self) -> usize {
        self.doc_indices.len().saturating_sub(1)
    }

    pub fn sequence_lengths(&self) -> &[i32] {
        &self.lengths
    }

    pub fn document_indices(&self) -> &[i64] {
        &self.doc_indices
    }

    pub fn total_tokens(&self) -> u64 {
        self.lengths.iter().map(|&l| l as u64).sum()
    }

    /// Appends tokens `offset..offset+len` of sequence `i` to `out`, widened to i64 (what
    /// training feeds libtorch). Out-of-range requests are errors, not panics.
    pub fn read_into(&self, i: usize, offset: usize, len: usize, out: &mut Vec<i64>) -> Result<()> {
        let seq_len = *self
            .lengths
            .get(i)
            .ok_or_else(|| Error::Invalid(format!("sequence {i} of {}", self.len())))?
            as usize;
        if offset.checked_add(len).is_none_or(|e| e > seq_len) {
            return Err(Error::Invalid(format!(
                "tokens {offset}..{} of a {seq_len}-token sequence",
                offset.saturating_add(len)
            )));
        }
        let item = self.dtype.size();
        let start = self.pointers[i] as usize + offset * item;
        let bytes = &self.bin[start..start + len * item];
        match self.dtype {
            TokenDType::U16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as i64),
            ),
            TokenDType::I32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
            ),
        }
        Ok(())
    }

    /// The whole sequence `i`.
    pub fn get(&self, i: usize) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        let len = *self
            .lengths
            .get(i)
            .ok_or_else(|| Error::Invalid(format!("sequence {i} of {}", self.len())))?
            as usize;
        self.read_into(i, 0, len, &mut out)?;
        Ok(out)
    }
}
