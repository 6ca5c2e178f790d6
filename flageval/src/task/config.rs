//! A task's YAML in lm-eval-harness's layout (the keys this crate implements; any other key is
//! an error naming it), plus FlagEval's taxonomy fields and OpenCompass's CircularEval.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    MultipleChoice,
    Loglikelihood,
    LoglikelihoodRolling,
    GenerateUntil,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub metric: String,
    /// lm-eval's aggregation name; the metric's usual one when absent.
    #[serde(default)]
    pub aggregation: Option<String>,
    #[serde(default)]
    pub higher_is_better: Option<bool>,
    /// `exact_match` options, as Hugging Face `evaluate`'s exact_match takes them.
    #[serde(default)]
    pub ignore_case: bool,
    #[serde(default)]
    pub ignore_punctuation: bool,
    #[serde(default)]
    pub ignore_numbers: bool,
    #[serde(default)]
    pub regexes_to_ignore: Vec<String>,
}

impl MetricSpec {
    pub fn named(metric: &str) -> Self {
        MetricSpec {
            metric: metric.into(),
            aggregation: None,
            higher_is_better: None,
            ignore_case: false,
            ignore_punctuation: false,
            ignore_numbers: false,
            regexes_to_ignore: Vec::new(),
        }
    }

    /// The aggregation: given, or lm-eval's default for the metric.
    pub fn aggregation(&self) -> &str {
        if let Some(a) = &self.aggregation {
            return a;
        }
        match self.metric.as_str() {
            "perplexity" => "perplexity",
            "word_perplexity" | "byte_perplexity" => "weighted_perplexity",
            "bits_per_byte" => "bits_per_byte",
            "f1" => "f1",
            "mcc" => "matthews_corrcoef",
            _ => "mean",
        }
    }

    pub fn higher_is_better(&self) -> bool {
        self.higher_is_better.unwrap_or(!matches!(
            self.metric.as_str(),
            "perplexity" | "word_perplexity" | "byte_perplexity" | "bits_per_byte"
        ))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewshotConfig {
    /// `first_n` (the default) takes the first documents of the few-shot split; `random`
    /// draws them per document from a generator seeded by the run's seed and the document's
    /// index. Unlike lm-eval (one generator drawn from document after document), a
    /// document's examples do not depend on which other documents run (`--limit`), so they
    /// differ from lm-eval's draws; `first_n` matches lm-eval exactly.
    #[serde(default)]
    pub sampler: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationKwargs {
    /// Stop strings: a list or one string; the few-shot delimiter when absent.
    #[serde(default)]
    pub until: Option<Value>,
    #[serde(default = "max_gen_toks")]
    pub max_gen_toks: usize,
    #[serde(default)]
    pub temperature: f64,
    #[serde(default)]
    pub do_sample: bool,
}

fn max_gen_toks() -> usize {
    256
}

/// One step of a filter pipeline, as lm-eval's `filter_list` spells it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterStep {
    /// `regex`, `take_first`, `lowercase`, `uppercase` or `remove_whitespace`.
    pub function: String,
    #[serde(default)]
    pub regex_pattern: Option<String>,
    #[serde(default)]
    pub group_select: Option<i64>,
    #[serde(default)]
    pub fallback: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterPipeline {
    pub name: String,
    pub filter: Vec<FilterStep>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub task: String,
    /// `csv`, `json` or `parquet` — the loader, as lm-eval names Hugging Face's.
    pub dataset_path: String,
    #[serde(default)]
    pub dataset_kwargs: DatasetKwargs,
    #[serde(default)]
    pub test_split: Option<String>,
    #[serde(default)]
    pub validation_split: Option<String>,
    #[serde(default)]
    pub training_split: Option<String>,
    #[serde(default)]
    pub fewshot_split: Option<String>,
    pub output_type: OutputType,
    #[serde(default)]
    pub doc_to_text: Option<Value>,
    pub doc_to_target: Value,
    #[serde(default)]
    pub doc_to_choice: Option<Value>,
    #[serde(default)]
    pub description: String,
    #[serde(default = "space")]
    pub target_delimiter: String,
    #[serde(default = "blank_line")]
    pub fewshot_delimiter: String,
    #[serde(default)]
    pub num_fewshot: usize,
    #[serde(default)]
    pub fewshot_config: FewshotConfig,
    #[serde(default)]
    pub generation_kwargs: Option<GenerationKwargs>,
    #[serde(default)]
    pub filter_list: Vec<FilterPipeline>,
    #[serde(default)]
    pub metric_list: Vec<MetricSpec>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub tag: Option<Value>,
    /// FlagEval's taxonomy: the capability this task measures (e.g. `chinese_semantics`).
    #[serde(default)]
    pub capability: Option<String>,
    /// FlagEval's task type (e.g. `semantic_relation`).
    #[serde(default)]
    pub task_type: Option<String>,
    /// FlagEval's metric category; derived from the output type when absent.
    #[serde(default)]
    pub metric_category: Option<String>,
    /// CircularEval (OpenCompass): the document fields that hold the options, in order.
    /// With `--circular`, every rotation of their contents is scored and an item counts for
    /// `acc_circular` only when all rotations are right.
    #[serde(default)]
    pub circular_fields: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetKwargs {
    /// One file, or split name → file; relative paths are against the YAML's folder,
    /// `asset:NAME/…` inside a cached asset.
    #[serde(default)]
    pub data_files: Option<Value>,
    /// The key of a JSON object holding the documents (`examples` in BIG-bench's task.json).
    #[serde(default)]
    pub field: Option<String>,
    /// The text loader's unit: `line` (default), `paragraph` or `document`.
    #[serde(default)]
    pub sample_by: Option<String>,
}

fn space() -> String {
    " ".into()
}
fn blank_line() -> String {
    "\n\n".into()
}

impl TaskConfig {
    /// The split evaluated: test, else validation, else train (lm-eval's order).
    pub fn eval_split(&self) -> Option<&str> {
        self.test_split
            .as_deref()
            .or(self.validation_split.as_deref())
            .or(self.training_split.as_deref())
    }

    /// The version lm-eval reports (`metadata.version`).
    pub fn version(&self) -> Value {
        self.metadata.get("version").cloned().unwrap_or(Value::Null)
    }

    /// The metrics to report: the listed ones, or lm-eval's defaults for the output type.
    pub fn metrics(&self) -> Vec<MetricSpec> {
        if !self.metric_list.is_empty() {
            return self.metric_list.clone();
        }
        let names: &[&str] = match self.output_type {
            OutputType::MultipleChoice => &["acc", "acc_norm"],
            OutputType::Loglikelihood => &["perplexity", "acc"],
            OutputType::LoglikelihoodRolling => {
                &["word_perplexity", "byte_perplexity", "bits_per_byte"]
            }
            OutputType::GenerateUntil => &["exact_match"],
        };
        names.iter().map(|m| MetricSpec::named(m)).collect()
    }

    pub fn metric_category(&self) -> String {
        self.metric_category.clone().unwrap_or_else(|| {
            match self.output_type {
                OutputType::MultipleChoice | OutputType::Loglikelihood => "accuracy",
                OutputType::LoglikelihoodRolling => "perplexity",
                OutputType::GenerateUntil => "generation",
            }
            .into()
        })
    }

    /// Stop strings of a generation task (lm-eval: the few-shot delimiter by default).
    pub fn until(&self) -> Vec<String> {
        match self
            .generation_kwargs
            .as_ref()
            .and_then(|g| g.until.as_ref())
        {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect(),
            _ => vec![self.fewshot_delimiter.clone()],
        }
    }
}

/// A group YAML: tasks reported together, with lm-eval's `aggregate_metric_list`
/// (`weight_by_size: true` is a micro average over documents, false a macro average over
/// tasks).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub group: String,
    pub task: Vec<String>,
    #[serde(default)]
    pub aggregate_metric_list: Vec<GroupMetric>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub capability: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMetric {
    pub metric: String,
    #[serde(default = "mean")]
    pub aggregation: String,
    #[serde(default = "yes")]
    pub weight_by_size: bool,
    #[serde(default = "none")]
    pub filter_list: String,
}

fn mean() -> String {
    "mean".into()
}
fn yes() -> bool {
    true
}
fn none() -> String {
    "none".into()
}
