//! `flagscale train`: a FlagScale-layout experiment from scratch or from its newest complete
//! checkpoint, with per-step throughput (llm.c's FLOPs formula), validation and manifests.

use anyhow::Context;
use std::path::Path;

pub fn run(config: &Path, overrides: &[String]) -> anyhow::Result<()> {
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
            forget_metrics_after(&exp.join("logs/metrics.jsonl"), t.step)?;
            eprintln!(
                "resuming at step {} ({} samples consumed)",
                t.step, t.consumed_samples
            );
            t
        }
        // A crash before the first checkpoint completed leaves only scratch folders: start over.
        Err(flagscale::Error::Invalid(m)) if m.starts_with("no complete checkpoint") => {
            forget_metrics_after(&exp.join("logs/metrics.jsonl"), 0)?;
            let model = match &cfg.model.init_from {
                Some(src) => {
                    let mut m = flagscale::source::load_model(src, flagcore::DType::F32, device)?;
                    m.use_half_rope();
                    eprintln!("starting from {}", src.display());
                    m
                }
                None => init_model(cfg.architecture().clone(), cfg.experiment.seed, device)?,
            };
            Trainer::new(model, wanted)?
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
    let per_token = flops_per_token(cfg.architecture(), cfg.model.seq_length);
    tracing::info!(
        params = cfg.architecture().parameter_count(),
        flops_per_token = per_token,
        "FLOPs/token by llm.c's formula 6N + 6·L·d·T, attention not halved for causality"
    );
    let total = cfg.model.train_steps;
    let bar = flagcore::telemetry::progress_bar(total as u64, "train");
    bar.set_position(trainer.step as u64);
    let every = |n: usize, k: usize| n % k.max(1) == 0 || n == total;
    let mut last = std::time::Instant::now();
    let mut pending: Option<flagscale::train::QueuedStep> = None;
    // Only an asynchronous device gains from queueing ahead; on the CPU a step runs as it is
    // queued, and reading each back at once keeps the per-step times true.
    let ahead = device.is_cuda();
    loop {
        // Step n + 1 is queued before step n is read back, so the device never waits on the
        // host; a step that validates or saves is read back (and acted on) before the next.
        let barrier =
            |n: usize| every(n, cfg.system.eval_interval) || every(n, cfg.system.save_interval);
        let hold = pending.as_ref().is_some_and(|p| barrier(p.step()));
        let next = if !hold && trainer.step < total {
            Some(trainer.queue_step()?)
        } else {
            None
        };
        let done = match (pending.take(), next) {
            (Some(p), next) => {
                pending = next;
                p
            }
            (None, None) => break,
            (None, Some(q)) if !ahead || barrier(q.step()) => q,
            (None, Some(q)) => {
                pending = Some(q);
                continue;
            }
        };
        let s = done.wait();
        // Between read-backs when the device is the bottleneck; when the host is, a step read
        // back right after its successor was queued shows a short gap, and its own queueing
        // time is the truer figure.
        let secs = last.elapsed().as_secs_f64().max(s.host_secs);
        last = std::time::Instant::now();
        let tflops = per_token * s.tokens as f64 / secs / 1e12;
        bar.inc(1);
        if every(s.step, cfg.system.log_interval) {
            metrics.write(&serde_json::json!({
                "step": s.step, "loss": s.loss, "grad_norm": s.grad_norm, "lr": s.lr,
                "tokens_per_s": s.tokens as f64 / secs, "tflops": tflops,
                "mfu": peak.map(|p| tflops * 1e12 / p), "flops_formula": "6N+6LdT",
            }))?;
        }
        if every(s.step, cfg.system.eval_interval) {
            if let Some(v) = trainer.validate(cfg.system.eval_iters)? {
                tracing::info!(
                    step = s.step,
                    loss = v.loss,
                    perplexity = v.perplexity,
                    "validation"
                );
                metrics.write(&serde_json::json!({
                    "step": s.step, "valid_loss": v.loss, "valid_perplexity": v.perplexity,
                    "valid_batches": v.batches,
                }))?;
            }
        }
        if every(s.step, cfg.system.save_interval) {
            let dir = trainer.save_checkpoint(&ckpts)?;
            if let Some(tok) = &cfg.data.tokenizer {
                std::fs::copy(tok, dir.join("tokenizer.json"))
                    .with_context(|| format!("copying {}", tok.display()))?;
            }
            manifest.add_output(&dir.join("model.safetensors"))?;
        }
        if barrier(s.step) {
            // Validation and saving are not the next step's time.
            last = std::time::Instant::now();
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

/// Drops the metrics rows of steps after `step` (logged by a run that died before its next
/// checkpoint), so a resumed run's log reads as one run's.
fn forget_metrics_after(path: &Path, step: usize) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() != text.len() {
        flagcore::fsutil::write_atomic(path, kept.as_bytes())?;
    }
    Ok(())
}
