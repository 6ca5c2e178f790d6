//! Document output: zstd-compressed JSON Lines, written to a temporary file and renamed into
//! place only when complete.

use crate::{Document, Error, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct DocWriter {
    path: PathBuf,
    encoder: zstd::stream::write::Encoder<'static, BufWriter<tempfile::NamedTempFile>>,
    pub documents: u64,
}

impl std::fmt::Debug for DocWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocWriter")
            .field("path", &self.path)
            .field("documents", &self.documents)
            .finish()
    }
}

impl DocWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = flagcore::fsutil::temp_file_in(dir)?;
        let encoder = zstd::stream::write::Encoder::new(BufWriter::with_capacity(1 << 20, tmp), 3)
            .map_err(|e| Error::io(path, e))?;
        Ok(DocWriter {
            path: path.to_path_buf(),
            encoder,
            documents: 0,
        })
    }

    pub fn write(&mut self, doc: &Document) -> Result<()> {
        let mut line = serde_json::to_vec(doc)
            .map_err(|e| Error::Invalid(format!("document {}: {e}", doc.id)))?;
        line.push(b'\n');
        self.encoder
            .write_all(&line)
            .map_err(|e| Error::io(&self.path, e))?;
        self.documents += 1;
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        let path = self.path;
        let buf = self.encoder.finish().map_err(|e| Error::io(&path, e))?;
        let tmp = buf
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }
}

/// Iterates over what [`DocWriter`] wrote, one document at a time.
pub fn doc_iter(path: &Path) -> Result<impl Iterator<Item = Result<Document>>> {
    use std::io::BufRead;
    let path = path.to_path_buf();
    let reader = crate::read::jsonl::open(&path)?;
    Ok(reader.lines().enumerate().map(move |(i, line)| {
        let line = line.map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&line)
            .map_err(|e| Error::format(&path, format!("line {}", i + 1), e.to_string()))
    }))
}

/// Reads back what [`DocWriter`] wrote.
pub fn read_docs(path: &Path, mut f: impl FnMut(Document) -> Result<()>) -> Result<()> {
    use std::io::BufRead;
    let reader = crate::read::jsonl::open(path)?;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let doc: Document = serde_json::from_str(&line)
            .map_err(|e| Error::format(path, format!("line {}", i + 1), e.to_string()))?;
        f(doc)?;
    }
    Ok(())
}
