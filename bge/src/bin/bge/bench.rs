//! `bge bench`: sentences per second on the CPU for ours and sentence-transformers on the
//! same model folder, sentences and batch size, in one run, per dtype (the fastest of a few
//! timed runs on each side, after a warm-up); prints the ratio and
//! the worst cosine between the two sides' embeddings (so both did the same work).

use anyhow::Context;
use bge::retrieval::data::Dataset;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long)]
    model: PathBuf,
    /// A text file, one sentence per line.
    #[arg(long, conflicts_with = "disfl_qa")]
    input: Option<PathBuf>,
    /// BIG-bench's disfl_qa task.json: its questions and paragraphs, three to one.
    #[arg(long)]
    disfl_qa: Option<PathBuf>,
    /// Sentences to embed.
    #[arg(long, default_value_t = 1024)]
    count: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Timed runs per side; the fastest counts (the machine's noise only ever slows a run).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Dtypes to compare, each on both sides.
    #[arg(long, value_delimiter = ',', default_value = "f32,bf16", value_parser = super::weight_dtype)]
    dtypes: Vec<flagcore::DType>,
    /// A Python with sentence-transformers and torch importable (PYTHONPATH is passed on).
    #[arg(long, env = "BGE_BENCH_PYTHON", default_value = "python3")]
    python: PathBuf,
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/st_bench.py"))]
    script: PathBuf,
}

fn sentences(a: &BenchArgs) -> anyhow::Result<Vec<String>> {
    let all: Vec<String> = match (&a.input, &a.disfl_qa) {
        (Some(p), None) => std::fs::read_to_string(p)
            .with_context(|| format!("reading --input {}", p.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        (None, Some(t)) => {
            let d = Dataset::from_disfl_qa(t)?;
            let mut q = d.queries.into_iter().map(|(_, t)| t);
            let mut p = d.corpus.into_iter().map(|(_, t)| t);
            let mut out = Vec::new();
            loop {
                let before = out.len();
                out.extend(q.by_ref().take(3));
                out.extend(p.by_ref().take(1));
                if out.len() == before {
                    break out;
                }
            }
        }
        _ => anyhow::bail!("give --input FILE or --disfl-qa TASK_JSON"),
    };
    anyhow::ensure!(!all.is_empty(), "no sentences");
    Ok(all.into_iter().take(a.count).collect())
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    let texts = sentences(&a)?;
    let scratch = tempfile::tempdir()?;
    let input = scratch.path().join("sentences.json");
    std::fs::write(&input, serde_json::to_vec(&texts)?)?;
    println!(
        "{} sentences, batch size {}, {} torch threads",
        texts.len(),
        a.batch_size,
        tch::get_num_threads()
    );
    let mut tokens = 0;
    println!("| dtype | ours sent/s | sentence-transformers sent/s | ratio | worst cosine |");
    println!("|---|---|---|---|---|");
    for &dtype in &a.dtypes {
        let py = torch_name(dtype);
        let name = dtype.to_string();
        let mut enc = bge::Encoder::load(&a.model, dtype.into(), tch::Device::Cpu)?;
        enc.batch_size = a.batch_size.max(1);
        tokens = enc.tokenize(&texts)?.iter().map(Vec::len).sum();
        enc.encode(&texts[..a.batch_size.min(texts.len())])?;
        let (runs, ours) = timed(a.repeats, || Ok(enc.encode(&texts)?))?;
        drop(enc);
        let ours_s = fastest(&runs);
        let rates: Vec<String> = runs
            .iter()
            .map(|s| format!("{:.1}", texts.len() as f64 / s))
            .collect();
        eprintln!("{name}: ours {} sentences/s", rates.join(", "));

        let out = scratch.path().join(format!("st-{name}.json"));
        let (batch, repeats) = (a.batch_size.to_string(), a.repeats.max(1).to_string());
        let args = [
            a.model.as_os_str(),
            input.as_os_str(),
            batch.as_ref(),
            py.as_ref(),
            repeats.as_ref(),
            out.as_os_str(),
        ];
        flagcore::python::run(flagcore::python::script(&a.python, &a.script).args(args))?;
        let (st_s, st) = python_side(&out)?;
        let theirs = st["embeddings"].as_array().context("no `embeddings`")?;
        anyhow::ensure!(
            theirs.len() == ours.len(),
            "the script returned {} embeddings for {} sentences",
            theirs.len(),
            ours.len()
        );
        let mut worst = f64::INFINITY;
        for (o, t) in ours.iter().zip(theirs) {
            let t: Vec<f64> = t
                .as_array()
                .context("an embedding is not a list")?
                .iter()
                .filter_map(serde_json::Value::as_f64)
                .collect();
            let dot: f64 = o.iter().zip(&t).map(|(x, y)| *x as f64 * y).sum();
            let no = o.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let nt = t.iter().map(|y| y * y).sum::<f64>().sqrt();
            worst = worst.min(dot / (no * nt).max(1e-30));
        }
        let n = texts.len() as f64;
        println!(
            "| {name} | {:.1} | {:.1} | {:.2}× | {worst:.6} |",
            n / ours_s,
            n / st_s,
            st_s / ours_s
        );
    }
    println!("{tokens} tokens after truncation");
    Ok(())
}

/// torch's name for `dtype`, which the scripts resolve with getattr(torch, …).
pub(crate) fn torch_name(dtype: flagcore::DType) -> &'static str {
    match dtype {
        flagcore::DType::BF16 => "bfloat16",
        flagcore::DType::F16 => "float16",
        _ => "float32",
    }
}

/// The fastest of timed runs (the machine's noise only ever slows a run).
pub(crate) fn fastest(runs: &[f64]) -> f64 {
    runs.iter().copied().fold(f64::INFINITY, f64::min)
}

/// `f` run `repeats` times (at least once): each run's seconds and the last run's result.
pub(crate) fn timed<T>(
    repeats: usize,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(Vec<f64>, T)> {
    let mut runs = Vec::new();
    loop {
        let start = std::time::Instant::now();
        let out = f()?;
        runs.push(start.elapsed().as_secs_f64());
        if runs.len() >= repeats.max(1) {
            return Ok((runs, out));
        }
    }
}

/// The seconds and the whole JSON a Python side wrote to `out`, checked to have run on as
/// many torch threads as ours: otherwise the ratio would compare thread counts.
pub(crate) fn python_side(out: &Path) -> anyhow::Result<(f64, serde_json::Value)> {
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out).with_context(|| format!("reading {}", out.display()))?,
    )?;
    let seconds = v["seconds"]
        .as_f64()
        .context("no `seconds` from the script")?;
    let threads = v["threads"]
        .as_i64()
        .context("no `threads` from the script")?;
    anyhow::ensure!(
        threads == tch::get_num_threads() as i64,
        "the Python side ran with {threads} torch threads, ours with {}",
        tch::get_num_threads()
    );
    Ok((seconds, v))
}
