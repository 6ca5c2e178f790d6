//! `flagscale`: train, inspect and run Aquila/LLaMA-family models (Hugging Face folders or
//! GGUF): train, bench, serve, generate, convert and inspect.

use clap::{Parser, Subcommand};
use flagscale::generate::{generate, SamplingParams};
use flagscale::model::Llama;
use flagscale::source;
use std::path::{Path, PathBuf};

mod bench;
mod convert;
mod serve;
mod train;

#[derive(Parser, Debug)]
#[command(
    name = "flagscale",
    version,
    about = "Aquila-architecture language models on libtorch"
)]
struct Cli {
    #[command(flatten)]
    log: flagcore::telemetry::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train (or resume) the experiment a FlagScale-layout config describes.
    Train {
        config: PathBuf,
        /// Overrides such as `model.optimizer.lr=1e-4`, after `--`.
        #[arg(last = true)]
        overrides: Vec<String>,
    },
    /// Training throughput on random tokens, beside a PyTorch reference run in the same
    /// process tree (`scripts/torch_train_cpu.py` on the CPU, or `--reference SCRIPT`); prints
    /// tokens/s, MFU and the ratios.
    Bench(bench::BenchArgs),
    /// Serve an OpenAI-compatible API (`/v1/completions` with echo + logprobs,
    /// `/v1/chat/completions`, streaming, `/tokenize`, `/health`) on loopback unless told
    /// otherwise.
    Serve(serve::ServeArgs),
    /// Convert a model: a GGUF file (dequantised) or a Hugging Face / flagscale checkpoint
    /// folder (sharded or not, training state dropped) into a Hugging Face folder.
    Convert(convert::ConvertArgs),
    /// Parameters and FLOPs per token of a checkpoint (Hugging Face folder or .gguf).
    Info {
        model: PathBuf,
        /// Sequence length for the attention term of the training FLOPs.
        #[arg(long, default_value_t = 2048)]
        seq_len: usize,
    },
    /// Continue a prompt.
    Generate {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        /// 0 is greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long)]
        top_k: Option<usize>,
        #[arg(long)]
        top_p: Option<f64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop before this text (repeatable).
        #[arg(long)]
        stop: Vec<String>,
        /// cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "auto")]
        device: flagcore::Device,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    flagcore::telemetry::exit_code(
        cli.log
            .init()
            .map_err(anyhow::Error::from)
            .and_then(|()| run(cli.command)),
    )
}

/// A model (f32) and its tokenizer from a checkpoint folder or GGUF file.
pub(crate) fn load(
    path: &Path,
    device: tch::Device,
) -> anyhow::Result<(Llama, tokenizers::Tokenizer)> {
    Ok((
        source::load_model(path, flagcore::DType::F32, device)?,
        source::load_tokenizer(path)?,
    ))
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(&args)?,
        Command::Convert(args) => convert::run(&args)?,
        Command::Bench(args) => bench::run(&args)?,
        Command::Train { config, overrides } => train::run(&config, &overrides)?,
        Command::Info { model, seq_len } => {
            let cfg = source::load_config(&model)?;
            let n = cfg.parameter_count() as f64;
            let (l, d) = (cfg.num_hidden_layers as f64, cfg.hidden_size as f64);
            println!("{}", serde_json::to_string_pretty(&cfg)?);
            println!("parameters: {:.3} M", n / 1e6);
            println!("forward FLOPs/token (2N): {:.3} G", 2.0 * n / 1e9);
            // llm.c's training formula: 6N plus attention's 6·L·d·T (T = sequence length).
            println!(
                "training FLOPs/token at T={seq_len} (6N + 6·L·d·T): {:.3} G",
                (6.0 * n + 6.0 * l * d * seq_len as f64) / 1e9
            );
        }
        Command::Generate {
            model,
            prompt,
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            seed,
            stop,
            device,
        } => {
            let (m, tok) = load(&model, device.to_tch())?;
            let ids = tok
                .encode(prompt.as_str(), false)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .get_ids()
                .to_vec();
            let eos = flagscale::generate::eos_ids(&tok);
            let params = SamplingParams {
                max_new_tokens,
                temperature,
                top_k,
                top_p,
                seed,
                stop,
                eos,
            };
            let start = std::time::Instant::now();
            let g = generate(&m, &tok, &ids, &params)?;
            println!("{prompt}{}", g.text);
            eprintln!(
                "{} tokens in {:.2} s ({:?})",
                g.tokens.len(),
                start.elapsed().as_secs_f64(),
                g.finish_reason
            );
        }
    }
    Ok(())
}
