//! `flagdata`: run corpus pipelines, deduplicate, train and apply tokenizers, inspect shards.

mod bench;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use flagdata::dedup::{minhash::MinHashConfig, DedupConfig};
use flagdata::indexed::IndexedDataset;
use flagdata::pipeline::{OutputSpec, Pipeline, PipelineConfig, RunSummary};
use flagdata::read::{Format, SourceSpec};
use flagdata::tokenize;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "flagdata",
    version,
    about = "Corpus pipeline: raw text to clean, deduplicated, tokenized Megatron shards"
)]
struct Cli {
    #[command(flatten)]
    log: flagcore::telemetry::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a pipeline YAML (resumable: finished shards are skipped).
    Run {
        pipeline: PathBuf,
        /// Overrides such as `output.dir=out2 workers=4`, after `--`.
        #[arg(last = true)]
        overrides: Vec<String>,
        /// Fail on the first bad input record.
        #[arg(long)]
        strict: bool,
        /// Print the process's peak resident memory when done (used by `bench`).
        #[arg(long, hide = true)]
        print_peak_rss: bool,
    },
    /// Benchmark every stage per core on the cached real corpus, against datatrove.
    Bench(bench::BenchArgs),
    /// Deduplicate documents (exact + MinHash LSH) without other steps.
    Dedup {
        /// Input files or folders.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: FormatArg,
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value_t = 5)]
        n_grams: usize,
        #[arg(long, default_value_t = 14)]
        bands: usize,
        #[arg(long, default_value_t = 8)]
        rows: usize,
        /// Join band collisions only above this estimated Jaccard similarity.
        #[arg(long)]
        min_similarity: Option<f64>,
        /// Skip exact (hash) deduplication.
        #[arg(long)]
        no_exact: bool,
        /// Text fields joined into the document text (default: the format's).
        #[arg(long, value_delimiter = ',')]
        text_fields: Option<Vec<String>>,
    },
    /// Train a byte-level BPE tokenizer on documents (.jsonl[.zst|.gz] files or folders).
    TrainTokenizer {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value_t = 32000)]
        vocab_size: usize,
        #[arg(long, default_value_t = 2)]
        min_frequency: u64,
        #[arg(long, value_delimiter = ',', default_value = "<|endoftext|>")]
        special_tokens: Vec<String>,
    },
    /// Tokenize documents into a Megatron indexed dataset (`PREFIX.bin` + `PREFIX.idx`).
    Tokenize {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long)]
        tokenizer: PathBuf,
        #[arg(long)]
        output_prefix: PathBuf,
        /// Token appended to every document.
        #[arg(long, default_value = "<|endoftext|>")]
        eod_token: String,
        /// Do not append an end-of-document token.
        #[arg(long)]
        no_eod: bool,
    },
    /// Convert a llama.cpp GGUF vocabulary (tokens + merges or scores) into a tokenizer.json.
    ConvertVocab {
        gguf: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Pre-tokenizer to use instead of the file's `tokenizer.ggml.pre` (e.g. `hf-gpt2`
        /// for Hugging Face's GPT2Tokenizer, which Aquila's original tokenizer is).
        #[arg(long)]
        pre: Option<String>,
    },
    /// Blend tokenized sources by weight to a token budget, split by document hash.
    Mix {
        /// `name=weight:prefix`, e.g. `zh=0.6:shards/zh` (repeat per source).
        #[arg(long = "source", required = true)]
        sources: Vec<flagdata::mix::MixSource>,
        /// Tokens in the blend.
        #[arg(long)]
        tokens: u64,
        #[arg(long)]
        output_prefix: PathBuf,
        /// Train/valid/test proportions, e.g. `98,1,1` (writes PREFIX_train/_valid/_test).
        #[arg(long)]
        splits: Option<flagdata::mix::Splits>,
        #[arg(long, default_value_t = 1234)]
        seed: u64,
    },
    /// Summarise a Megatron indexed dataset (PREFIX, PREFIX.idx or PREFIX.bin).
    Inspect {
        path: PathBuf,
        /// Decode the first documents with this tokenizer.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        show: usize,
    },
    /// Print the report of a finished run folder.
    Stats { dir: PathBuf },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FormatArg {
    Wudao,
    Jsonl,
    Text,
    Parquet,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = cli
        .log
        .init()
        .map_err(anyhow::Error::from)
        .and_then(|()| run(cli.command));
    flagcore::telemetry::exit_code(result)
}

fn summarize(s: &RunSummary) {
    let st = &s.stats;
    println!(
        "documents: {} in, {} kept after steps ({} shards, {} already done); bad records: {}",
        st.documents_in,
        st.documents_out,
        st.shards,
        s.shards_done_before,
        st.bad_records.values().sum::<u64>()
    );
    if let Some(d) = &s.dedup {
        println!(
            "dedup: {} exact + {} near duplicates removed, {} kept ({:.2}% duplicates)",
            d.exact_duplicates,
            d.near_duplicates,
            d.documents_out,
            100.0 * d.duplicate_rate()
        );
    }
    println!("output: {}", s.final_dir.display());
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run {
            pipeline,
            mut overrides,
            strict,
            print_peak_rss,
        } => {
            if strict {
                overrides.push("strict=true".into());
            }
            let p = Pipeline::load(&pipeline, &overrides)?;
            summarize(&p.run(!print_peak_rss)?);
            if print_peak_rss {
                let status = std::fs::read_to_string("/proc/self/status")
                    .context("reading /proc/self/status")?;
                let kb = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .map(|v| v.trim().trim_end_matches("kB").trim().to_string());
                println!(
                    "peak_rss_kb {}",
                    kb.context("no VmHWM in /proc/self/status")?
                );
            }
        }
        Command::Bench(args) => bench::run(args)?,
        Command::Dedup {
            inputs,
            format,
            output,
            n_grams,
            bands,
            rows,
            min_similarity,
            no_exact,
            text_fields,
        } => {
            let format = match format {
                FormatArg::Wudao => Format::Wudao,
                FormatArg::Jsonl => Format::Jsonl,
                FormatArg::Text => Format::Text,
                FormatArg::Parquet => Format::Parquet,
            };
            let config = PipelineConfig {
                name: "dedup".into(),
                inputs: vec![SourceSpec {
                    name: "input".into(),
                    format,
                    paths: inputs,
                    text_fields,
                    id_field: None,
                    metadata_fields: None,
                    known_fields: None,
                }],
                output: OutputSpec {
                    dir: output.clone(),
                    keep_dropped: false,
                    parquet: false,
                },
                steps: vec![],
                dedup: Some(DedupConfig {
                    exact: !no_exact,
                    minhash: Some(MinHashConfig {
                        n_grams,
                        bands,
                        rows,
                        seed: 1,
                        min_similarity,
                    }),
                }),
                strict: false,
                workers: None,
                stats_tokenizer: None,
            };
            std::fs::create_dir_all(&output)
                .with_context(|| format!("creating {}", output.display()))?;
            let path = output.join("dedup.pipeline.json");
            flagcore::fsutil::write_atomic(&path, &serde_json::to_vec_pretty(&config)?)?;
            summarize(&Pipeline::load(&path, &[])?.run(true)?);
        }
        Command::TrainTokenizer {
            inputs,
            output,
            vocab_size,
            min_frequency,
            special_tokens,
        } => {
            let files = tokenize::document_files(&inputs)?;
            let settings = tokenize::BpeSettings {
                vocab_size,
                min_frequency,
                special_tokens,
            };
            let tok = tokenize::train_bpe(&files, &settings)?;
            let json = tok.to_string(true).map_err(|e| anyhow::anyhow!("{e}"))?;
            flagcore::fsutil::write_atomic(&output, json.as_bytes())?;
            let mut manifest =
                flagcore::Manifest::begin("flagdata train-tokenizer", env!("CARGO_PKG_VERSION"));
            for f in &files {
                manifest.add_input(f)?;
            }
            manifest.add_output(&output)?;
            manifest.finish();
            manifest.write_beside(&output)?;
            println!(
                "tokenizer with {} tokens written to {}",
                tok.get_vocab_size(true),
                output.display()
            );
        }
        Command::Tokenize {
            inputs,
            tokenizer,
            output_prefix,
            eod_token,
            no_eod,
        } => {
            let tok = tokenize::load(&tokenizer)?;
            let eod = if no_eod {
                None
            } else {
                Some(tokenize::token_id(&tok, &eod_token)?)
            };
            let files = tokenize::document_files(&inputs)?;
            let summary =
                tokenize::tokenize_documents_progress(&tok, &files, &output_prefix, eod, true)?;
            let mut manifest =
                flagcore::Manifest::begin("flagdata tokenize", env!("CARGO_PKG_VERSION"));
            manifest.add_input(&tokenizer)?;
            for f in &files {
                manifest.add_input(f)?;
            }
            let idx = flagdata::indexed::idx_path(&output_prefix);
            manifest.add_output(&flagdata::indexed::bin_path(&output_prefix))?;
            manifest.add_output(&idx)?;
            manifest.finish();
            manifest.write_beside(&idx)?;
            println!(
                "{} documents, {} tokens ({:?}) in {}.bin/.idx",
                summary.documents,
                summary.tokens,
                summary.dtype,
                output_prefix.display()
            );
        }
        Command::Mix {
            sources,
            tokens,
            output_prefix,
            splits,
            seed,
        } => {
            let report = flagdata::mix::mix(&sources, tokens, seed, splits, &output_prefix)?;
            let mut manifest = flagcore::Manifest::begin("flagdata mix", env!("CARGO_PKG_VERSION"))
                .with_config(&report)?
                .with_seed(seed);
            for s in &sources {
                manifest.add_input(&flagdata::indexed::idx_path(&s.prefix))?;
                manifest.add_input(&flagdata::indexed::bin_path(&s.prefix))?;
            }
            manifest.finish();
            let report_path = PathBuf::from(format!("{}.mix.json", output_prefix.display()));
            flagcore::fsutil::write_atomic(&report_path, &serde_json::to_vec_pretty(&report)?)?;
            manifest.write_beside(&report_path)?;
            for s in &report.sources {
                println!(
                    "{}: {} tokens ({} documents, {:.2} epochs), target {}",
                    s.name, s.tokens, s.documents, s.epochs, s.target_tokens
                );
            }
            println!(
                "splits (train/valid/test) documents {:?}, tokens {:?}",
                report.split_documents, report.split_tokens
            );
        }
        Command::ConvertVocab { gguf, output, pre } => {
            let tok = tokenize::from_gguf(&gguf, pre.as_deref())?;
            let json = tok.to_string(true).map_err(|e| anyhow::anyhow!("{e}"))?;
            flagcore::fsutil::write_atomic(&output, json.as_bytes())?;
            let mut manifest =
                flagcore::Manifest::begin("flagdata convert-vocab", env!("CARGO_PKG_VERSION"));
            manifest.add_input(&gguf)?;
            manifest.add_output(&output)?;
            manifest.finish();
            manifest.write_beside(&output)?;
            println!(
                "{} tokens written to {}",
                tok.get_vocab_size(true),
                output.display()
            );
        }
        Command::Inspect {
            path,
            tokenizer,
            show,
        } => inspect(&path, tokenizer.as_deref(), show)?,
        Command::Stats { dir } => {
            let path = dir.join("stats.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            let stats =
                serde_json::from_value(v["stats"].clone()).context("stats.json: `stats`")?;
            let dedup: Option<flagdata::dedup::DedupStats> =
                serde_json::from_value(v["dedup"].clone()).context("stats.json: `dedup`")?;
            print!(
                "{}",
                flagdata::report::markdown(
                    v["name"].as_str().unwrap_or("?"),
                    &stats,
                    dedup.as_ref()
                )
            );
        }
    }
    Ok(())
}

fn inspect(path: &Path, tokenizer: Option<&Path>, show: usize) -> anyhow::Result<()> {
    let text = path.to_string_lossy();
    let prefix = PathBuf::from(
        text.strip_suffix(".idx")
            .or_else(|| text.strip_suffix(".bin"))
            .unwrap_or(&text),
    );
    let ds = IndexedDataset::open(&prefix)?;
    let lengths = ds.sequence_lengths();
    if lengths.is_empty() {
        bail!("{} holds no sequences", prefix.display());
    }
    let (min, max) = (
        lengths.iter().min().copied().unwrap_or(0),
        lengths.iter().max().copied().unwrap_or(0),
    );
    println!(
        "{}: {:?} tokens, {} sequences, {} documents, {} tokens (length min {min}, mean {:.1}, max {max})",
        prefix.display(),
        ds.dtype(),
        ds.len(),
        ds.num_documents(),
        ds.total_tokens(),
        ds.total_tokens() as f64 / ds.len() as f64
    );
    let tok = tokenizer.map(tokenize::load).transpose()?;
    for i in 0..show.min(ds.len()) {
        let ids = ds.get(i)?;
        let head: Vec<i64> = ids.iter().take(16).copied().collect();
        match &tok {
            Some(t) => {
                let ids32: Vec<u32> = ids.iter().map(|&x| x as u32).collect();
                let decoded = t
                    .decode(&ids32, false)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let short: String = decoded.chars().take(200).collect();
                println!("[{i}] {} tokens: {short:?}", ids.len());
            }
            None => println!("[{i}] {} tokens: {head:?}...", ids.len()),
        }
    }
    Ok(())
}
