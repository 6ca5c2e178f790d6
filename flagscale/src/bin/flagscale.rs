//! `flagscale`: train, inspect and run Aquila/LLaMA-family models (Hugging Face folders or
//! GGUF). Serving arrives with a later issue.

use anyhow::Context;
use clap::{Parser, Subcommand};
use flagscale::generate::{generate, SamplingParams};
use flagscale::model::Llama;
use std::path::{Path, PathBuf};

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
    match cli
        .log
        .init()
        .map_err(anyhow::Error::from)
        .and_then(|()| run(cli.command))
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn is_gguf(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gguf")
}

fn load(path: &Path, device: tch::Device) -> anyhow::Result<(Llama, tokenizers::Tokenizer)> {
    if is_gguf(path) {
        let model = flagscale::gguf::load(path, flagcore::DType::F32, device)?;
        let tok = flagdata::tokenize::from_gguf(path, None)?;
        Ok((model, tok))
    } else {
        let model = Llama::load(path, flagcore::DType::F32, device)?;
        let tok = flagdata::tokenize::load(&path.join("tokenizer.json"))
            .context("the model folder needs a tokenizer.json")?;
        Ok((model, tok))
    }
}

fn train(config: &Path, overrides: &[String]) -> anyhow::Result<()> {
    use flagscale::train::config::{flops_per_token, peak_flops, ExperimentConfig};
    use flagscale::train::{init_model, Trainer};
    let (cfg, resolved) = ExperimentConfig::load(config, overrides)?;
    let device = cfg.system.device.resolve_tch()?;
    let exp = &cfg.experiment.exp_dir;
    let ckpts = exp.join("checkpoints");
    let wanted = cfg.train_config();
    let mut trainer = match Trainer::resume(&ckpts, device) {
        Ok(mut t) => {
            let mut saved = t.config.clone();
            saved.schedule.total_steps = wanted.schedule.total_steps;
            saved.keep_last = wanted.keep_last;
            anyhow::ensure!(
                saved == wanted,
                "{} holds checkpoints of a different training config; use a new exp_dir",
                ckpts.display()
            );
            t.config = wanted;
            eprintln!(
                "resuming at step {} ({} samples consumed)",
                t.step, t.consumed_samples
            );
            t
        }
        // A crash before the first checkpoint completed leaves only scratch folders: start over.
        Err(flagscale::Error::Invalid(m)) if m.starts_with("no complete checkpoint") => {
            Trainer::new(
                init_model(cfg.model.architecture.clone(), cfg.experiment.seed, device)?,
                wanted,
            )?
        }
        Err(e) => return Err(e.into()),
    };
    let mut manifest = flagcore::Manifest::begin("flagscale train", env!("CARGO_PKG_VERSION"))
        .with_config(&resolved)?
        .with_seed(cfg.experiment.seed)
        .with_libtorch(flagcore::torch::libtorch_version());
    manifest.add_input(config)?;
    let mut metrics = flagcore::telemetry::MetricsWriter::open(&exp.join("logs/metrics.jsonl"))?;
    let host = flagcore::manifest::HostInfo::detect();
    let peak = if device.is_cuda() {
        host.gpus.first().and_then(|g| peak_flops(g))
    } else {
        None
    };
    let per_token = flops_per_token(&cfg.model.architecture, cfg.model.seq_length);
    tracing::info!(
        params = cfg.model.architecture.parameter_count(),
        flops_per_token = per_token,
        "FLOPs/token by llm.c's formula 6N + 6·L·d·T, attention not halved for causality"
    );
    let total = cfg.model.train_steps;
    let bar = flagcore::telemetry::progress_bar(total as u64, "train");
    bar.set_position(trainer.step as u64);
    while trainer.step < total {
        let start = std::time::Instant::now();
        let s = trainer.train_step()?;
        let secs = start.elapsed().as_secs_f64();
        let tflops = per_token * s.tokens as f64 / secs / 1e12;
        bar.inc(1);
        if s.step % cfg.system.log_interval == 0 || s.step == total {
            metrics.write(&serde_json::json!({
                "step": s.step, "loss": s.loss, "grad_norm": s.grad_norm, "lr": s.lr,
                "tokens_per_s": s.tokens as f64 / secs, "tflops": tflops,
                "mfu": peak.map(|p| tflops * 1e12 / p), "flops_formula": "6N+6LdT",
            }))?;
        }
        if s.step % cfg.system.save_interval == 0 || s.step == total {
            let dir = trainer.save_checkpoint(&ckpts)?;
            if let Some(tok) = &cfg.data.tokenizer {
                std::fs::copy(tok, dir.join("tokenizer.json"))
                    .with_context(|| format!("copying {}", tok.display()))?;
            }
            manifest.add_output(&dir.join("model.safetensors"))?;
        }
    }
    bar.finish_and_clear();
    for (prefix, _) in &cfg.train_config().data {
        manifest.add_input(&flagdata::indexed::idx_path(prefix))?;
    }
    manifest.finish();
    manifest.write_beside(exp)?;
    println!("trained to step {} in {}", trainer.step, exp.display());
    Ok(())
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train { config, overrides } => train(&config, &overrides)?,
        Command::Info { model, seq_len } => {
            let cfg = if is_gguf(&model) {
                let meta = flagdata::tokenize::gguf::Metadata::read(&model)?;
                flagscale::gguf::config(&meta)?
            } else {
                flagscale::model::LlamaConfig::from_file(&model.join("config.json"))?
            };
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
            let eos = ["</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>"]
                .iter()
                .filter_map(|t| tok.token_to_id(t))
                .collect();
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
