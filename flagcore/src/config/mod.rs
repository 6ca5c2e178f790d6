//! Configs: YAML, JSON or TOML files merged in order, Hydra-style dotted command-line overrides,
//! `${env:VAR}` / `${env:VAR,default}` and `${a.b}` interpolation, then typed parsing into a
//! serde struct where an unknown key is an error naming the key and where it came from.
//!
//! ```no_run
//! # #[derive(serde::Deserialize)] struct Train { lr: f64 }
//! # #[derive(serde::Deserialize)] struct Cfg { train: Train }
//! let cfg: Cfg = flagcore::config::ConfigLoader::new()
//!     .file("exp.yaml")
//!     .overrides(["train.lr=3e-4"])
//!     .resolve()?
//!     .parse()?;
//! # Ok::<(), flagcore::Error>(())
//! ```

mod interpolate;
mod overrides;
mod parse;
mod tree;

use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where a key's value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    /// A command-line override, as typed.
    Override(String),
}

/// Collects config files and overrides; [`resolve`](Self::resolve) merges them.
#[derive(Clone, Debug, Default)]
pub struct ConfigLoader {
    files: Vec<PathBuf>,
    overrides: Vec<String>,
}

/// A merged, overridden and interpolated config tree, ready to parse into a struct.
#[derive(Clone, Debug)]
pub struct Resolved {
    value: Value,
    /// Dotted key paths and where they were last set; later entries win.
    origins: Vec<(String, Origin)>,
}

impl ConfigLoader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file; later files override earlier ones key by key.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Adds overrides such as `train.lr=3e-4`, `+new.key=1` or `~drop.this`.
    pub fn overrides<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.overrides
            .extend(args.into_iter().map(|s| s.as_ref().to_string()));
        self
    }

    pub fn resolve(&self) -> Result<Resolved> {
        let mut value = Value::Object(Default::default());
        let mut origins = Vec::new();
        for file in &self.files {
            let parsed = parse::read_file(file)?;
            for path in tree::leaf_paths(&parsed) {
                origins.push((path, Origin::File(file.clone())));
            }
            tree::merge(&mut value, parsed);
        }
        for arg in &self.overrides {
            let path = overrides::apply(&mut value, arg)?;
            origins.push((path, Origin::Override(arg.clone())));
        }
        let mut resolved = Resolved { value, origins };
        resolved.value = interpolate::resolve_all(&resolved.value)
            .map_err(|(key, message)| resolved.error_at(&key, message))?;
        Ok(resolved)
    }
}

/// Loads one file with overrides into `T`.
pub fn load<T: DeserializeOwned>(path: impl AsRef<Path>, overrides: &[String]) -> Result<T> {
    ConfigLoader::new()
        .file(path.as_ref())
        .overrides(overrides)
        .resolve()?
        .parse()
}

impl Resolved {
    /// The resolved tree (what a run manifest records and hashes).
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Where `key` (dotted) was set: the latest entry that set it, a key below it, or a key
    /// above it (later files and overrides win, as when merging).
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        let related = |p: &str| {
            p == key
                || key.is_empty()
                || p.is_empty()
                || p.strip_prefix(key).is_some_and(|r| r.starts_with('.'))
                || key.strip_prefix(p).is_some_and(|r| r.starts_with('.'))
        };
        self.origins
            .iter()
            .rev()
            .find(|(p, _)| related(p))
            .map(|(_, o)| o)
    }

    fn error_at(&self, key: &str, message: String) -> Error {
        match self.origin(key) {
            Some(Origin::Override(arg)) => Error::Override {
                arg: arg.clone(),
                message: if key.is_empty() {
                    message
                } else {
                    format!("`{key}`: {message}")
                },
            },
            Some(Origin::File(file)) => Error::Config {
                file: file.display().to_string(),
                key: key.to_string(),
                message,
            },
            None => Error::Config {
                file: self.files_label(),
                key: key.to_string(),
                message,
            },
        }
    }

    fn files_label(&self) -> String {
        let mut files: Vec<String> = Vec::new();
        for (_, origin) in &self.origins {
            if let Origin::File(f) = origin {
                let f = f.display().to_string();
                if !files.contains(&f) {
                    files.push(f);
                }
            }
        }
        files.join(" + ")
    }

    /// Parses into `T`; keys `T` does not know, wrong types and missing fields are errors.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        let mut value = self.value.clone();
        // A number or bool where `T` wants a string (`exp_name=123`) is taken as its text,
        // as OmegaConf's typed configs do; each retry fixes one such key.
        for _ in 0..=tree::count_leaves(&value) {
            match parse::typed::<T>(value.clone()) {
                Ok((parsed, unknown)) => {
                    return match unknown.first() {
                        None => Ok(parsed),
                        Some(key) => {
                            let more = match unknown.len() {
                                1 => String::new(),
                                n => format!(" (and {} more)", n - 1),
                            };
                            Err(self.error_at(key, format!("unknown key{more}")))
                        }
                    };
                }
                Err((key, message)) => {
                    if !(message.contains("string") && tree::stringify_scalar(&mut value, &key)) {
                        return Err(self.error_at(&key, message));
                    }
                }
            }
        }
        Err(self.error_at("", "config did not settle into its types".to_string()))
    }
}
