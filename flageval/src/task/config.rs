//! A task's YAML in lm-eval-harness's layout (the keys this crate implements; any other key is
//! an error naming it), plus FlagEval's taxonomy fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    MultipleChoice,
    Loglikelihood,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub metric: String,
    #[serde(default = "mean")]
    pub aggregation: String,
    #[serde(default = "yes")]
    pub higher_is_better: bool,
}

fn mean() -> String {
    "mean".into()
}
fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewshotConfig {
    /// `first_n` takes the first documents of the few-shot split.
    #[serde(default)]
    pub sampler: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub task: String,
    /// `csv`, `json` (a list, or JSON lines) — the loader, as lm-eval names Hugging Face's.
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
    pub doc_to_text: Value,
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
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetKwargs {
    /// One file, or split name → file; relative paths are against the YAML's folder.
    #[serde(default)]
    pub data_files: Option<Value>,
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

    /// The metrics to report: the listed ones, or `acc` and `acc_norm` for multiple choice.
    pub fn metrics(&self) -> Vec<MetricSpec> {
        if !self.metric_list.is_empty() {
            return self.metric_list.clone();
        }
        let names: &[&str] = match self.output_type {
            OutputType::MultipleChoice => &["acc", "acc_norm"],
            OutputType::Loglikelihood => &["acc"],
        };
        names
            .iter()
            .map(|m| MetricSpec {
                metric: m.to_string(),
                aggregation: mean(),
                higher_is_better: true,
            })
            .collect()
    }
}
