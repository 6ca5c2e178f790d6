//! Tasks: a YAML config (lm-eval's keys, `config.rs`), its documents (`data.rs`) and the
//! templates that turn a document into a context, answer options and a gold index
//! (`template.rs`). Contexts are built as lm-eval builds them: description, then few-shot
//! examples each followed by the few-shot delimiter, then the document's text.

pub mod config;
pub mod data;
pub mod template;

pub use config::{OutputType, TaskConfig};

use crate::{Error, Result};
use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Task {
    pub config: TaskConfig,
    /// The YAML the task came from.
    pub source: PathBuf,
    pub docs: Vec<Value>,
    fewshot_docs: Vec<Value>,
    templates: template::Templates,
    /// sha256 of the resolved config and the documents: results compare only when equal.
    pub hash: String,
}

/// One scored document: its context, the continuations to score, and the gold index.
#[derive(Clone, Debug)]
pub struct Item {
    pub doc_id: usize,
    pub context: String,
    pub choices: Vec<String>,
    pub gold: usize,
}

impl Task {
    /// Loads a task YAML (unknown keys are errors naming them) and its documents.
    pub fn load(path: &Path) -> Result<Self> {
        let resolved = flagcore::config::ConfigLoader::new().file(path).resolve()?;
        let config: TaskConfig = resolved.parse()?;
        let fail = |m: String| Error::Task {
            task: config.task.clone(),
            message: m,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let files = config.dataset_kwargs.data_files.as_ref();
        let split = config
            .eval_split()
            .ok_or_else(|| fail("no test_split, validation_split or training_split".into()))?;
        let file = data::split_file(files, split, base).ok_or_else(|| {
            fail(format!(
                "dataset_kwargs.data_files has no file for split `{split}`"
            ))
        })?;
        let docs = data::read_docs(&config.dataset_path, &file)?;
        if docs.is_empty() {
            return Err(fail(format!("{} holds no documents", file.display())));
        }
        let fewshot_docs = match (config.num_fewshot, config.fewshot_split.as_deref()) {
            (0, _) => Vec::new(),
            (_, Some(s)) => {
                let f = data::split_file(files, s, base)
                    .ok_or_else(|| fail(format!("no file for fewshot_split `{s}`")))?;
                data::read_docs(&config.dataset_path, &f)?
            }
            (_, None) => {
                return Err(fail(
                    "num_fewshot > 0 needs a fewshot_split (examples never come from the evaluated split)".into(),
                ))
            }
        };
        if config.num_fewshot > 0
            && config
                .fewshot_config
                .sampler
                .as_deref()
                .unwrap_or("first_n")
                != "first_n"
        {
            return Err(fail(
                "fewshot_config.sampler: this runner implements `first_n`".into(),
            ));
        }
        let mut h = sha2::Sha256::new();
        h.update(flagcore::manifest::canonical_json(
            &serde_json::to_value(&config).map_err(|e| Error::Invalid(e.to_string()))?,
        ));
        for d in docs.iter().chain(&fewshot_docs) {
            h.update(flagcore::manifest::canonical_json(d));
        }
        let task = Task {
            hash: hex::encode(h.finalize()),
            config,
            source: path.to_path_buf(),
            docs,
            fewshot_docs,
            templates: template::Templates::new(),
        };
        // Every document must render now, so a bad row fails before any model work.
        for i in 0..task.docs.len() {
            task.item(i)?;
        }
        Ok(task)
    }

    fn row_error(&self, row: usize, message: String) -> Error {
        Error::Row {
            task: self.config.task.clone(),
            row,
            message,
        }
    }

    fn choices_of(&self, doc: &Value, row: usize) -> Result<Vec<String>> {
        match &self.config.doc_to_choice {
            Some(spec) => self
                .templates
                .choices(spec, doc)
                .map_err(|m| self.row_error(row, m)),
            None => Ok(Vec::new()),
        }
    }

    /// The text a few-shot example shows as its answer.
    fn target_text(&self, doc: &Value, row: usize) -> Result<String> {
        let choices = self.choices_of(doc, row)?;
        if choices.is_empty() {
            return self
                .templates
                .text(&self.config.doc_to_target, doc)
                .map_err(|m| self.row_error(row, m));
        }
        let gold = self.gold(doc, &choices, row)?;
        Ok(choices[gold].clone())
    }

    fn gold(&self, doc: &Value, choices: &[String], row: usize) -> Result<usize> {
        let g = self
            .templates
            .target(&self.config.doc_to_target, doc, choices)
            .map_err(|m| self.row_error(row, m))?;
        if g >= choices.len() {
            return Err(self.row_error(
                row,
                format!(
                    "answer index {g} is out of range for {} choices",
                    choices.len()
                ),
            ));
        }
        Ok(g)
    }

    /// The context before any answer: description, few-shot examples, the document's text.
    pub fn context(&self, row: usize) -> Result<String> {
        let doc = &self.docs[row];
        let mut ctx = self.config.description.clone();
        for (i, ex) in self
            .fewshot_docs
            .iter()
            .take(self.config.num_fewshot)
            .enumerate()
        {
            let q = self
                .templates
                .text(&self.config.doc_to_text, ex)
                .map_err(|m| self.row_error(i, format!("few-shot example: {m}")))?;
            let a = self.target_text(ex, i)?;
            ctx.push_str(&q);
            ctx.push_str(&self.config.target_delimiter);
            ctx.push_str(&a);
            ctx.push_str(&self.config.fewshot_delimiter);
        }
        ctx.push_str(
            &self
                .templates
                .text(&self.config.doc_to_text, doc)
                .map_err(|m| self.row_error(row, m))?,
        );
        Ok(ctx)
    }

    /// Document `row` as a scoring item.
    pub fn item(&self, row: usize) -> Result<Item> {
        let doc = &self.docs[row];
        let context = self.context(row)?;
        let (choices, gold) = match self.config.output_type {
            OutputType::MultipleChoice => {
                let choices = self.choices_of(doc, row)?;
                if choices.len() < 2 {
                    return Err(self.row_error(row, "fewer than two choices".into()));
                }
                let gold = self.gold(doc, &choices, row)?;
                (choices, gold)
            }
            OutputType::Loglikelihood => (vec![self.target_text(doc, row)?], 0),
        };
        Ok(Item {
            doc_id: row,
            context,
            choices,
            gold,
        })
    }
}

/// Task YAMLs under `dir` (recursively), by task name.
pub fn discover(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::Io {
            path: d.clone(),
            error: e,
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                let resolved = flagcore::config::ConfigLoader::new().file(&p).resolve()?;
                if let Some(name) = resolved.value().get("task").and_then(Value::as_str) {
                    out.push((name.to_string(), p));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}
