//! Runs tasks against a model and writes lm-eval's results layout: `results` (per task and
//! group, `metric,filter` keys with `_stderr` beside each), `configs`, `versions`, `n-shot`,
//! `n-samples`, `higher_is_better`, plus `task_hashes` (results compare only when hashes
//! match) and FlagEval's taxonomy with per-capability scores; and one JSON line per document.

use crate::filter::Pipeline;
use crate::metrics::{self, ItemValue};
use crate::model::{GenRequest, Model, Request};
use crate::task::{GroupConfig, Item, OutputType, Task};
use crate::{Error, Result};
use serde_json::{json, Map, Value};

#[derive(Clone, Debug)]
pub struct Options {
    /// Score only the first N documents.
    pub limit: Option<usize>,
    /// Resamples for bootstrap standard errors (lm-eval's default 100000; 0 skips them).
    pub bootstrap_iters: usize,
    /// CircularEval for tasks that name their option fields.
    pub circular: bool,
    /// Seeds the `random` few-shot sampler, sampled generation and the bootstrap.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limit: None,
            bootstrap_iters: 100_000,
            circular: false,
            seed: 1234,
        }
    }
}

/// One reported number.
#[derive(Clone, Debug)]
pub struct Metric {
    pub name: String,
    /// The filter pipeline (`none` without one).
    pub filter: String,
    pub value: f64,
    pub stderr: f64,
    pub higher_is_better: bool,
}

/// One task's outcome.
#[derive(Debug)]
pub struct TaskResult {
    pub task: String,
    pub metrics: Vec<Metric>,
    /// Per-document records (requests, answers, metrics).
    pub samples: Vec<Value>,
    pub n_docs: usize,
}

impl TaskResult {
    /// A metric's value under the `none` filter, or the first filter that has it.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name && m.filter == "none")
            .or_else(|| self.metrics.iter().find(|m| m.name == name))
            .map(|m| m.value)
    }
}

fn task_error(task: &Task, message: String) -> Error {
    Error::Task {
        task: task.config.task.clone(),
        message,
    }
}

fn check_len<T>(task: &Task, got: &[T], want: usize) -> Result<()> {
    if got.len() != want {
        return Err(task_error(
            task,
            format!("the model answered {} of {want} requests", got.len()),
        ));
    }
    Ok(())
}

/// Per-item values of every (metric, filter) the task reports, and the sample records.
struct Scored {
    values: Vec<(String, String, Vec<ItemValue>)>,
    samples: Vec<Value>,
}

impl Scored {
    fn new() -> Self {
        Scored {
            values: Vec::new(),
            samples: Vec::new(),
        }
    }

    fn push(&mut self, metric: &str, filter: &str, v: ItemValue) {
        match self
            .values
            .iter_mut()
            .find(|(m, f, _)| m == metric && f == filter)
        {
            Some((_, _, list)) => list.push(v),
            None => self.values.push((metric.into(), filter.into(), vec![v])),
        }
    }
}

/// Scores the documents of `task` (the first `limit` of them).
pub fn run_task(task: &Task, model: &mut dyn Model, opts: &Options) -> Result<TaskResult> {
    let n = opts.limit.unwrap_or(usize::MAX).min(task.docs.len());
    let items = (0..n).map(|i| task.item(i)).collect::<Result<Vec<_>>>()?;
    let wanted = task.config.metrics();
    let scored = match task.config.output_type {
        OutputType::MultipleChoice => multiple_choice(task, model, &items, opts)?,
        OutputType::Loglikelihood => loglikelihood(task, model, &items)?,
        OutputType::LoglikelihoodRolling => rolling(task, model, &items)?,
        OutputType::GenerateUntil => generate(task, model, &items, &wanted, opts)?,
    };
    let mut out = Vec::new();
    for spec in &wanted {
        let found: Vec<_> = scored
            .values
            .iter()
            .filter(|(m, _, _)| *m == spec.metric)
            .collect();
        if found.is_empty() {
            return Err(task_error(
                task,
                format!(
                    "metric `{}` is not computed for output type {:?}",
                    spec.metric, task.config.output_type
                ),
            ));
        }
        for (m, f, values) in found {
            let agg = spec.aggregation();
            let value = metrics::aggregate(agg, values)
                .ok_or_else(|| task_error(task, format!("unknown aggregation `{agg}`")))?;
            out.push(Metric {
                name: m.clone(),
                filter: f.clone(),
                value,
                stderr: metrics::stderr(agg, values, opts.bootstrap_iters, opts.seed),
                higher_is_better: spec.higher_is_better(),
            });
        }
    }
    // CircularEval's accuracy is reported beside the task's own metrics.
    if let Some((_, _, v)) = scored.values.iter().find(|(m, _, _)| m == "acc_circular") {
        out.push(Metric {
            name: "acc_circular".into(),
            filter: "none".into(),
            value: metrics::mean(&v.iter().map(|x| x.0).collect::<Vec<_>>()),
            stderr: metrics::stderr("mean", v, 0, 0),
            higher_is_better: true,
        });
    }
    Ok(TaskResult {
        task: task.config.task.clone(),
        metrics: out,
        samples: scored.samples,
        n_docs: task.docs.len(),
    })
}

fn choice_requests(task: &Task, it: &Item) -> Vec<Request> {
    let delim = &task.config.target_delimiter;
    it.choices
        .iter()
        .map(|c| Request {
            context: it.context.clone(),
            continuation: format!("{delim}{c}"),
        })
        .collect()
}

fn multiple_choice(
    task: &Task,
    model: &mut dyn Model,
    items: &[Item],
    opts: &Options,
) -> Result<Scored> {
    let circular = opts.circular && task.circular();
    // Rotations 1..n of every item, when CircularEval is on (rotation 0 is the item itself).
    let mut rotated: Vec<Vec<Item>> = Vec::new();
    if circular {
        for it in items {
            let n = it.choices.len();
            rotated.push(
                (1..n)
                    .map(|s| task.circular_item(it.doc_id, s))
                    .collect::<Result<_>>()?,
            );
        }
    }
    let requests: Vec<Request> = items
        .iter()
        .chain(rotated.iter().flatten())
        .flat_map(|it| choice_requests(task, it))
        .collect();
    let answers = model.loglikelihood(&requests)?;
    check_len(task, &answers, requests.len())?;
    let mut next = 0;
    let mut take = |k: usize| {
        let a = &answers[next..next + k];
        next += k;
        a
    };
    let mut s = Scored::new();
    let mut per_item = Vec::new();
    for it in items {
        let got = take(it.choices.len());
        let lls: Vec<f64> = got.iter().map(|a| a.0).collect();
        let mc = metrics::multiple_choice(&lls, &it.choices, it.gold);
        let pred = metrics::argmax(lls.iter().copied());
        let mut record = Map::new();
        for (name, v) in mc {
            s.push(name, "none", (v, 1.0));
            record.insert(name.into(), json!(v));
        }
        // Binary F1 and MCC (scikit-learn's, as lm-eval calls them) need two options.
        if it.choices.len() == 2 {
            for name in ["f1", "mcc"] {
                s.push(name, "none", (it.gold as f64, pred as f64));
            }
        }
        per_item.push((record, got.to_vec(), pred == it.gold));
    }
    for (i, rot) in rotated.iter().enumerate() {
        let mut all = per_item[i].2;
        for r in rot {
            let lls: Vec<f64> = take(r.choices.len()).iter().map(|a| a.0).collect();
            all &= metrics::argmax(lls.into_iter()) == r.gold;
        }
        per_item[i]
            .0
            .insert("acc_circular".into(), json!(f64::from(u8::from(all))));
        s.push("acc_circular", "none", (f64::from(u8::from(all)), 1.0));
    }
    for (it, (record, got, _)) in items.iter().zip(per_item) {
        s.samples.push(json!({
            "doc_id": it.doc_id,
            "target": it.gold,
            "arguments": choice_requests(task, it).iter().map(|r| json!([r.context, r.continuation])).collect::<Vec<_>>(),
            "resps": got.iter().map(|(l, g)| json!([l, g])).collect::<Vec<_>>(),
            "metrics": record,
        }));
    }
    Ok(s)
}

fn loglikelihood(task: &Task, model: &mut dyn Model, items: &[Item]) -> Result<Scored> {
    let delim = &task.config.target_delimiter;
    let requests: Vec<Request> = items
        .iter()
        .map(|it| Request {
            context: it.context.clone(),
            continuation: format!("{delim}{}", it.target),
        })
        .collect();
    let answers = model.loglikelihood(&requests)?;
    check_len(task, &answers, requests.len())?;
    let mut s = Scored::new();
    for ((it, r), (ll, greedy)) in items.iter().zip(&requests).zip(&answers) {
        let acc = f64::from(u8::from(*greedy));
        s.push("acc", "none", (acc, 1.0));
        s.push("perplexity", "none", (*ll, 1.0));
        s.samples.push(json!({
            "doc_id": it.doc_id, "target": it.target,
            "arguments": [[r.context, r.continuation]], "resps": [[ll, greedy]],
            "metrics": {"acc": acc, "perplexity": ll},
        }));
    }
    Ok(s)
}

fn rolling(task: &Task, model: &mut dyn Model, items: &[Item]) -> Result<Scored> {
    let texts: Vec<String> = items.iter().map(|it| it.target.clone()).collect();
    let answers = model.loglikelihood_rolling(&texts)?;
    check_len(task, &answers, texts.len())?;
    let mut s = Scored::new();
    for (it, ll) in items.iter().zip(&answers) {
        let (words, bytes) = (metrics::word_count(&it.target), it.target.len());
        s.push("word_perplexity", "none", (*ll, words as f64));
        s.push("byte_perplexity", "none", (*ll, bytes as f64));
        s.push("bits_per_byte", "none", (*ll, bytes as f64));
        s.samples.push(json!({
            "doc_id": it.doc_id, "resps": [ll], "words": words, "bytes": bytes,
        }));
    }
    Ok(s)
}

fn generate(
    task: &Task,
    model: &mut dyn Model,
    items: &[Item],
    wanted: &[crate::task::config::MetricSpec],
    opts: &Options,
) -> Result<Scored> {
    let kw = task.config.generation_kwargs.clone().unwrap_or_default();
    let requests: Vec<GenRequest> = items
        .iter()
        .map(|it| GenRequest {
            context: it.context.clone(),
            until: task.config.until(),
            max_gen_toks: kw.max_gen_toks,
            temperature: if kw.do_sample { kw.temperature } else { 0.0 },
            seed: opts.seed ^ it.doc_id as u64,
        })
        .collect();
    let answers = model.generate_until(&requests)?;
    check_len(task, &answers, requests.len())?;
    let pipelines = if task.config.filter_list.is_empty() {
        vec![Pipeline::none()]
    } else {
        task.config
            .filter_list
            .iter()
            .map(|f| Pipeline::build(f, &task.config.task))
            .collect::<Result<_>>()?
    };
    let regexes: Vec<Vec<regex::Regex>> = wanted
        .iter()
        .map(|m| {
            m.regexes_to_ignore
                .iter()
                .map(|r| {
                    regex::Regex::new(r).map_err(|e| {
                        task_error(task, format!("metric {}: regexes_to_ignore: {e}", m.metric))
                    })
                })
                .collect()
        })
        .collect::<Result<_>>()?;
    let mut s = Scored::new();
    for (it, text) in items.iter().zip(&answers) {
        let mut filtered = Map::new();
        let mut record = Map::new();
        for p in &pipelines {
            let out = p.apply(text);
            for (spec, res) in wanted.iter().zip(&regexes) {
                let v = match spec.metric.as_str() {
                    "exact_match" => metrics::exact_match(&out, &it.target, spec, res),
                    "f1" => metrics::token_f1(&out, &it.target),
                    _ => continue,
                };
                s.push(&spec.metric, &p.name, (v, 1.0));
                record.insert(format!("{},{}", spec.metric, p.name), json!(v));
            }
            filtered.insert(p.name.clone(), json!(out));
        }
        s.samples.push(json!({
            "doc_id": it.doc_id, "target": it.target,
            "arguments": [[it.context, {"until": task.config.until(), "max_gen_toks": kw.max_gen_toks}]],
            "resps": [text], "filtered_resps": filtered, "metrics": record,
        }));
    }
    Ok(s)
}

/// A group's aggregate of one metric over its tasks' results: a mean weighted by documents
/// (`weight_by_size`, micro) or by task (macro), with lm-eval's pooled standard error.
pub fn group_metrics(group: &GroupConfig, results: &[&TaskResult]) -> Vec<Metric> {
    let mut out = Vec::new();
    for gm in &group.aggregate_metric_list {
        let parts: Vec<(&Metric, usize)> = results
            .iter()
            .filter_map(|r| {
                r.metrics
                    .iter()
                    .find(|m| m.name == gm.metric && m.filter == gm.filter_list)
                    .map(|m| (m, r.samples.len()))
            })
            .collect();
        // lm-eval's groups aggregate by (weighted) mean only.
        if parts.len() != results.len() || parts.is_empty() || gm.aggregation != "mean" {
            continue;
        }
        let weights: Vec<f64> = parts
            .iter()
            .map(|(_, n)| if gm.weight_by_size { *n as f64 } else { 1.0 })
            .collect();
        let value = parts
            .iter()
            .zip(&weights)
            .map(|((m, _), w)| m.value * w)
            .sum::<f64>()
            / weights.iter().sum::<f64>();
        let stderrs: Vec<f64> = parts.iter().map(|(m, _)| m.stderr).collect();
        let sizes: Vec<usize> = parts.iter().map(|(_, n)| *n).collect();
        out.push(Metric {
            name: gm.metric.clone(),
            filter: gm.filter_list.clone(),
            value,
            stderr: metrics::pooled_stderr(&stderrs, &sizes),
            higher_is_better: parts[0].0.higher_is_better,
        });
    }
    out
}

fn metric_map(alias: &str, metrics: &[Metric]) -> Value {
    let mut m = Map::new();
    m.insert("alias".into(), json!(alias));
    for x in metrics {
        m.insert(format!("{},{}", x.name, x.filter), json!(x.value));
        // lm-eval writes "N/A" where no standard error exists.
        let se = if x.stderr.is_finite() {
            json!(x.stderr)
        } else {
            json!("N/A")
        };
        m.insert(format!("{}_stderr,{}", x.name, x.filter), se);
    }
    Value::Object(m)
}

/// lm-eval's results JSON for tasks (and groups) run against `model_name`, with FlagEval's
/// taxonomy: each task's capability, task type and metric category, and per capability the
/// mean of its tasks' first metrics.
pub fn results_json(
    tasks: &[&Task],
    results: &[TaskResult],
    groups: &[(GroupConfig, Vec<Metric>)],
    model_name: &str,
    opts: &Options,
) -> Value {
    let mut res = Map::new();
    let mut configs = Map::new();
    let mut versions = Map::new();
    let mut nshot = Map::new();
    let mut nsamples = Map::new();
    let mut hashes = Map::new();
    let mut taxonomy = Map::new();
    let mut better = Map::new();
    let mut capabilities: Map<String, Value> = Map::new();
    for (t, r) in tasks.iter().zip(results) {
        res.insert(r.task.clone(), metric_map(&r.task, &r.metrics));
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
        let main = r.metrics.first();
        taxonomy.insert(
            r.task.clone(),
            json!({"capability": t.config.capability, "task_type": t.config.task_type,
                   "metric_category": t.config.metric_category(),
                   "main_metric": main.map(|m| format!("{},{}", m.name, m.filter))}),
        );
        better.insert(
            r.task.clone(),
            Value::Object(
                r.metrics
                    .iter()
                    .map(|m| (m.name.clone(), json!(m.higher_is_better)))
                    .collect(),
            ),
        );
        // A capability's score averages scores where higher is better (not perplexities).
        if let (Some(cap), Some(m)) = (&t.config.capability, main.filter(|m| m.higher_is_better)) {
            let entry = capabilities
                .entry(cap.clone())
                .or_insert_with(|| json!({"tasks": [], "scores": []}));
            if let Some(a) = entry["tasks"].as_array_mut() {
                a.push(json!(r.task));
            }
            if let Some(a) = entry["scores"].as_array_mut() {
                a.push(json!(m.value));
            }
        }
    }
    for (_, entry) in capabilities.iter_mut() {
        let scores: Vec<f64> = entry["scores"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        entry["score"] = json!(metrics::mean(&scores));
    }
    let mut group_res = Map::new();
    let mut group_subtasks = Map::new();
    for (g, ms) in groups {
        group_res.insert(g.group.clone(), metric_map(&g.group, ms));
        group_subtasks.insert(g.group.clone(), json!(g.task));
    }
    json!({
        "results": res,
        "groups": group_res,
        "group_subtasks": group_subtasks,
        "configs": configs,
        "versions": versions,
        "n-shot": nshot,
        "n-samples": nsamples,
        "higher_is_better": better,
        "config": {"model": model_name, "limit": opts.limit, "bootstrap_iters": opts.bootstrap_iters,
                   "circular": opts.circular, "seed": opts.seed},
        "task_hashes": hashes,
        "taxonomy": taxonomy,
        "capabilities": capabilities,
    })
}
