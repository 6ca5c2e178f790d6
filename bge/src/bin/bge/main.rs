//! `bge`: embeddings from the command line — `encode` texts to JSON lines, `eval` retrieval
//! on a FlagEmbedding-layout set (or BIG-bench's disfl_qa) into a results JSON with a
//! manifest.

use anyhow::Context;
use bge::retrieval::data::Dataset;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

mod bench;
mod bench_rerank;
mod load_test;
mod retrieve;
mod train;

#[derive(Parser, Debug)]
#[command(
    name = "bge",
    version,
    about = "BGE / sentence-transformers embeddings"
)]
struct Cli {
    #[command(flatten)]
    log: flagcore::telemetry::LogArgs,
    /// Weights' dtype for every model the command loads.
    #[arg(long, global = true, env = "BGE_DTYPE", value_parser = weight_dtype, default_value = "f32")]
    dtype: flagcore::DType,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, global = true, env = "BGE_DEVICE", default_value = "cpu")]
    device: flagcore::Device,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Embed the lines of a text file; writes one JSON array per line.
    Encode {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Prefix every text (a query instruction).
        #[arg(long, default_value = "")]
        instruction: String,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// nDCG@10, MAP@10, MRR@10, Recall@k of a model on a retrieval set.
    Eval {
        #[arg(long)]
        model: PathBuf,
        /// A folder with corpus.jsonl, queries.jsonl and qrels.jsonl.
        #[arg(long, conflicts_with = "disfl_qa")]
        data: Option<PathBuf>,
        /// BIG-bench's disfl_qa task.json (corpus = paragraphs, queries = questions).
        #[arg(long)]
        disfl_qa: Option<PathBuf>,
        /// Keep only the first N queries.
        #[arg(long)]
        limit_queries: Option<usize>,
        /// Write the set used in FlagEmbedding's layout here.
        #[arg(long)]
        save_data: Option<PathBuf>,
        #[arg(long, default_value = "")]
        query_instruction: String,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// The task's name on the leaderboard (default: the data's name + `_retrieval`).
        #[arg(long)]
        task: Option<String>,
        /// A results.json in flageval's leaderboard layout (a manifest is written beside).
        #[arg(long)]
        output: PathBuf,
    },
    /// STS: Spearman (and Pearson) of cosine similarities against gold pair scores.
    Sts {
        #[arg(long)]
        model: PathBuf,
        /// JSON lines {sentence1, sentence2, score}.
        #[arg(long)]
        pairs: PathBuf,
        /// The task's name on the leaderboard (default: the file's name + `_sts`).
        #[arg(long)]
        task: Option<String>,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// A results.json in flageval's leaderboard layout.
        #[arg(long)]
        output: PathBuf,
    },
    /// A bounded load test of a running server on loopback: N clients posting /embed for S
    /// seconds; prints throughput, p50/p99 latency and errors.
    Load {
        /// The server's base URL (loopback only).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Texts per request.
        #[arg(long, default_value_t = 1)]
        batch: usize,
    },
    /// Embed a corpus.jsonl into an on-disk index (memory-mapped f32 or f16 rows).
    Index(retrieve::IndexArgs),
    /// Query an index exactly or through HNSW (with --recall against exact).
    Search(retrieve::SearchArgs),
    /// Score (query, passage) pairs with a cross-encoder and sort each query's passages.
    Rerank(retrieve::RerankArgs),
    /// Sentences/s of ours and sentence-transformers on the same model, sentences and batch
    /// size, per dtype, in one run.
    Bench(bench::BenchArgs),
    /// Pairs/s of our reranker and sentence-transformers' CrossEncoder on the same
    /// cross-encoder (made from an encoder folder), pairs and batch size, in one run.
    BenchRerank(bench_rerank::RerankBenchArgs),
    /// Split a retrieval set by document into a training part and a held-out part.
    Split(train::SplitArgs),
    /// Sample hard negatives for JSONL training examples from a model's own rankings.
    MineNegatives(train::MineArgs),
    /// Contrastive fine-tuning (InfoNCE, in-batch negatives, AdamW) into a new model folder.
    Finetune(train::FinetuneArgs),
    /// Serve a text-embeddings-inference-compatible API (loopback unless told otherwise).
    Serve {
        #[arg(long, env = "BGE_MODEL")]
        model: PathBuf,
        #[arg(long, env = "BGE_HOSTNAME", default_value = "127.0.0.1")]
        hostname: std::net::IpAddr,
        #[arg(long, env = "BGE_PORT", default_value_t = 8080)]
        port: u16,
        #[command(flatten)]
        opts: bge::serve::Options,
    },
}

/// Where and in what dtype models load: set once from the global flags.
static PLACEMENT: std::sync::OnceLock<(tch::Kind, tch::Device)> = std::sync::OnceLock::new();

fn placement() -> (tch::Kind, tch::Device) {
    PLACEMENT
        .get()
        .copied()
        .unwrap_or((tch::Kind::Float, tch::Device::Cpu))
}

/// glibc's allocator hands blocks over its (adaptive) mmap threshold back to the kernel when
/// freed and trims its heaps, so libtorch's per-layer activations are fresh pages each time:
/// page faults and zeroing were 5-9 % of a CPU encode. Keeping freed memory for reuse makes
/// encoding 4 % faster (f32 MiniLM on disfl_qa, 2 cores).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: plain calls with valid parameters, before any thread is started; a refused
    // setting (return value 0) leaves glibc's default, which is still correct.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    flagcore::telemetry::exit_code(cli.log.init().map_err(anyhow::Error::from).and_then(|()| {
        let device = cli.device.resolve_tch().context("--device")?;
        let _ = PLACEMENT.set((cli.dtype.into(), device));
        run(cli.command)
    }))
}

/// Writes a results document (flageval's leaderboard layout) with its manifest, and prints
/// it.
fn write_results(
    model: &std::path::Path,
    data: &std::path::Path,
    tasks: &[bge::results::TaskResult],
    extra: serde_json::Value,
    mut manifest: flagcore::Manifest,
    output: &std::path::Path,
) -> anyhow::Result<()> {
    let doc = bge::results::document(model, tasks, &manifest.started_at, extra)?;
    flagcore::fsutil::write_atomic(output, &serde_json::to_vec_pretty(&doc)?)?;
    // A retrieval set is a folder of three files; a pair set or task.json is one file.
    let files = ["corpus.jsonl", "queries.jsonl", "qrels.jsonl"].map(|f| data.join(f));
    if data.is_file() {
        manifest.add_input(data)?;
    } else {
        for f in files.iter().filter(|f| f.is_file()) {
            manifest.add_input(f)?;
        }
    }
    manifest.add_output(output)?;
    manifest.finish();
    manifest.write_beside(output)?;
    println!("{}", serde_json::to_string_pretty(&doc["results"])?);
    Ok(())
}

/// A weights' dtype in flagcore's spelling, floating-point only (f32, bf16, f16).
fn weight_dtype(s: &str) -> Result<flagcore::DType, String> {
    use flagcore::DType;
    match s.parse::<DType>().map_err(|e| e.to_string())? {
        d @ (DType::F32 | DType::BF16 | DType::F16) => Ok(d),
        other => Err(format!("{other}: weights load as f32, bf16 or f16")),
    }
}

fn load(model: &std::path::Path, batch_size: usize) -> anyhow::Result<bge::Encoder> {
    let (kind, device) = placement();
    let mut enc = bge::Encoder::load(model, kind, device)
        .with_context(|| format!("loading --model {}", model.display()))?;
    enc.batch_size = batch_size.max(1);
    Ok(enc)
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Index(a) => retrieve::index(a)?,
        Command::Search(a) => retrieve::search(a)?,
        Command::Rerank(a) => retrieve::rerank(a)?,
        Command::Bench(a) => bench::run(a)?,
        Command::BenchRerank(a) => bench_rerank::run(a)?,
        Command::Split(a) => train::split(a)?,
        Command::MineNegatives(a) => train::mine_negatives(a)?,
        Command::Finetune(a) => train::finetune(a)?,
        Command::Load {
            url,
            clients,
            seconds,
            batch,
        } => load_test::load_test(
            &url,
            clients.clamp(1, 1024),
            seconds.clamp(1, 600),
            batch.max(1),
        )?,
        Command::Serve {
            model,
            hostname,
            port,
            mut opts,
        } => {
            let (kind, device) = placement();
            let served = bge::serve::load_model(&model, 512, kind, device)
                .with_context(|| format!("loading --model {}", model.display()))?;
            opts.model_id = model.display().to_string();
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let addr = std::net::SocketAddr::new(hostname, port);
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                eprintln!("serving {} on http://{addr}", model.display());
                axum::serve(listener, bge::serve::router(served, opts))
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await?;
                anyhow::Ok(())
            })?;
        }
        Command::Encode {
            model,
            input,
            output,
            instruction,
            batch_size,
        } => {
            let enc = load(&model, batch_size)?;
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("reading --input {}", input.display()))?;
            let texts: Vec<String> = text.lines().map(|l| format!("{instruction}{l}")).collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let emb = retrieve::encode_with_bar(&enc, &texts)?;
            let lines: String = emb
                .iter()
                .map(|e| format!("{}\n", serde_json::to_string(e).unwrap_or_default()))
                .collect();
            flagcore::fsutil::write_atomic(&output, lines.as_bytes())?;
            eprintln!("{}: {} embeddings", output.display(), emb.len());
        }
        Command::Eval {
            model,
            data,
            disfl_qa,
            limit_queries,
            save_data,
            query_instruction,
            batch_size,
            task,
            output,
        } => {
            let manifest = flagcore::Manifest::begin("bge eval", env!("CARGO_PKG_VERSION"));
            let (mut set, source) = match (data, disfl_qa) {
                (Some(d), None) => (Dataset::load(&d)?, d),
                (None, Some(t)) => (Dataset::from_disfl_qa(&t)?, t),
                _ => anyhow::bail!("give --data DIR or --disfl-qa TASK_JSON"),
            };
            if let Some(n) = limit_queries {
                set.limit_queries(n);
            }
            if let Some(dir) = &save_data {
                set.save(dir)?;
            }
            let task = task.unwrap_or_else(|| {
                let stem = source.file_stem().unwrap_or_default().to_string_lossy();
                let stem = if stem == "task" {
                    source
                        .parent()
                        .and_then(|p| p.file_name())
                        .unwrap_or_default()
                        .to_string_lossy()
                } else {
                    stem
                };
                format!("{stem}_retrieval")
            });
            let enc = load(&model, batch_size)?;
            let start = std::time::Instant::now();
            let scores = bge::retrieval::evaluate(&enc, &set, &query_instruction)?;
            let hash = flagcore::fsutil::sha256_bytes(
                format!("{}\n{query_instruction}", set.hash()).as_bytes(),
            );
            let result = bge::results::TaskResult {
                task,
                capability: "retrieval".into(),
                main_metric: "ndcg_at_10".into(),
                scores,
                hash,
            };
            let extra = serde_json::json!({
                "data": source, "queries": set.queries.len(), "corpus": set.corpus.len(),
                "query_instruction": query_instruction,
                "seconds": start.elapsed().as_secs_f64(),
            });
            write_results(&model, &source, &[result], extra, manifest, &output)?;
        }
        Command::Sts {
            model,
            pairs,
            task,
            batch_size,
            output,
        } => {
            let manifest = flagcore::Manifest::begin("bge sts", env!("CARGO_PKG_VERSION"));
            let list = bge::sts::read_pairs(&pairs)?;
            let enc = load(&model, batch_size)?;
            let (spearman, pearson) = bge::sts::evaluate(&enc, &list)?;
            let (hash, _) = flagcore::fsutil::sha256_file(&pairs)?;
            let task = task.unwrap_or_else(|| {
                format!(
                    "{}_sts",
                    pairs.file_stem().unwrap_or_default().to_string_lossy()
                )
            });
            let result = bge::results::TaskResult {
                task,
                capability: "sts".into(),
                main_metric: "spearman".into(),
                scores: vec![("spearman".into(), spearman), ("pearson".into(), pearson)],
                hash,
            };
            let extra = serde_json::json!({"data": pairs, "pairs": list.len()});
            write_results(&model, &pairs, &[result], extra, manifest, &output)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_parses_beside_the_global_flags() {
        // Catches flag-name clashes between globals and subcommands, which clap only reports
        // when the value is read.
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "bge",
            "--dtype",
            "bf16",
            "index",
            "--model",
            "m",
            "--corpus",
            "c",
            "--output",
            "o",
            "--index-dtype",
            "f16",
        ])
        .unwrap();
        assert_eq!(cli.dtype, flagcore::DType::BF16);
        assert!(Cli::try_parse_from(["bge", "--dtype", "i64", "load"]).is_err());
        let Command::Index(a) = cli.command else {
            panic!("not index")
        };
        assert!(format!("{a:?}").contains("index_dtype: \"f16\""));
    }
}
