//! `flageval run`: tasks (or groups of tasks) against one model, through a response cache,
//! into lm-eval's results layout with samples and a manifest.

use crate::progress::Progress;
use anyhow::Context;
use flageval::evaluate::{self, Options};
use flageval::model::{Cached, Dummy, Local, Model, Server};
use flageval::task::{discover, discover_groups, Task};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A flagscale/Hugging Face folder, a .gguf file, an OpenAI-compatible completions URL
    /// (`http://127.0.0.1:8000/v1/completions`, e.g. `flagscale serve`), or `dummy`.
    #[arg(long)]
    model: String,
    /// Bearer token for a server model.
    #[arg(long, env = "FLAGEVAL_API_KEY")]
    api_key: Option<String>,
    /// Generate through the server's `/v1/chat/completions` (chat models).
    #[arg(long)]
    chat: bool,
    /// The `model` a server is asked for; also keys the response cache, so answers of one
    /// served model are never taken for another's.
    #[arg(long, default_value = "default")]
    server_model: String,
    /// Task or group names, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    tasks: Vec<String>,
    /// Where task YAMLs live.
    #[arg(long, env = "FLAGEVAL_TASKS", default_value = "flageval/tasks")]
    task_dir: PathBuf,
    /// Score only the first N documents of each task.
    #[arg(long)]
    limit: Option<usize>,
    /// Few-shot examples per document, overriding the tasks' `num_fewshot`.
    #[arg(long)]
    num_fewshot: Option<usize>,
    /// Prompts per HTTP request (server) or generations decoded together (local).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Padded tokens per forward pass when scoring with a local model.
    #[arg(long, default_value_t = 8192)]
    batch_tokens: usize,
    /// Requests in flight to a server.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    #[arg(long)]
    output: PathBuf,
    /// The response cache (SQLite); a re-run or resumed run answers from it.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Ask the model for every request, ignoring any cache.
    #[arg(long)]
    no_cache: bool,
    /// CircularEval (OpenCompass) for multiple-choice tasks that name their option fields.
    #[arg(long)]
    circular: bool,
    /// Resamples for bootstrap standard errors (0 skips them).
    #[arg(long, default_value_t = 100_000)]
    bootstrap_iters: usize,
    /// Seed of the random few-shot sampler, sampled generation and the bootstrap.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    #[arg(long, default_value = "auto")]
    device: flagcore::Device,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn open_model(a: &RunArgs) -> anyhow::Result<Box<dyn Model>> {
    Ok(if a.model == "dummy" {
        Box::new(Dummy::default())
    } else if a.model.starts_with("http://") || a.model.starts_with("https://") {
        let mut s = Server::new(&a.model, &a.server_model);
        s.api_key = a.api_key.clone();
        s.chat = a.chat;
        s.batch = a.batch_size;
        s.concurrency = a.concurrency;
        Box::new(s)
    } else {
        let mut m = Local::load(Path::new(&a.model), a.device.resolve_tch()?)
            .with_context(|| format!("loading --model {}", a.model))?;
        m.batch_tokens = a.batch_tokens;
        m.generation_batch = a.batch_size;
        Box::new(m)
    })
}

pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let found = discover(&a.task_dir)?;
    let all_groups = discover_groups(&a.task_dir)?;
    let overrides: Vec<String> = a
        .num_fewshot
        .map(|k| vec![format!("num_fewshot={k}")])
        .unwrap_or_default();
    // Names are tasks or groups; a group runs its tasks and reports their aggregate.
    let mut names: Vec<String> = Vec::new();
    let mut groups = Vec::new();
    for t in &a.tasks {
        if let Some(g) = all_groups.iter().find(|g| &g.group == t) {
            names.extend(g.task.iter().cloned());
            groups.push(g.clone());
        } else {
            names.push(t.clone());
        }
    }
    for g in &groups {
        for m in &g.aggregate_metric_list {
            anyhow::ensure!(
                m.aggregation == "mean",
                "group {}: aggregation `{}` of {}: groups aggregate by mean (weight_by_size \
                 chooses micro or macro)",
                g.group,
                m.aggregation,
                m.metric
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    let loaded = names
        .iter()
        .map(|t| {
            let path = found
                .iter()
                .find(|(n, _)| n == t)
                .map(|(_, p)| p)
                .with_context(|| {
                    format!("no task or group `{t}` under {}", a.task_dir.display())
                })?;
            let mut task = Task::load_with(path, &overrides)?;
            task.set_seed(a.seed);
            Ok(task)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let inner = open_model(&a)?;
    let (name, fingerprint) = (inner.name(), inner.fingerprint());
    let (mut plain, mut cached) = if a.no_cache {
        (Some(inner), None)
    } else {
        let db = a
            .cache
            .clone()
            .unwrap_or_else(|| a.output.join("requests.sqlite"));
        (None, Some(Cached::open(inner, &db)?))
    };
    let model: &mut dyn Model = match (cached.as_mut(), plain.as_mut()) {
        (Some(c), _) => c,
        (None, Some(p)) => p,
        (None, None) => anyhow::bail!("no model"),
    };
    let bar = if a.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        flagcore::telemetry::progress_bar(0, "requests")
    };
    let mut m = Progress {
        inner: model,
        bar,
        chunk: 256,
    };
    let opts = Options {
        limit: a.limit,
        bootstrap_iters: a.bootstrap_iters,
        circular: a.circular,
        seed: a.seed,
    };
    let mut manifest = flagcore::Manifest::begin("flageval run", env!("CARGO_PKG_VERSION"));
    let mut results = Vec::new();
    for t in &loaded {
        let start = std::time::Instant::now();
        m.bar.set_message(t.config.task.clone());
        let r = evaluate::run_task(t, &mut m, &opts)?;
        m.bar.suspend(|| {
            eprintln!(
                "{}: {} ({} documents, {:.1} s)",
                r.task,
                r.metrics
                    .iter()
                    .map(|x| format!("{} {:.4} ± {:.4}", x.name, x.value, x.stderr))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.samples.len(),
                start.elapsed().as_secs_f64()
            )
        });
        manifest.add_input(&t.source)?;
        results.push(r);
    }
    m.bar.finish_and_clear();
    drop(m);
    if let Some(c) = &cached {
        eprintln!(
            "requests: {} answered by the model, {} from the response cache",
            c.inner_calls, c.hits
        );
    }
    let group_results: Vec<_> = groups
        .iter()
        .map(|g| {
            let members: Vec<&evaluate::TaskResult> = results
                .iter()
                .filter(|r| g.task.contains(&r.task))
                .collect();
            (g.clone(), evaluate::group_metrics(g, &members))
        })
        .collect();
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let refs: Vec<&Task> = loaded.iter().collect();
    let mut json = evaluate::results_json(&refs, &results, &group_results, &name, &opts);
    // Provenance for the leaderboard's rows.
    let config = &mut json["config"];
    config["board"] = serde_json::json!(if a.chat { "chat" } else { "base" });
    config["model_source"] = serde_json::json!(a.model);
    config["model_fingerprint"] = serde_json::json!(fingerprint);
    config["flageval_version"] = serde_json::json!(env!("CARGO_PKG_VERSION"));
    config["date"] = serde_json::json!(manifest.started_at);
    config["git"] = serde_json::json!(manifest.git);
    let path = a.output.join("results.json");
    flagcore::fsutil::write_atomic(&path, &serde_json::to_vec_pretty(&json)?)?;
    manifest.add_output(&path)?;
    for r in &results {
        let lines: String = r.samples.iter().map(|s| format!("{s}\n")).collect();
        // A task name is not a path: separators become underscores.
        let safe: String = r
            .task
            .chars()
            .map(|c| {
                if c == '/' || c == '\\' || c == '.' {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let p = a.output.join(format!("samples_{safe}.jsonl"));
        flagcore::fsutil::write_atomic(&p, lines.as_bytes())?;
        manifest.add_output(&p)?;
    }
    manifest.finish();
    manifest.write_beside(&a.output)?;
    println!("{}", serde_json::to_string_pretty(&json["results"])?);
    if !json["groups"].as_object().is_some_and(|g| g.is_empty()) {
        println!("{}", serde_json::to_string_pretty(&json["groups"])?);
    }
    Ok(())
}
