//! `flagscale bench`: our trainer's throughput on random tokens, and a PyTorch reference run
//! in the same invocation, so that both face the same machine load and card.

use anyhow::Context;
use flagscale::train::config::{flops_per_token, peak_flops};
use flagscale::train::{init_model, LrSchedule, Precision, TrainConfig, Trainer};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
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
    /// Timed steps per round.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Rounds; with the CPU reference they alternate with PyTorch's and medians are compared.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value = "cpu")]
    device: flagcore::Device,
    /// fp32, or bf16 mixed precision.
    #[arg(long, default_value = "fp32")]
    precision: String,
    #[arg(long, default_value_t = 1e-6)]
    rms_norm_eps: f64,
    /// Rotary embeddings on adjacent channel pairs (Megatron, Aquila2-7B) instead of halves.
    #[arg(long)]
    rope_interleaved: bool,
    /// A Python that imports torch, for the reference run.
    #[arg(long, env = "FLAGSCALE_BENCH_PYTHON")]
    python: Option<PathBuf>,
    /// A reference script printing `tokens/s=N` lines (such as the shared GPU script), run
    /// once after our rounds instead of the CPU script.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Arguments for `--reference` (repeatable).
    #[arg(long = "reference-arg", allow_hyphen_values = true)]
    reference_args: Vec<String>,
}

/// Random tokens (xorshift) in an indexed dataset, so a step includes our real data path.
fn random_dataset(dir: &Path, vocab: usize, seq: usize, docs: usize) -> anyhow::Result<PathBuf> {
    let prefix = dir.join("random");
    let dtype = flagdata::indexed::TokenDType::for_vocab(vocab);
    let mut w = flagdata::indexed::IndexedWriter::create(&prefix, dtype)?;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..docs {
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
    Ok(prefix)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Tokens/s figures a reference printed: `tokens/s=N` fields, or the CPU script's `step_ms X`.
fn parse_reference(out: &str, tokens_per_step: f64) -> Vec<(String, f64)> {
    let mut found = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.split("tokens/s=").nth(1) {
            let num: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
                .filter(|c| *c != ',')
                .collect();
            if let Ok(v) = num.parse::<f64>() {
                found.push((line.trim().to_string(), v));
            }
        } else if let Some(ms) = line
            .strip_prefix("step_ms ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
        {
            found.push((line.trim().to_string(), tokens_per_step / (ms / 1e3)));
        }
    }
    found
}

fn python_run(python: &Path, script: &Path, args: &[String]) -> anyhow::Result<String> {
    let out = flagcore::python::run(flagcore::python::script(python, script).args(args))
        .context("the PyTorch reference failed")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    let cfg: flagscale::model::LlamaConfig = serde_json::from_value(serde_json::json!({
        "hidden_size": a.hidden, "intermediate_size": a.ffn, "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "vocab_size": a.vocab,
        "max_position_embeddings": a.seq, "rms_norm_eps": a.rms_norm_eps,
        "rope_interleaved": a.rope_interleaved,
    }))?;
    cfg.validate(Path::new("bench"))?;
    anyhow::ensure!(
        a.steps > 0 && a.rounds > 0,
        "--steps and --rounds must be positive"
    );
    let precision: Precision = a
        .precision
        .parse()
        .map_err(|m: String| anyhow::anyhow!("--precision: {m}"))?;
    let device = a.device.resolve_tch()?;
    let dir = tempfile::tempdir()?;
    let total = a.warmup + a.steps * a.rounds;
    let prefix = random_dataset(dir.path(), a.vocab, a.seq, a.batch * (total + 1) + 1)?;
    let tc = TrainConfig {
        seq_len: a.seq,
        micro_batch: a.batch,
        grad_accum: 1,
        schedule: LrSchedule {
            lr: 3e-4,
            min_lr: 3e-4,
            warmup_steps: 0,
            total_steps: total,
        },
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
        clip_grad: 1.0,
        seed: 0,
        data: vec![(prefix, 1.0)],
        keep_last: 1,
        precision,
        split: [1.0, 0.0, 0.0],
    };
    let mut t = Trainer::new(init_model(cfg.clone(), 0, device)?, tc)?;
    for _ in 0..a.warmup {
        t.train_step()?;
    }
    let tokens_per_step = (a.batch * a.seq) as f64;
    let cpu_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/torch_train_cpu.py");
    let cpu_args: Vec<String> = [
        a.vocab, a.hidden, a.layers, a.heads, a.kv_heads, a.ffn, a.seq, a.batch, a.steps,
    ]
    .iter()
    .map(|v| v.to_string())
    .collect();
    // Without `--reference`, the CPU script runs between our rounds (alternating, so drift in
    // a shared machine's load hits both sides alike).
    let alternate = a.reference.is_none() && !device.is_cuda();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let start = std::time::Instant::now();
        // As `train` does: step n + 1 is queued before step n is read back.
        let mut pending: Option<flagscale::train::QueuedStep> = None;
        for _ in 0..a.steps {
            let q = t.queue_step()?;
            if let Some(p) = pending.replace(q) {
                p.wait();
            }
        }
        // Reading the last step back leaves the device idle when the clock stops.
        let last = pending.map(|p| p.wait());
        let ms = start.elapsed().as_secs_f64() / a.steps as f64 * 1e3;
        ours.push(ms);
        let loss = last.map(|s| s.loss).unwrap_or(f64::NAN);
        let mut line = format!("round {round}: flagscale {ms:.1} ms/step (loss {loss:.3})");
        if let (true, Some(py)) = (alternate, &a.python) {
            let out = python_run(py, &cpu_script, &cpu_args)?;
            let (_, tps) = parse_reference(&out, tokens_per_step)
                .into_iter()
                .next()
                .context("the CPU reference printed no step time")?;
            let ref_ms = tokens_per_step / tps * 1e3;
            theirs.push(ref_ms);
            line.push_str(&format!(", PyTorch {ref_ms:.1} ms/step"));
        }
        eprintln!("{line}");
    }
    let ms = median(ours);
    let tps = tokens_per_step / (ms / 1e3);
    let per_token = flops_per_token(&cfg, a.seq);
    let gpu = if device.is_cuda() {
        flagcore::manifest::HostInfo::detect()
            .gpus
            .into_iter()
            .next()
    } else {
        None
    };
    let peak = gpu.as_deref().and_then(peak_flops);
    let mfu = peak
        .map(|p| format!(", MFU {:.1}%", tps * per_token / p * 100.0))
        .unwrap_or_default();
    println!(
        "flagscale: {ms:.2} ms/step, tokens/s={tps:.0}{mfu} ({:.1}M parameters, batch {} x {}, {}, {}{}; FLOPs by llm.c's 6N + 6·L·d·T, no causal halving{})",
        cfg.parameter_count() as f64 / 1e6,
        a.batch,
        a.seq,
        a.precision,
        a.device,
        gpu.as_deref().map(|g| format!(" {g}")).unwrap_or_default(),
        peak.map(|p| format!(", peak {:.1} TFLOP/s", p / 1e12))
            .unwrap_or_default(),
    );
    if !theirs.is_empty() {
        let ref_ms = median(theirs);
        println!(
            "PyTorch eager: {ref_ms:.2} ms/step median of {} rounds",
            a.rounds
        );
        println!("ratio flagscale/PyTorch step time: {:.3}", ms / ref_ms);
    }
    if let Some(script) = &a.reference {
        let py = a
            .python
            .as_deref()
            .context("--reference needs --python (or FLAGSCALE_BENCH_PYTHON)")?;
        let out = python_run(py, script, &a.reference_args)?;
        let found = parse_reference(&out, tokens_per_step);
        anyhow::ensure!(
            !found.is_empty(),
            "{} printed no tokens/s",
            script.display()
        );
        for (line, v) in found {
            println!("reference: {line}");
            println!("  ratio flagscale/reference tokens/s: {:.3}", tps / v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_reference;

    #[test]
    fn reads_both_reference_formats() {
        let out =
            "compile=False params=134.1M tokens/s=289,123 step=113.4ms\nstep_ms 50.00 threads 2";
        let got = parse_reference(out, 1000.0);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, 289_123.0);
        assert!((got[1].1 - 20_000.0).abs() < 1e-9);
    }
}
