//! `flageval`: run benchmark tasks (lm-eval-style YAMLs) against a local model and write
//! lm-eval's results layout, per-document samples and a manifest; list the tasks found.

use anyhow::Context;
use clap::{Parser, Subcommand};
use flageval::model::{Cached, Dummy, Local, Model, Server};
use flageval::task::{discover, Task};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "flageval",
    version,
    about = "Evaluate language models on benchmark tasks"
)]
struct Cli {
    #[command(flatten)]
    log: flagcore::telemetry::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Score tasks and write `results.json`, `samples_<task>.jsonl` and a manifest.
    Run {
        /// A flagscale/Hugging Face folder, a .gguf file, an OpenAI-compatible completions URL
        /// (`http://127.0.0.1:8000/v1/completions`, e.g. `flagscale serve`), or `dummy`.
        #[arg(long)]
        model: String,
        /// Bearer token for a server model.
        #[arg(long, env = "FLAGEVAL_API_KEY")]
        api_key: Option<String>,
        /// Task names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        tasks: Vec<String>,
        /// Where task YAMLs live.
        #[arg(long, env = "FLAGEVAL_TASKS", default_value = "flageval/tasks")]
        task_dir: PathBuf,
        /// Score only the first N documents of each task.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        output: PathBuf,
        /// The response cache (SQLite); a re-run or resumed run answers from it.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Ask the model for every request, ignoring any cache.
        #[arg(long)]
        no_cache: bool,
        #[arg(long, default_value = "auto")]
        device: flagcore::Device,
    },
    /// The tasks under a folder, with their capability and source.
    ListTasks {
        #[arg(long, env = "FLAGEVAL_TASKS", default_value = "flageval/tasks")]
        task_dir: PathBuf,
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

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::ListTasks { task_dir } => {
            for (name, path) in discover(&task_dir)? {
                let task = Task::load(&path)?;
                println!(
                    "{name}\t{}\t{} documents\t{}",
                    task.config.capability.as_deref().unwrap_or("-"),
                    task.docs.len(),
                    path.display()
                );
            }
        }
        Command::Run {
            model,
            api_key,
            tasks,
            task_dir,
            limit,
            output,
            cache,
            no_cache,
            device,
        } => {
            let found = discover(&task_dir)?;
            let loaded = tasks
                .iter()
                .map(|t| {
                    let path = found
                        .iter()
                        .find(|(n, _)| n == t)
                        .map(|(_, p)| p)
                        .with_context(|| format!("no task `{t}` under {}", task_dir.display()))?;
                    Ok(Task::load(path)?)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let inner: Box<dyn Model> = if model == "dummy" {
                Box::new(Dummy::default())
            } else if model.starts_with("http://") || model.starts_with("https://") {
                let mut s = Server::new(&model, "default");
                s.api_key = api_key;
                Box::new(s)
            } else {
                Box::new(Local::load(
                    std::path::Path::new(&model),
                    device.resolve_tch()?,
                )?)
            };
            let mut m: Box<dyn Model> = if no_cache {
                inner
            } else {
                let db = cache.unwrap_or_else(|| output.join("requests.sqlite"));
                Box::new(Cached::open(inner, &db)?)
            };
            let mut manifest = flagcore::Manifest::begin("flageval run", env!("CARGO_PKG_VERSION"));
            let mut results = Vec::new();
            for t in &loaded {
                let start = std::time::Instant::now();
                let r = flageval::evaluate::run_task(t, m.as_mut(), limit)?;
                eprintln!(
                    "{}: {} in {:.1} s",
                    r.task,
                    r.metrics
                        .iter()
                        .map(|(n, v, se)| format!("{n} {v:.4} ± {se:.4}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    start.elapsed().as_secs_f64()
                );
                manifest.add_input(&t.source)?;
                results.push(r);
            }
            std::fs::create_dir_all(&output)
                .with_context(|| format!("creating {}", output.display()))?;
            let refs: Vec<&Task> = loaded.iter().collect();
            let json = flageval::evaluate::results_json(&refs, &results, &m.name(), limit);
            let path = output.join("results.json");
            flagcore::fsutil::write_atomic(&path, &serde_json::to_vec_pretty(&json)?)?;
            manifest.add_output(&path)?;
            for r in &results {
                let lines: String = r.samples.iter().map(|s| format!("{s}\n")).collect();
                let p = output.join(format!("samples_{}.jsonl", r.task));
                flagcore::fsutil::write_atomic(&p, lines.as_bytes())?;
                manifest.add_output(&p)?;
            }
            manifest.finish();
            manifest.write_beside(&output)?;
            println!("{}", serde_json::to_string_pretty(&json["results"])?);
        }
    }
    Ok(())
}
