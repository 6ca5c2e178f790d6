//! `flageval`: run benchmark tasks (lm-eval-style YAMLs) against a model and write lm-eval's
//! results layout, per-document samples and a manifest; list the tasks found; build a
//! leaderboard page from results; serve it.

mod bench;
mod leaderboard;
mod progress;
mod run;
mod serve;

use clap::{Parser, Subcommand};
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
    Run(run::RunArgs),
    /// The tasks and groups under a folder, with their capability and source.
    ListTasks {
        #[arg(long, env = "FLAGEVAL_TASKS", default_value = "flageval/tasks")]
        task_dir: PathBuf,
    },
    /// Write a self-contained HTML leaderboard from results files or folders.
    Leaderboard(leaderboard::Args),
    /// Serve the leaderboard of a results folder and a read-only JSON API.
    Serve(serve::Args),
    /// Items per second against lm-eval's `hf` backend on the same model and task.
    Bench(bench::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    flagcore::telemetry::exit_code(cli.log.init().map_err(anyhow::Error::from).and_then(|()| {
        match cli.command {
            Command::Run(a) => run::run(a),
            Command::ListTasks { task_dir } => list_tasks(&task_dir),
            Command::Leaderboard(a) => leaderboard::run(a),
            Command::Serve(a) => serve::run(a),
            Command::Bench(a) => bench::run(a),
        }
    }))
}

fn list_tasks(task_dir: &std::path::Path) -> anyhow::Result<()> {
    for (name, path) in flageval::task::discover(task_dir)? {
        // A task whose data is not here yet is listed with the reason, not an abort.
        match flageval::task::Task::load(&path) {
            Ok(task) => println!(
                "{name}\t{}\t{:?}\t{} documents\t{}",
                task.config.capability.as_deref().unwrap_or("-"),
                task.config.output_type,
                task.docs.len(),
                path.display()
            ),
            Err(e) => println!("{name}\tunavailable: {e}\t{}", path.display()),
        }
    }
    for g in flageval::task::discover_groups(task_dir)? {
        println!("{}\tgroup of {}", g.group, g.task.join(", "));
    }
    Ok(())
}
