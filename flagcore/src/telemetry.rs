//! Telemetry for binaries: a `tracing` subscriber (human or JSON lines on stderr), progress
//! bars for long work, and a JSON-lines metrics file.

use crate::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Logging flags every binary flattens into its clap parser.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct LogArgs {
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, env = "FLAGOPEN_LOG_FORMAT", global = true)]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace); RUST_LOG, when set, decides instead.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Warnings and errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl LogArgs {
    /// Installs the global subscriber for these flags.
    pub fn init(&self) -> Result<()> {
        let level = match (self.quiet, self.verbose) {
            (true, _) => "warn",
            (false, 0) => "info",
            (false, 1) => "debug",
            (false, _) => "trace",
        };
        init_tracing(self.log_format, level)
    }
}

/// Installs a global `tracing` subscriber writing to stderr; `RUST_LOG` overrides `level`.
pub fn init_tracing(format: LogFormat, level: &str) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .map_err(|e| Error::Telemetry(format!("log filter `{level}`: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| Error::Telemetry(e.to_string()))
}

/// Ends a binary's `main`: success, or the error on one line on stderr (`error: ...`, with its
/// causes when `E` shows them under `{:#}`, as anyhow does) and exit status 1, never a panic.
pub fn exit_code<E: std::fmt::Display>(
    result: std::result::Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A progress bar on stderr; hidden automatically when stderr is not a terminal.
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, eta {eta})",
    )
    .expect("the template is valid");
    indicatif::ProgressBar::new(len)
        .with_style(style)
        .with_message(what.to_string())
}

/// Appends one JSON object per line (`{"time": unix seconds, ...fields}`), flushed per record,
/// so a crashed run keeps every metric written before the crash.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsWriter {
    /// Opens `path` for appending, creating it and its folder.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes `record` (which must serialize to a JSON object) with a `time` field added.
    pub fn write(&mut self, record: &impl Serialize) -> Result<()> {
        let mut value = serde_json::to_value(record).map_err(|error| Error::Json {
            context: format!("metrics record for {}", self.path.display()),
            error,
        })?;
        let Some(map) = value.as_object_mut() else {
            return Err(Error::Telemetry(format!(
                "metrics records must be JSON objects ({})",
                self.path.display()
            )));
        };
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        map.insert("time".to_string(), serde_json::json!(time));
        let mut line = value.to_string();
        line.push('\n');
        // One write call per line keeps lines whole even if two processes append.
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lines_are_json_with_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/metrics.jsonl");
        let mut w = MetricsWriter::open(&path).unwrap();
        w.write(&serde_json::json!({"step": 1, "loss": 2.5}))
            .unwrap();
        w.write(&serde_json::json!({"step": 2, "loss": 2.0}))
            .unwrap();
        assert!(w.write(&serde_json::json!([1, 2])).is_err());
        drop(w);
        let mut again = MetricsWriter::open(&path).unwrap();
        again.write(&serde_json::json!({"step": 3})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1]["loss"], 2.0);
        assert!(rows.iter().all(|r| r["time"].as_f64().unwrap() > 1.6e9));
    }
}
