//! Runs tasks against a model and writes lm-eval's results layout: `results` (per task,
//! `metric,filter` keys with `_stderr` beside each), `configs`, `versions`, `n-shot`,
//! `n-samples`, and a `task_hashes` entry (results compare only when hashes match), plus one
//! JSON line per document.

use crate::metrics;
use crate::model::{Model, Request};
use crate::task::{OutputType, Task};
use crate::{Error, Result};
use serde_json::{json, Map, Value};

/// One task's outcome.
#[derive(Debug)]
pub struct TaskResult {
    pub task: String,
    /// Metric name → (value, standard error).
    pub metrics: Vec<(String, f64, f64)>,
    /// Per-document records (context, choices, log-likelihoods, gold, metrics).
    pub samples: Vec<Value>,
    pub n_docs: usize,
}

/// Scores the first `limit` documents of `task` (all without a limit).
pub fn run_task(task: &Task, model: &mut dyn Model, limit: Option<usize>) -> Result<TaskResult> {
    let n = limit.unwrap_or(usize::MAX).min(task.docs.len());
    let items = (0..n).map(|i| task.item(i)).collect::<Result<Vec<_>>>()?;
    let delim = &task.config.target_delimiter;
    let requests: Vec<Request> = items
        .iter()
        .flat_map(|it| {
            it.choices.iter().map(move |c| Request {
                context: it.context.clone(),
                continuation: format!("{delim}{c}"),
            })
        })
        .collect();
    let answers = model.loglikelihood(&requests)?;
    if answers.len() != requests.len() {
        return Err(Error::Task {
            task: task.config.task.clone(),
            message: format!(
                "the model answered {} of {} requests",
                answers.len(),
                requests.len()
            ),
        });
    }
    let wanted = task.config.metrics();
    let mut per_metric: Vec<Vec<f64>> = vec![Vec::new(); wanted.len()];
    let mut samples = Vec::with_capacity(items.len());
    let mut next = 0;
    for it in &items {
        let got = &answers[next..next + it.choices.len()];
        next += it.choices.len();
        let lls: Vec<f64> = got.iter().map(|a| a.0).collect();
        let values: Vec<(&str, f64)> = match task.config.output_type {
            OutputType::MultipleChoice => {
                metrics::multiple_choice(&lls, &it.choices, it.gold).to_vec()
            }
            OutputType::Loglikelihood => vec![("acc", if got[0].1 { 1.0 } else { 0.0 })],
        };
        let mut record = Map::new();
        for (slot, spec) in per_metric.iter_mut().zip(&wanted) {
            let v = values
                .iter()
                .find(|(m, _)| *m == spec.metric)
                .map(|(_, v)| *v)
                .ok_or_else(|| Error::Task {
                    task: task.config.task.clone(),
                    message: format!(
                        "metric `{}` is not computed for this output type",
                        spec.metric
                    ),
                })?;
            slot.push(v);
            record.insert(spec.metric.clone(), json!(v));
        }
        samples.push(json!({
            "doc_id": it.doc_id,
            "target": it.gold,
            "arguments": it.choices.iter().map(|c| json!([it.context, format!("{delim}{c}")])).collect::<Vec<_>>(),
            "resps": got.iter().map(|(l, g)| json!([l, g])).collect::<Vec<_>>(),
            "metrics": record,
        }));
    }
    Ok(TaskResult {
        task: task.config.task.clone(),
        metrics: wanted
            .iter()
            .zip(&per_metric)
            .map(|(spec, v)| {
                (
                    spec.metric.clone(),
                    metrics::mean(v),
                    metrics::mean_stderr(v),
                )
            })
            .collect(),
        samples,
        n_docs: task.docs.len(),
    })
}

/// lm-eval's results JSON for tasks run against `model_name`.
pub fn results_json(
    tasks: &[&Task],
    results: &[TaskResult],
    model_name: &str,
    limit: Option<usize>,
) -> Value {
    let mut res = Map::new();
    let mut configs = Map::new();
    let mut versions = Map::new();
    let mut nshot = Map::new();
    let mut nsamples = Map::new();
    let mut hashes = Map::new();
    let mut taxonomy = Map::new();
    for (t, r) in tasks.iter().zip(results) {
        let mut m = Map::new();
        m.insert("alias".into(), json!(r.task));
        for (name, v, se) in &r.metrics {
            m.insert(format!("{name},none"), json!(v));
            m.insert(format!("{name}_stderr,none"), json!(se));
        }
        res.insert(r.task.clone(), Value::Object(m));
        configs.insert(
            r.task.clone(),
            serde_json::to_value(&t.config).unwrap_or(Value::Null),
        );
        versions.insert(r.task.clone(), t.config.version());
        nshot.insert(r.task.clone(), json!(t.config.num_fewshot));
        nsamples.insert(
            r.task.clone(),
            json!({"original": r.n_docs, "effective": r.samples.len()}),
        );
        hashes.insert(r.task.clone(), json!(t.hash));
        taxonomy.insert(
            r.task.clone(),
            json!({"capability": t.config.capability, "task_type": t.config.task_type}),
        );
    }
    json!({
        "results": res,
        "configs": configs,
        "versions": versions,
        "n-shot": nshot,
        "n-samples": nsamples,
        "config": {"model": model_name, "limit": limit},
        "task_hashes": hashes,
        "taxonomy": taxonomy,
    })
}
