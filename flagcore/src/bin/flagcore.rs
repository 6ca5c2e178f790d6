//! `flagcore`: what this machine offers flagopen (host, libtorch, CUDA), and config checking.
//!
//! `flagcore env` prints the host record manifests embed, the libtorch release linked and
//! whether CUDA is usable; `flagcore config FILE [KEY=VALUE...]` prints a config after merging
//! overrides and interpolation, the way every flagopen binary resolves it.

use clap::{Parser, Subcommand};
use flagcore::config::ConfigLoader;
use flagcore::manifest::{config_sha256, HostInfo};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "flagcore",
    version,
    about = "flagopen's shared runtime: environment and config checks"
)]
struct Cli {
    #[command(flatten)]
    log: flagcore::telemetry::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print host, libtorch and CUDA facts as JSON.
    Env,
    /// Resolve config files (merged in order) plus overrides and print the result as JSON.
    Config {
        /// Config files (.yaml, .yml, .json, .toml), later ones overriding earlier ones.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Overrides such as `train.lr=3e-4`; must follow the files after `--`.
        #[arg(last = true)]
        overrides: Vec<String>,
        /// Also print the sha256 of the canonical resolved config.
        #[arg(long)]
        hash: bool,
    },
}

fn main() -> std::process::ExitCode {
    flagcore::telemetry::exit_code(run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    cli.log.init()?;
    match cli.command {
        Command::Env => {
            let report = serde_json::json!({
                "host": HostInfo::detect(),
                "libtorch": libtorch(),
                "cuda": cuda(),
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Config {
            files,
            overrides,
            hash,
        } => {
            let loader = files
                .iter()
                .fold(ConfigLoader::new(), |l, f| l.file(f))
                .overrides(&overrides);
            let resolved = loader.resolve()?;
            println!("{}", serde_json::to_string_pretty(resolved.value())?);
            if hash {
                println!("sha256 {}", config_sha256(resolved.value())?);
            }
        }
    }
    Ok(())
}

#[cfg(feature = "torch")]
fn libtorch() -> serde_json::Value {
    serde_json::json!({
        "version": flagcore::torch::libtorch_version(),
        "lib": flagcore::torch::libtorch_lib_dir(),
        "cuda_available": tch::Cuda::is_available(),
        "cuda_devices": tch::Cuda::device_count(),
        "cudnn_available": tch::Cuda::cudnn_is_available(),
    })
}

#[cfg(not(feature = "torch"))]
fn libtorch() -> serde_json::Value {
    serde_json::json!("not built in (feature `torch`)")
}

#[cfg(feature = "cuda")]
fn cuda() -> serde_json::Value {
    match flagcore::cuda::device_count() {
        Ok(n) => serde_json::json!({ "driver": true, "devices": n }),
        Err(e) => serde_json::json!({ "driver": false, "error": e.to_string() }),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> serde_json::Value {
    serde_json::json!("not built in (feature `cuda`)")
}
