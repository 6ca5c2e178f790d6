//! `bge split`, `bge mine-negatives`, `bge finetune`: from a retrieval set to a fine-tuned
//! model folder, each step writing a file the next one reads (FlagEmbedding's JSONL).

use anyhow::Context;
use bge::finetune::{self, data, mine::MineOptions, TrainOptions};
use bge::retrieval::data::Dataset;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SplitArgs {
    /// A folder with corpus.jsonl, queries.jsonl and qrels.jsonl.
    #[arg(long, conflicts_with = "disfl_qa")]
    data: Option<PathBuf>,
    /// BIG-bench's disfl_qa task.json.
    #[arg(long)]
    disfl_qa: Option<PathBuf>,
    /// Hold out every N-th document and its queries.
    #[arg(long, default_value_t = 5)]
    every: usize,
    /// Writes OUT/train.jsonl (query + positives), OUT/train/ and OUT/test/ (retrieval sets;
    /// the test set keeps the whole corpus).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct MineArgs {
    #[arg(long)]
    model: PathBuf,
    /// JSONL of {query, pos, neg?}.
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    output: PathBuf,
    /// A corpus.jsonl ({text, title?}) to draw negatives from; default: every pos and neg of
    /// the input.
    #[arg(long)]
    candidate_pool: Option<PathBuf>,
    /// Ranks to sample from, START-END (0-based, end excluded).
    #[arg(long, default_value = "10-210")]
    range: String,
    #[arg(long, default_value_t = 15)]
    negatives: usize,
    #[arg(long, default_value = "")]
    query_instruction: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

#[derive(clap::Args, Debug)]
pub struct FinetuneArgs {
    #[arg(long)]
    model: PathBuf,
    /// JSONL of {query, pos, neg} (negatives from `bge mine-negatives`).
    #[arg(long)]
    train: PathBuf,
    /// The fine-tuned model folder (must not exist or be empty).
    #[arg(long)]
    output: PathBuf,
    #[arg(long, default_value_t = 1e-5)]
    learning_rate: f64,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Queries per step.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 8)]
    group_size: usize,
    #[arg(long, default_value_t = 0.02)]
    temperature: f64,
    #[arg(long, default_value_t = 0.1)]
    warmup_ratio: f64,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    #[arg(long, default_value_t = 32)]
    query_max_len: usize,
    #[arg(long, default_value_t = 128)]
    passage_max_len: usize,
    #[arg(long, default_value = "")]
    query_instruction: String,
    #[arg(long)]
    max_steps: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn split(a: SplitArgs) -> anyhow::Result<()> {
    let set = match (&a.data, &a.disfl_qa) {
        (Some(d), None) => Dataset::load(d)?,
        (None, Some(t)) => Dataset::from_disfl_qa(t)?,
        _ => anyhow::bail!("give --data DIR or --disfl-qa TASK_JSON"),
    };
    let (train, test) = set.split(a.every);
    train.save(&a.out.join("train"))?;
    test.save(&a.out.join("test"))?;
    data::write_jsonl(&a.out.join("train.jsonl"), &train.examples())?;
    eprintln!(
        "{}: train {} queries over {} documents, test {} queries over {} documents",
        a.out.display(),
        train.queries.len(),
        train.corpus.len(),
        test.queries.len(),
        test.corpus.len()
    );
    Ok(())
}

fn parse_range(s: &str) -> anyhow::Result<(usize, usize)> {
    let (a, b) = s
        .split_once('-')
        .with_context(|| format!("--range {s}: expected START-END"))?;
    let (a, b) = (a.trim().parse()?, b.trim().parse()?);
    anyhow::ensure!(a < b, "--range {s}: START must be below END");
    Ok((a, b))
}

pub fn mine_negatives(a: MineArgs) -> anyhow::Result<()> {
    let range = parse_range(&a.range)?;
    let mut examples = data::read_jsonl(&a.input)?;
    let pool = match &a.candidate_pool {
        Some(p) => Some(
            Dataset::load_corpus(p, false)?
                .into_iter()
                .map(|(_, t)| t)
                .collect(),
        ),
        None => None,
    };
    let enc = super::load(&a.model, a.batch_size)?;
    let opts = MineOptions {
        range,
        negatives: a.negatives,
        query_instruction: a.query_instruction,
        seed: a.seed,
    };
    let start = std::time::Instant::now();
    finetune::mine::mine(&enc, &mut examples, pool, &opts)?;
    data::write_jsonl(&a.output, &examples)?;
    eprintln!(
        "{}: {} examples with {} negatives each ({:.1} s)",
        a.output.display(),
        examples.len(),
        a.negatives,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn finetune(a: FinetuneArgs) -> anyhow::Result<()> {
    let opts = TrainOptions {
        learning_rate: a.learning_rate,
        epochs: a.epochs,
        batch_size: a.batch_size,
        group_size: a.group_size,
        temperature: a.temperature,
        warmup_ratio: a.warmup_ratio,
        weight_decay: a.weight_decay,
        max_grad_norm: 1.0,
        query_max_len: a.query_max_len,
        passage_max_len: a.passage_max_len,
        query_instruction: a.query_instruction,
        seed: a.seed,
        max_steps: a.max_steps,
    };
    let mut manifest = flagcore::Manifest::begin("bge finetune", env!("CARGO_PKG_VERSION"))
        .with_config(&opts)?
        .with_seed(a.seed);
    let examples = data::read_jsonl(&a.train)?;
    flagcore::torch::manual_seed(a.seed);
    let mut enc = super::load(&a.model, 32)?;
    let bar = flagcore::telemetry::progress_bar(0, "steps");
    let mut recent = std::collections::VecDeque::new();
    let losses = finetune::train(&mut enc, &examples, &opts, |s| {
        bar.set_length(s.total as u64);
        bar.set_position(s.step as u64);
        recent.push_back(s.loss);
        if recent.len() > 20 {
            recent.pop_front();
        }
        let mean = recent.iter().sum::<f64>() / recent.len() as f64;
        bar.set_message(format!("loss {mean:.4} lr {:.2e}", s.learning_rate));
    })?;
    bar.finish();
    finetune::save(&enc, &a.model, &a.output)?;
    let weights = a.output.join("model.safetensors");
    manifest.add_input(&a.train)?;
    manifest.add_output(&weights)?;
    manifest.finish();
    manifest.write_beside(&weights)?;
    let head = |n: usize| losses.iter().take(n).sum::<f64>() / n.min(losses.len()).max(1) as f64;
    let tail =
        |n: usize| losses.iter().rev().take(n).sum::<f64>() / n.min(losses.len()).max(1) as f64;
    eprintln!(
        "{}: {} steps, mean loss of the first 20 {:.4}, of the last 20 {:.4}",
        a.output.display(),
        losses.len(),
        head(20),
        tail(20)
    );
    Ok(())
}
