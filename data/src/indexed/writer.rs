//! Writes an indexed dataset; nothing appears under the final names until `finish`.

use super::{bin_path, idx_path, TokenDType, MAGIC, VERSION};
use crate::{Error, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct IndexedWriter {
    prefix: PathBuf,
    dtype: TokenDType,
    bin: BufWriter<tempfile::NamedTempFile>,
    lengths: Vec<i32>,
    /// Megatron's `document_indices`: starts at 0, one entry appended per document.
    doc_indices: Vec<i64>,
    max_token: u32,
}

impl IndexedWriter {
    /// Starts `<prefix>.bin` / `<prefix>.idx` (written to temporaries until [`finish`](Self::finish)).
    pub fn create(prefix: &Path, dtype: TokenDType) -> Result<Self> {
        let dir = match prefix.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = flagcore::fsutil::temp_file_in(&dir)?;
        Ok(Self {
            prefix: prefix.to_path_buf(),
            dtype,
            bin: BufWriter::with_capacity(1 << 20, tmp),
            lengths: Vec::new(),
            doc_indices: vec![0],
            max_token: 0,
        })
    }

    /// Appends one document as one sequence (Megatron's `add_item` + `end_document`).
    pub fn add_document(&mut self, tokens: &[u32]) -> Result<()> {
        let len = i32::try_from(tokens.len()).map_err(|_| {
            Error::Invalid(format!(
                "document of {} tokens is too long for int32 lengths",
                tokens.len()
            ))
        })?;
        let max = tokens.iter().copied().max().unwrap_or(0);
        let fits = match self.dtype {
            TokenDType::U16 => max <= u32::from(u16::MAX),
            TokenDType::I32 => max <= i32::MAX as u32,
        };
        if !fits {
            return Err(Error::Invalid(format!(
                "token id {max} does not fit the dataset's {:?} tokens",
                self.dtype
            )));
        }
        self.max_token = self.max_token.max(max);
        let path = bin_path(&self.prefix);
        match self.dtype {
            TokenDType::U16 => {
                let buf: Vec<u8> = tokens
                    .iter()
                    .flat_map(|&t| (t as u16).to_le_bytes())
                    .collect();
                self.bin.write_all(&buf)
            }
            TokenDType::I32 => {
                let buf: Vec<u8> = tokens
                    .iter()
                    .flat_map(|&t| (t as i32).to_le_bytes())
                    .collect();
                self.bin.write_all(&buf)
            }
        }
        .map_err(|e| Error::io(&path, e))?;
        self.lengths.push(len);
        self.doc_indices.push(self.lengths.len() as i64);
        Ok(())
    }

    pub fn documents(&self) -> usize {
        self.doc_indices.len() - 1
    }

    pub fn tokens(&self) -> u64 {
        self.lengths.iter().map(|&l| l as u64).sum()
    }

    /// Writes the index and moves both files into place: `.bin` first, `.idx` last, so an
    /// `.idx` present means the pair is complete.
    pub fn finish(self) -> Result<()> {
        let bin_final = bin_path(&self.prefix);
        let idx_final = idx_path(&self.prefix);
        let tmp = self
            .bin
            .into_inner()
            .map_err(|e| Error::io(&bin_final, e.into_error()))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(&bin_final, e))?;
        let mut idx = Vec::with_capacity(34 + self.lengths.len() * 12 + self.doc_indices.len() * 8);
        idx.extend_from_slice(MAGIC);
        idx.extend_from_slice(&VERSION.to_le_bytes());
        idx.push(self.dtype.code());
        idx.extend_from_slice(&(self.lengths.len() as u64).to_le_bytes());
        idx.extend_from_slice(&(self.doc_indices.len() as u64).to_le_bytes());
        for l in &self.lengths {
            idx.extend_from_slice(&l.to_le_bytes());
        }
        let item = self.dtype.size() as i64;
        let mut ptr = 0i64;
        for l in &self.lengths {
            idx.extend_from_slice(&ptr.to_le_bytes());
            ptr += *l as i64 * item;
        }
        for d in &self.doc_indices {
            idx.extend_from_slice(&d.to_le_bytes());
        }
        // An old `.idx` must not survive beside the new `.bin`: remove it first, so a crash
        // between the renames leaves no `.idx`, and no pair that looks complete.
        match std::fs::remove_file(&idx_final) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&idx_final, e)),
        }
        tmp.persist(&bin_final)
            .map_err(|e| Error::io(&bin_final, e.error))?;
        flagcore::fsutil::write_atomic(&idx_final, &idx)?;
        Ok(())
    }
}
