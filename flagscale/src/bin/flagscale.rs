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
    /// Training step time on random tokens, beside PyTorch eager on the same model and batch
    /// (`scripts/torch_train_cpu.py`, run with `--python`), in one run; prints the ratio.
    Bench {
        #[arg(long, default_value_t = 8000)]
        vocab: usize,
        #[arg(long, default_value_t = 256)]
        hidden: usize,
        #[arg(long, default_value_t = 4)]
        layers: usize,
        #[arg(long, default_value_t = 8)]
        heads: usize,
        #[arg(long, default_value_t = 4)]
        kv_heads: usize,
        #[arg(long, default_value_t = 688)]
        ffn: usize,
        #[arg(long, default_value_t = 256)]
        seq: usize,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// A Python that imports torch (the same libtorch), for the reference run.
        #[arg(long, env = "FLAGSCALE_BENCH_PYTHON")]
        python: Option<PathBuf>,
    },
    /// Serve an OpenAI-compatible API (`/v1/completions` with echo + logprobs, `/tokenize`,
    /// `/health`) on loopback unless told otherwise.
    Serve {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, env = "FLAGSCALE_HOST", default_value = "127.0.0.1")]
        host: String,
        #[arg(long, env = "FLAGSCALE_PORT", default_value_t = 8000)]
        port: u16,
        /// Require `Authorization: Bearer KEY`.
        #[arg(long, env = "FLAGSCALE_API_KEY")]
        api_key: Option<String>,
        /// Largest request body in bytes (413 above).
        #[arg(long, default_value_t = 2 << 20)]
        max_body: usize,
        #[arg(long, default_value = "auto")]
        device: flagcore::Device,
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
    flagcore::telemetry::exit_code(
        cli.log
            .init()
            .map_err(anyhow::Error::from)
            .and_then(|()| run(cli.command)),
    )
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

#[allow(clippy::too_many_arguments)]
fn bench(
    vocab: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    ffn: usize,
    seq: usize,
    batch: usize,
    steps: usize,
    python: Option<PathBuf>,
) -> anyhow::Result<()> {
    use flagscale::train::{init_model, LrSchedule, TrainConfig, Trainer};
    let cfg: flagscale::model::LlamaConfig = serde_json::from_value(serde_json::json!({
        "hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
        "max_position_embeddings": seq, "rms_norm_eps": 1e-6
    }))?;
    cfg.validate(Path::new("bench"))?;
    // Random tokens in an indexed dataset, so the step includes our real data path.
    let dir = tempfile_dir()?;
    let prefix = dir.join("random");
    let dtype = flagdata::indexed::TokenDType::for_vocab(vocab);
    let mut w = flagdata::indexed::IndexedWriter::create(&prefix, dtype)?;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..(batch * (steps + 2) + 1) {
        let doc: Vec<u32> = (0..seq)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % vocab as u64) as u32
            })
            .collect();
        w.add_document(&doc)?;
    }
    w.finish()?;
    let tc = TrainConfig {
        seq_len: seq,
        micro_batch: batch,
        grad_accum: 1,
        schedule: LrSchedule {
            lr: 3e-4,
            min_lr: 3e-4,
            warmup_steps: 0,
            total_steps: steps + 2,
        },
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
        clip_grad: 1.0,
        seed: 0,
        data: vec![(prefix, 1.0)],
        keep_last: 1,
    };
    let mut t = Trainer::new(init_model(cfg.clone(), 0, tch::Device::Cpu)?, tc)?;
    for _ in 0..2 {
        t.train_step()?;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/torch_train_cpu.py");
    let args: Vec<String> = [
        vocab, hidden, layers, heads, kv_heads, ffn, seq, batch, steps,
    ]
    .iter()
    .map(|v| v.to_string())
    .collect();
    // Rounds alternate ours and PyTorch's, and the medians are compared, so drift in a shared
    // machine's load hits both sides alike.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let start = std::time::Instant::now();
        for _ in 0..steps {
            if t.step >= t.config.schedule.total_steps {
                t.config.schedule.total_steps += steps;
            }
            t.train_step()?;
        }
        ours.push(start.elapsed().as_secs_f64() / steps as f64 * 1e3);
        if let Some(py) = &python {
            let out = std::process::Command::new(py)
                .arg(&script)
                .args(&args)
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "PyTorch reference failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            theirs.push(
                text.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
                    .context("unexpected reference output")?,
            );
        }
        eprintln!(
            "round {round}: flagscale {:.1} ms{}",
            ours[round],
            theirs
                .get(round)
                .map(|t| format!(", PyTorch {t:.1} ms"))
                .unwrap_or_default()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v[v.len() / 2]
    };
    let ours = median(&mut ours);
    println!("flagscale: {ours:.2} ms/step median of 3 rounds ({} parameters, batch {batch} x {seq}, fp32, {} threads)", cfg.parameter_count(), tch::get_num_threads());
    if !theirs.is_empty() {
        let theirs = median(&mut theirs);
        println!("PyTorch eager: {theirs:.2} ms/step median of 3 rounds");
        println!("ratio flagscale/PyTorch: {:.3}", ours / theirs);
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("flagscale-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn serve(
    model: &Path,
    host: &str,
    port: u16,
    api_key: Option<String>,
    max_body: usize,
    device: flagcore::Device,
) -> anyhow::Result<()> {
    let (m, tokenizer) = load(model, device.to_tch())?;
    let name = model
        .file_stem()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let state = std::sync::Arc::new(flagscale::serve::AppState {
        model: std::sync::Mutex::new(m),
        tokenizer,
        model_name: name,
        api_key,
    });
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .with_context(|| format!("binding {host}:{port}"))?;
        eprintln!(
            "serving {} on http://{}",
            model.display(),
            listener.local_addr()?
        );
        axum::serve(listener, flagscale::serve::router(state, max_body))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            model,
            host,
            port,
            api_key,
            max_body,
            device,
        } => serve(&model, &host, port, api_key, max_body, device)?,
        Command::Bench {
            vocab,
            hidden,
            layers,
            heads,
            kv_heads,
            ffn,
            seq,
            batch,
            steps,
            python,
        } => bench(
            vocab, hidden, layers, heads, kv_heads, ffn, seq, batch, steps, python,
        )?,
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
