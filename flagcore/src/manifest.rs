//! Run manifests: the provenance record written beside every artifact.
//!
//! A manifest names the code (git commit and dirty flag), the resolved config (canonical JSON
//! and its sha256), every input file's sha256, the seed, the host, the libtorch release and
//! the start and end times, so any dataset, checkpoint, evaluation or benchmark can be traced
//! back to what made it and rebuilt.

mod host;

use crate::fsutil::{sha256_bytes, sha256_file, write_atomic};
use crate::{Error, Result};
pub use host::HostInfo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    pub commit: String,
    /// Tracked files differ from the commit.
    pub dirty: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    /// What wrote the artifact, e.g. `flagdata run` or `flagscale train`.
    pub tool: String,
    pub tool_version: String,
    pub argv: Vec<String>,
    pub git: Option<GitInfo>,
    pub config: Option<Value>,
    pub config_sha256: Option<String>,
    pub inputs: Vec<FileDigest>,
    pub outputs: Vec<FileDigest>,
    pub seed: Option<u64>,
    pub host: HostInfo,
    pub libtorch: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// JSON with object keys sorted at every level and no whitespace: the form that is hashed,
/// whatever order the keys were written or read in.
pub fn canonical_json(value: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn to_value(config: &impl Serialize) -> Result<Value> {
    serde_json::to_value(config).map_err(|error| Error::Json {
        context: "config is not representable as JSON".to_string(),
        error,
    })
}

/// sha256 of a config's canonical JSON.
pub fn config_sha256(config: &impl Serialize) -> Result<String> {
    Ok(sha256_bytes(canonical_json(&to_value(config)?).as_bytes()))
}

/// The commit of the checkout at `dir`, or `None` outside git or without a git binary.
pub fn git_info(dir: &Path) -> Option<GitInfo> {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"])?;
    let status = git(&["status", "--porcelain", "--untracked-files=no"])?;
    Some(GitInfo {
        commit,
        dirty: !status.is_empty(),
    })
}

/// The path of the manifest that belongs to `artifact`: `<dir>/manifest.json` for a folder,
/// `<file>.manifest.json` for a file.
pub fn manifest_path(artifact: &Path) -> PathBuf {
    if artifact.is_dir() {
        artifact.join("manifest.json")
    } else {
        let mut name = artifact.file_name().unwrap_or_default().to_os_string();
        name.push(".manifest.json");
        artifact.with_file_name(name)
    }
}

impl Manifest {
    /// Starts a manifest now, capturing argv, git state of this source tree and the host.
    pub fn begin(tool: &str, tool_version: &str) -> Self {
        let source_root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."));
        Manifest {
            schema: SCHEMA_VERSION,
            tool: tool.to_string(),
            tool_version: tool_version.to_string(),
            argv: std::env::args().collect(),
            git: git_info(source_root),
            config: None,
            config_sha256: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            seed: None,
            host: HostInfo::detect(),
            libtorch: None,
            started_at: now(),
            finished_at: None,
        }
    }

    /// Records the resolved config and its hash.
    pub fn with_config(mut self, config: &impl Serialize) -> Result<Self> {
        let value = to_value(config)?;
        self.config_sha256 = Some(sha256_bytes(canonical_json(&value).as_bytes()));
        self.config = Some(value);
        Ok(self)
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    pub fn with_libtorch(mut self, version: Option<&str>) -> Self {
        self.libtorch = version.map(str::to_string);
        self
    }

    /// Hashes an input file (streaming) and records it.
    pub fn add_input(&mut self, path: &Path) -> Result<()> {
        let digest = digest(path)?;
        self.inputs.push(digest);
        Ok(())
    }

    /// Hashes a file the run produced and records it.
    pub fn add_output(&mut self, path: &Path) -> Result<()> {
        let digest = digest(path)?;
        self.outputs.push(digest);
        Ok(())
    }

    pub fn finish(&mut self) {
        self.finished_at = Some(now());
    }

    /// Writes the manifest beside `artifact` (see [`manifest_path`]), atomically.
    pub fn write_beside(&self, artifact: &Path) -> Result<PathBuf> {
        let path = manifest_path(artifact);
        self.write(&path)?;
        Ok(path)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self).map_err(|error| Error::Json {
            context: "manifest".to_string(),
            error,
        })?;
        text.push('\n');
        write_atomic(path, text.as_bytes())
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|error| Error::Json {
            context: path.display().to_string(),
            error,
        })
    }
}

fn digest(path: &Path) -> Result<FileDigest> {
    let (sha256, bytes) = sha256_file(path)?;
    Ok(FileDigest {
        path: path.display().to_string(),
        sha256,
        bytes,
    })
}
