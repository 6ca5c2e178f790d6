//! Megatron-LM's indexed dataset (`.bin` + `.idx`), written byte for byte as megatron-core's
//! `IndexedDatasetBuilder` writes it, and read through a memory map.
//!
//! `.idx`: magic `MMIDIDX\0\0`, u64 version 1, u8 dtype code, u64 sequence count, u64 count of
//! document indices (documents + 1), then i32 sequence lengths, i64 byte pointers into `.bin`,
//! i64 document indices (starting at 0, one past each document's last sequence). All
//! little-endian. `.bin`: the tokens, back to back, in the dtype the code names.

mod reader;
mod writer;

pub use reader::IndexedDataset;
pub use writer::IndexedWriter;

use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";
pub const VERSION: u64 = 1;

/// Token storage type; Megatron's codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenDType {
    U16,
    I32,
}

impl TokenDType {
    /// Megatron's `DType.optimal_dtype`: u16 when the vocabulary has fewer than 65,500 tokens.
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size < 65_500 {
            TokenDType::U16
        } else {
            TokenDType::I32
        }
    }

    pub fn code(self) -> u8 {
        match self {
            TokenDType::U16 => 8,
            TokenDType::I32 => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            8 => Some(TokenDType::U16),
            4 => Some(TokenDType::I32),
            _ => None,
        }
    }

    pub fn size(self) -> usize {
        match self {
            TokenDType::U16 => 2,
            TokenDType::I32 => 4,
        }
    }
}

pub fn idx_path(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".idx")
}

pub fn bin_path(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".bin")
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}
