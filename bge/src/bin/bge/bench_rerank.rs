//! `bge bench-rerank`: (query, passage) pairs per second on the CPU for our reranker and
//! sentence-transformers' `CrossEncoder` on the same model, pairs and batch size, in one run
//! (the fastest of a few timed runs on each side, after a warm-up); prints the ratio and the
//! largest difference between the two sides' logits (so both did the same work).
//!
//! The model is a cross-encoder of cross-encoder/ms-marco-MiniLM-L-6-v2's architecture made
//! from an encoder folder by `scripts/rerank_bench.py make` (its classifier drawn at random:
//! no package carries trained reranker weights); the pairs are disfl_qa's questions with the
//! paragraph each was asked about. Each side batches as its users get it: ours sorted by
//! length (as FlagEmbedding's reranker does), `CrossEncoder.predict` in the given order.

use super::bench::{fastest, python_side, timed, torch_name};
use anyhow::Context;
use bge::rerank::Reranker;
use bge::retrieval::data::Dataset;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct RerankBenchArgs {
    /// A BERT encoder folder (e.g. the pinned all-MiniLM-L6-v2) to make the cross-encoder from.
    #[arg(long)]
    model: PathBuf,
    /// BIG-bench's disfl_qa task.json.
    #[arg(long)]
    disfl_qa: PathBuf,
    /// Pairs to score.
    #[arg(long, default_value_t = 512)]
    count: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Tokens per pair (longest first truncation on both sides).
    #[arg(long, default_value_t = 512)]
    max_length: usize,
    /// Timed runs per side; the fastest counts.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Dtypes to compare, each on both sides.
    #[arg(long, value_delimiter = ',', default_value = "f32", value_parser = super::weight_dtype)]
    dtypes: Vec<flagcore::DType>,
    /// A Python with sentence-transformers, transformers and torch importable.
    #[arg(long, env = "BGE_BENCH_PYTHON", default_value = "python3")]
    python: PathBuf,
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rerank_bench.py"))]
    script: PathBuf,
}

/// Each question with the paragraph it was asked about, the first `count`.
fn pairs(a: &RerankBenchArgs) -> anyhow::Result<Vec<(String, String)>> {
    let d = Dataset::from_disfl_qa(&a.disfl_qa)?;
    let corpus: std::collections::HashMap<&str, &str> = d
        .corpus
        .iter()
        .map(|(id, t)| (id.as_str(), t.as_str()))
        .collect();
    let mut out = Vec::new();
    for (qid, q) in &d.queries {
        let Some(rels) = d.qrels.get(qid) else {
            continue;
        };
        let mut docs: Vec<&String> = rels
            .iter()
            .filter(|(_, &r)| r > 0)
            .map(|(d, _)| d)
            .collect();
        docs.sort();
        if let Some(text) = docs.first().and_then(|d| corpus.get(d.as_str())) {
            out.push((q.clone(), text.to_string()));
        }
        if out.len() == a.count {
            break;
        }
    }
    anyhow::ensure!(!out.is_empty(), "no (question, paragraph) pairs");
    Ok(out)
}

pub fn run(a: RerankBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.count > 0, "--count must be at least 1");
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be at least 1");
    anyhow::ensure!(
        a.max_length > 2,
        "--max-length must leave room for the special tokens"
    );
    let pairs = pairs(&a)?;
    let scratch = tempfile::tempdir()?;
    let model = scratch.path().join("cross-encoder");
    let make: [&std::ffi::OsStr; 3] = ["make".as_ref(), a.model.as_os_str(), model.as_os_str()];
    flagcore::python::run(flagcore::python::script(&a.python, &a.script).args(make))?;
    let input = scratch.path().join("pairs.json");
    std::fs::write(&input, serde_json::to_vec(&pairs)?)?;
    println!(
        "{} pairs, batch size {}, {} torch threads",
        pairs.len(),
        a.batch_size,
        tch::get_num_threads()
    );
    let mut tokens = 0;
    println!("| dtype | ours pairs/s | CrossEncoder pairs/s | ratio | largest logit difference |");
    println!("|---|---|---|---|---|");
    for &dtype in &a.dtypes {
        let py = torch_name(dtype);
        let name = dtype.to_string();
        let mut r = Reranker::load(&model, a.max_length, dtype.into(), tch::Device::Cpu)?;
        r.batch_size = a.batch_size;
        tokens = pairs
            .iter()
            .map(|(q, p)| r.tokenize_pair(q, p).map(|(ids, ..)| ids.len()))
            .sum::<bge::Result<usize>>()?;
        r.score(&pairs[..a.batch_size.min(pairs.len())], false)?;
        let (runs, ours) = timed(a.repeats, || Ok(r.score(&pairs, false)?))?;
        drop(r);
        let ours_s = fastest(&runs);

        let out = scratch.path().join(format!("st-{name}.json"));
        let (batch, repeats) = (a.batch_size.to_string(), a.repeats.max(1).to_string());
        let max_length = a.max_length.to_string();
        let args = [
            "run".as_ref(),
            model.as_os_str(),
            input.as_os_str(),
            batch.as_ref(),
            max_length.as_ref(),
            py.as_ref(),
            repeats.as_ref(),
            out.as_os_str(),
        ];
        flagcore::python::run(flagcore::python::script(&a.python, &a.script).args(args))?;
        let (st_s, st) = python_side(&out)?;
        let theirs: Vec<f64> = st["scores"]
            .as_array()
            .context("no `scores`")?
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        anyhow::ensure!(
            theirs.len() == ours.len(),
            "the script returned {} scores for {} pairs",
            theirs.len(),
            ours.len()
        );
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(o, t)| (*o as f64 - t).abs())
            .fold(0f64, f64::max);
        let n = pairs.len() as f64;
        println!(
            "| {name} | {:.1} | {:.1} | {:.2}× | {worst:.2e} |",
            n / ours_s,
            n / st_s,
            st_s / ours_s
        );
    }
    println!("{tokens} tokens after truncation");
    Ok(())
}
