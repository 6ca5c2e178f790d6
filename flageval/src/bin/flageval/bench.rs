//! `flageval bench`: items per second for our local model and for lm-eval's `hf` backend on
//! the same weights (a GGUF is converted to a Hugging Face folder first, and both read that)
//! and the same task, in one invocation on one machine; prints the ratio and checks that the
//! scores are identical and the log-likelihoods agree.

use anyhow::Context;
use flageval::evaluate::Options;
use flageval::model::Local;
use flageval::task::{discover, Task};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A .gguf file or a Hugging Face folder.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    task: String,
    #[arg(long, env = "FLAGEVAL_TASKS", default_value = "flageval/tasks")]
    task_dir: PathBuf,
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    num_fewshot: Option<usize>,
    /// A Python with lm-eval, transformers and torch importable (PYTHONPATH is passed on).
    #[arg(long, env = "FLAGEVAL_BENCH_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// lm-eval's `--batch_size`.
    #[arg(long, default_value_t = 8)]
    lmeval_batch_size: usize,
    /// The lm-eval driver script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lmeval_agree.py"))]
    script: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let found = discover(&a.task_dir)?;
    let path = found
        .iter()
        .find(|(n, _)| *n == a.task)
        .map(|(_, p)| p.clone())
        .with_context(|| format!("no task `{}` under {}", a.task, a.task_dir.display()))?;
    let overrides: Vec<String> = a
        .num_fewshot
        .iter()
        .map(|k| format!("num_fewshot={k}"))
        .collect();
    let task = Task::load_with(&path, &overrides)?;
    let scratch = tempfile::tempdir()?;
    let hf = if flagscale::source::is_gguf(&a.model) {
        let dir = scratch.path().join("hf");
        flagscale::convert::to_hf(&a.model, &dir, flagcore::DType::F32, false)?;
        dir
    } else {
        a.model.clone()
    };
    let items = a.limit.unwrap_or(usize::MAX).min(task.docs.len());

    // Ours: model loading included, as lm-eval's time includes its own.
    let start = Instant::now();
    let mut model = Local::load(&hf, tch::Device::Cpu)?;
    let loaded = start.elapsed().as_secs_f64();
    let opts = Options {
        limit: a.limit,
        bootstrap_iters: 0,
        ..Default::default()
    };
    let ours = flageval::evaluate::run_task(&task, &mut model, &opts)?;
    let ours_s = start.elapsed().as_secs_f64();

    let out = scratch.path().join("lmeval.json");
    let mut cmd = flagcore::python::script(&a.python, &a.script);
    cmd.arg("--task-yaml")
        .arg(&path)
        .arg("--data-file")
        .arg(&task.data_file)
        .arg("--model-dir")
        .arg(&hf)
        .args(["--batch-size", &a.lmeval_batch_size.to_string(), "--out"])
        .arg(&out)
        .env("HF_HOME", scratch.path().join("hf-home"));
    if let Some(l) = a.limit {
        cmd.args(["--limit", &l.to_string()]);
    }
    if let Some(k) = a.num_fewshot {
        cmd.args(["--num-fewshot", &k.to_string()]);
    }
    flagcore::python::run(&mut cmd).context("lm-eval failed")?;
    let theirs: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    let theirs_s = theirs["seconds"].as_f64().context("lm-eval's time")?;
    let mut worst = 0f64;
    for (o, t) in ours
        .samples
        .iter()
        .zip(theirs["items"].as_array().into_iter().flatten())
    {
        let lls = o["resps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r[0].as_f64());
        for (x, y) in lls.zip(t["lls"].as_array().into_iter().flatten()) {
            worst = worst.max((x.unwrap_or(f64::NAN) - y.as_f64().unwrap_or(f64::NAN)).abs());
        }
    }
    let same = ["acc", "acc_norm"]
        .iter()
        .all(|m| ours.value(m) == theirs[*m].as_f64());
    println!(
        "task {} ({} items, {}-shot), model {}",
        task.config.task,
        items,
        task.config.num_fewshot,
        a.model.display()
    );
    println!(
        "flageval:       {ours_s:8.2} s  {:8.2} items/s  acc {:.4}  acc_norm {:.4}  (model load {loaded:.2} s)",
        items as f64 / ours_s,
        ours.value("acc").unwrap_or(f64::NAN),
        ours.value("acc_norm").unwrap_or(f64::NAN)
    );
    println!(
        "lm-eval (hf):   {theirs_s:8.2} s  {:8.2} items/s  acc {:.4}  acc_norm {:.4}  (batch size {})",
        items as f64 / theirs_s,
        theirs["acc"].as_f64().unwrap_or(f64::NAN),
        theirs["acc_norm"].as_f64().unwrap_or(f64::NAN),
        a.lmeval_batch_size
    );
    println!(
        "speed ratio {:.2}x; scores identical: {same}; worst log-likelihood difference {worst:.2e}",
        theirs_s / ours_s
    );
    anyhow::ensure!(same, "scores differ from lm-eval's");
    Ok(())
}
