//! WuDaoCorpora files: one JSON array of records per file, read one record at a time.
//!
//! Files reach several GB, so the array is never parsed whole: a byte scanner finds each
//! element's extent (tracking strings, escapes and nesting), and only that element is parsed.
//! A malformed element is reported and skipped; the scan goes on at the next one.

use super::{BadRecord, FieldMap, Record, Sink};
use crate::{Error, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Between,
    Element,
    Done,
}

struct Scanner<'s, 'a> {
    path: &'s Path,
    fields: &'s FieldMap,
    source: &'s str,
    stem: String,
    sink: &'s mut Sink<'a>,
    element: Vec<u8>,
    element_start: u64,
    records: usize,
}

impl Scanner<'_, '_> {
    fn bad(&mut self, position: String, kind: &str, message: String) -> Result<()> {
        (self.sink)(Record::Bad(BadRecord {
            path: self.path.to_path_buf(),
            position,
            kind: kind.into(),
            message,
        }))
    }

    fn emit(&mut self) -> Result<()> {
        self.records += 1;
        let position = format!("byte {} (record {})", self.element_start, self.records);
        let bytes = std::mem::take(&mut self.element);
        let parsed = serde_json::from_slice::<serde_json::Value>(&bytes);
        let result = match parsed {
            Err(e) => {
                let kind = if std::str::from_utf8(&bytes).is_err() {
                    "invalid_utf8"
                } else {
                    "malformed_json"
                };
                self.bad(position, kind, e.to_string())
            }
            Ok(value) => match self.fields.to_document(
                value,
                format!("{}:{}", self.stem, self.records),
                self.source,
            ) {
                Ok((doc, unknown)) => {
                    if !unknown.is_empty() {
                        self.bad(position, "unknown_field", format!("fields {unknown:?}"))?;
                    }
                    (self.sink)(Record::Doc(doc))
                }
                Err((kind, message)) => self.bad(position, &kind, message),
            },
        };
        self.element = bytes;
        self.element.clear();
        result
    }
}

pub fn read(path: &Path, fields: &FieldMap, source: &str, sink: &mut Sink<'_>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let stem = path
        .file_stem()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut sc = Scanner {
        path,
        fields,
        source,
        stem,
        sink,
        element: Vec::new(),
        element_start: 0,
        records: 0,
    };
    let (mut state, mut depth, mut in_str, mut esc) = (State::Start, 0usize, false, false);
    let mut offset = 0u64;
    loop {
        let chunk = reader.fill_buf().map_err(|e| Error::io(path, e))?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        for (i, &b) in chunk.iter().enumerate() {
            let at = offset + i as u64;
            match state {
                State::Start => {
                    if b.is_ascii_whitespace() || (at < 3 && [0xEF, 0xBB, 0xBF][at as usize] == b) {
                        continue;
                    }
                    if b != b'[' {
                        let what = format!(
                            "a WuDao file is one JSON array, but it starts with {:?}",
                            b as char
                        );
                        return sc.bad(format!("byte {at}"), "not_an_array", what);
                    }
                    state = State::Between;
                }
                State::Between => match b {
                    b' ' | b'\t' | b'\r' | b'\n' | b',' => {}
                    b']' => state = State::Done,
                    _ => {
                        sc.element_start = at;
                        sc.element.push(b);
                        (depth, in_str, esc) = (0, b == b'"', false);
                        if b == b'{' || b == b'[' {
                            depth = 1;
                        }
                        state = State::Element;
                    }
                },
                State::Element => {
                    if in_str {
                        sc.element.push(b);
                        if esc {
                            esc = false;
                        } else if b == b'\\' {
                            esc = true;
                        } else if b == b'"' {
                            in_str = false;
                            if depth == 0 {
                                sc.emit()?;
                                state = State::Between;
                            }
                        }
                        continue;
                    }
                    match b {
                        b'"' => {
                            in_str = true;
                            sc.element.push(b);
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            sc.element.push(b);
                        }
                        b'}' | b']' if depth > 0 => {
                            depth -= 1;
                            sc.element.push(b);
                            if depth == 0 {
                                sc.emit()?;
                                state = State::Between;
                            }
                        }
                        b']' => {
                            sc.emit()?;
                            state = State::Done;
                        }
                        b',' | b' ' | b'\t' | b'\r' | b'\n' if depth == 0 => {
                            sc.emit()?;
                            state = State::Between;
                        }
                        _ => sc.element.push(b),
                    }
                }
                State::Done => {
                    if !b.is_ascii_whitespace() {
                        return sc.bad(
                            format!("byte {at}"),
                            "trailing_data",
                            "data after the closing `]`".into(),
                        );
                    }
                }
            }
        }
        offset += n as u64;
        reader.consume(n);
    }
    match state {
        State::Done => Ok(()),
        State::Start => sc.bad(
            "byte 0".into(),
            "empty_file",
            "no JSON array in the file".into(),
        ),
        State::Between | State::Element => {
            let what = format!(
                "the array is not closed: the file ends at byte {offset} after {} records",
                sc.records
            );
            sc.bad(format!("byte {offset}"), "truncated", what)
        }
    }
}
