//! Tasks: a YAML config (lm-eval's keys, `config.rs`), its documents (`data.rs`) and the
//! templates that turn a document into a context, answer options and a gold index
//! (`template.rs`). Contexts are built as lm-eval builds them: description, then few-shot
//! examples each followed by the few-shot delimiter, then the document's text.

pub mod config;
pub mod data;
pub mod template;

pub use config::{GroupConfig, OutputType, TaskConfig};

use crate::{Error, Result};
use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Task {
    pub config: TaskConfig,
    /// The YAML the task came from.
    pub source: PathBuf,
    /// The file of the evaluated split.
    pub data_file: PathBuf,
    pub docs: Vec<Value>,
    fewshot_docs: Vec<Value>,
    /// The few-shot examples come from the evaluated split itself (a document is never its
    /// own example, as in lm-eval).
    fewshot_is_eval: bool,
    templates: template::Templates,
    /// sha256 of the resolved config and the documents: results compare only when equal.
    pub hash: String,
    /// Seed of the `random` few-shot sampler (set with [`Task::set_seed`]).
    seed: u64,
}

/// One document as requests see it.
#[derive(Clone, Debug)]
pub struct Item {
    pub doc_id: usize,
    /// Description, few-shot examples and the document's text (empty for rolling tasks).
    pub context: String,
    /// Multiple choice: the options scored as continuations.
    pub choices: Vec<String>,
    /// Index of the right option (multiple choice).
    pub gold: usize,
    /// The reference text: the right option, the generation target, the scored continuation
    /// or the whole text of a rolling task.
    pub target: String,
}

impl Task {
    /// Loads a task YAML (unknown keys are errors naming them) and its documents.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &[])
    }

    /// Loads a task YAML with `key=value` overrides (e.g. `num_fewshot=5`), as flagcore's
    /// configs take them.
    pub fn load_with(path: &Path, overrides: &[String]) -> Result<Self> {
        let resolved = flagcore::config::ConfigLoader::new()
            .file(path)
            .overrides(overrides)
            .resolve()?;
        let config: TaskConfig = resolved.parse()?;
        let fail = |m: String| Error::Task {
            task: config.task.clone(),
            message: m,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let files = config.dataset_kwargs.data_files.as_ref();
        let field = config.dataset_kwargs.field.as_deref();
        let by = config.dataset_kwargs.sample_by.as_deref();
        let split = config
            .eval_split()
            .ok_or_else(|| fail("no test_split, validation_split or training_split".into()))?;
        let file = data::split_file(files, split, base)
            .ok_or_else(|| {
                fail(format!(
                    "dataset_kwargs.data_files has no file for split `{split}`"
                ))
            })?
            .map_err(|e| fail(e.to_string()))?;
        let docs = data::read_docs(&config.dataset_path, &file, field, by)
            .map_err(|e| fail(e.to_string()))?;
        if docs.is_empty() {
            return Err(fail(format!("{} holds no documents", file.display())));
        }
        let (fewshot_docs, fewshot_is_eval) =
            match (config.num_fewshot, config.fewshot_split.as_deref()) {
                (0, _) => (Vec::new(), false),
                (_, Some(s)) if s == split => (docs.clone(), true),
                (_, Some(s)) => {
                    let f = data::split_file(files, s, base)
                        .ok_or_else(|| fail(format!("no file for fewshot_split `{s}`")))?
                        .map_err(|e| fail(e.to_string()))?;
                    (
                        data::read_docs(&config.dataset_path, &f, field, by)
                            .map_err(|e| fail(e.to_string()))?,
                        false,
                    )
                }
                (_, None) => {
                    return Err(fail(
                        "num_fewshot > 0 needs a fewshot_split (it may name the evaluated split)"
                            .into(),
                    ))
                }
            };
        let sampler = config
            .fewshot_config
            .sampler
            .as_deref()
            .unwrap_or("first_n");
        if !matches!(sampler, "first_n" | "random") {
            return Err(fail(format!(
                "fewshot_config.sampler `{sampler}`: expected `first_n` or `random`"
            )));
        }
        let available = fewshot_docs.len() - usize::from(fewshot_is_eval);
        if config.num_fewshot > available {
            return Err(fail(format!(
                "num_fewshot {} but the few-shot split offers {available} examples",
                config.num_fewshot
            )));
        }
        if config.output_type != OutputType::LoglikelihoodRolling && config.doc_to_text.is_none() {
            return Err(fail("doc_to_text is required for this output type".into()));
        }
        let mut h = sha2::Sha256::new();
        h.update(flagcore::manifest::canonical_json(
            &serde_json::to_value(&config).map_err(|e| Error::Invalid(e.to_string()))?,
        ));
        for d in docs.iter().chain(if fewshot_is_eval {
            &[][..]
        } else {
            &fewshot_docs[..]
        }) {
            h.update(flagcore::manifest::canonical_json(d));
        }
        let task = Task {
            hash: hex::encode(h.finalize()),
            config,
            source: path.to_path_buf(),
            data_file: file,
            docs,
            fewshot_docs,
            fewshot_is_eval,
            templates: template::Templates::new(),
            seed: 1234,
        };
        let mut task = task;
        task.set_seed(1234);
        // Every document must render now, so a bad row fails before any model work.
        for i in 0..task.docs.len() {
            task.item(i)?;
            if task.circular() {
                task.circular_item(i, 1)?;
            }
        }
        Ok(task)
    }

    /// Seeds the `random` few-shot sampler; the seed then enters the task hash, since other
    /// examples make another task.
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
        if self.config.num_fewshot > 0
            && self.config.fewshot_config.sampler.as_deref() == Some("random")
        {
            let mut h = sha2::Sha256::new();
            h.update(self.hash.as_bytes());
            h.update(format!("fewshot seed {seed}"));
            self.hash = hex::encode(h.finalize());
        }
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

    /// The reference text of a document: the right option when there are options, else
    /// `doc_to_target` rendered.
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

    fn text(&self, doc: &Value, row: usize) -> Result<String> {
        let spec = self.config.doc_to_text.as_ref().unwrap_or(&Value::Null);
        self.templates
            .text(spec, doc)
            .map_err(|m| self.row_error(row, m))
    }

    /// The few-shot examples of document `row` (indices into the few-shot documents).
    /// From the evaluated split itself a document is never its own example (lm-eval draws one
    /// more and drops the document): `first_n` then takes the first k others.
    fn examples(&self, row: usize) -> Vec<usize> {
        let k = self.config.num_fewshot;
        if self.config.fewshot_config.sampler.as_deref() != Some("random") {
            return (0..self.fewshot_docs.len())
                .filter(|&i| !(self.fewshot_is_eval && i == row))
                .take(k)
                .collect();
        }
        let pool: Vec<usize> = (0..self.fewshot_docs.len())
            .filter(|&i| !(self.fewshot_is_eval && i == row))
            .collect();
        crate::metrics::Rng::new(self.seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .sample(&pool, k)
    }

    /// The context of `doc` (document `row`) before any answer: description, few-shot
    /// examples each followed by the few-shot delimiter, the document's text.
    fn context_of(&self, doc: &Value, row: usize) -> Result<String> {
        // lm-eval renders the description as a template of the document too.
        let mut ctx =
            if self.config.description.contains("{{") || self.config.description.contains("{%") {
                self.templates
                    .render(&self.config.description, doc)
                    .map_err(|m| self.row_error(row, format!("description: {m}")))?
            } else {
                self.config.description.clone()
            };
        for i in self.examples(row) {
            let ex = &self.fewshot_docs[i];
            let q = self
                .text(ex, i)
                .map_err(|e| self.row_error(row, format!("few-shot example {i}: {e}")))?;
            let a = self.target_text(ex, i)?;
            ctx.push_str(&q);
            ctx.push_str(&self.config.target_delimiter);
            ctx.push_str(&a);
            ctx.push_str(&self.config.fewshot_delimiter);
        }
        ctx.push_str(&self.text(doc, row)?);
        Ok(ctx)
    }

    pub fn context(&self, row: usize) -> Result<String> {
        self.context_of(&self.docs[row], row)
    }

    fn item_of(&self, doc: &Value, row: usize) -> Result<Item> {
        let item = |context, choices, gold, target| Item {
            doc_id: row,
            context,
            choices,
            gold,
            target,
        };
        Ok(match self.config.output_type {
            OutputType::MultipleChoice => {
                let choices = self.choices_of(doc, row)?;
                if choices.len() < 2 {
                    return Err(self.row_error(row, "fewer than two choices".into()));
                }
                let gold = self.gold(doc, &choices, row)?;
                let target = choices[gold].clone();
                item(self.context_of(doc, row)?, choices, gold, target)
            }
            OutputType::Loglikelihood | OutputType::GenerateUntil => item(
                self.context_of(doc, row)?,
                vec![],
                0,
                self.target_text(doc, row)?,
            ),
            OutputType::LoglikelihoodRolling => {
                let text = self
                    .templates
                    .text(&self.config.doc_to_target, doc)
                    .map_err(|m| self.row_error(row, m))?;
                if text.is_empty() {
                    return Err(self.row_error(row, "the text to score is empty".into()));
                }
                item(String::new(), vec![], 0, text)
            }
        })
    }

    /// Document `row` as an item.
    pub fn item(&self, row: usize) -> Result<Item> {
        self.item_of(&self.docs[row], row)
    }

    /// Whether CircularEval is possible: multiple choice with the option fields named.
    pub fn circular(&self) -> bool {
        self.config.output_type == OutputType::MultipleChoice
            && !self.config.circular_fields.is_empty()
    }

    /// Document `row` with its options rotated by `shift`: field i shows the option of field
    /// (i + shift) mod n, so the right answer moves from g to (g − shift) mod n.
    pub fn circular_item(&self, row: usize, shift: usize) -> Result<Item> {
        let fields = &self.config.circular_fields;
        let n = fields.len();
        let mut doc = self.docs[row].clone();
        let original = &self.docs[row];
        for (i, f) in fields.iter().enumerate() {
            let v = original
                .get(&fields[(i + shift) % n])
                .cloned()
                .ok_or_else(|| self.row_error(row, format!("circular field `{f}` is missing")))?;
            doc[f.as_str()] = v;
        }
        let mut it = self.item_of(&doc, row)?;
        let base = self.item(row)?;
        if it.choices.len() != n {
            return Err(self.row_error(
                row,
                format!("{} circular fields but {} choices", n, it.choices.len()),
            ));
        }
        it.gold = (base.gold + n - shift % n) % n;
        it.target = it.choices[it.gold].clone();
        Ok(it)
    }
}

/// Task YAMLs under `dir` (recursively), by task name.
pub fn discover(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    Ok(yamls(dir)?
        .into_iter()
        .filter_map(|(p, v)| Some((v.get("task")?.as_str()?.to_string(), p)))
        .filter(|(_, p)| p.is_file())
        .collect())
}

/// Group YAMLs under `dir` (those with a `group` key and a list of tasks).
pub fn discover_groups(dir: &Path) -> Result<Vec<GroupConfig>> {
    let mut out = Vec::new();
    for (p, v) in yamls(dir)? {
        if v.get("group").is_some() {
            let g: GroupConfig = serde_json::from_value(v)
                .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?;
            out.push(g);
        }
    }
    out.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(out)
}

fn yamls(dir: &Path) -> Result<Vec<(PathBuf, Value)>> {
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
                out.push((p, resolved.value().clone()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
