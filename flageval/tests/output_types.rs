//! lm-eval's four output types end to end with the dummy model (generation with filters,
//! rolling log-likelihoods, single-continuation log-likelihoods, multiple choice with
//! CircularEval), groups with micro and macro averages, the seeded random few-shot sampler,
//! Parquet and JSON-field data, and lm-eval's own aggregations on fixed inputs.

use flageval::evaluate::{group_metrics, run_task, Options, TaskResult};
use flageval::metrics;
use flageval::model::Dummy;
use flageval::task::{discover_groups, Task};
use serde_json::Value;
use std::path::Path;

fn task(dir: &Path, name: &str, yaml: &str) -> Task {
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, yaml).unwrap();
    Task::load(&p).unwrap()
}

fn opts() -> Options {
    Options {
        bootstrap_iters: 1000,
        ..Default::default()
    }
}

fn metric(r: &TaskResult, name: &str, filter: &str) -> (f64, f64) {
    let m = r
        .metrics
        .iter()
        .find(|m| m.name == name && m.filter == filter)
        .unwrap_or_else(|| panic!("{name},{filter} in {:?}", r.metrics));
    (m.value, m.stderr)
}

#[test]
fn generation_runs_through_filters_into_exact_match() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 0..40 {
        lines.push_str(&format!(
            "{{\"q\": \"Question {i}\", \"a\": \"{}\"}}\n",
            i % 4
        ));
    }
    std::fs::write(dir.path().join("gen.jsonl"), lines).unwrap();
    let t = task(
        dir.path(),
        "gen",
        r#"task: gen
dataset_path: json
dataset_kwargs: {data_files: {test: gen.jsonl}}
test_split: test
output_type: generate_until
doc_to_text: "{{q}}\nA:"
doc_to_target: a
generation_kwargs: {until: ["\n\n"], max_gen_toks: 16}
filter_list:
  - name: strict
    filter:
      - {function: regex, regex_pattern: "answer (\\d)"}
      - {function: take_first}
  - name: raw
    filter: [{function: take_first}]
metric_list:
  - {metric: exact_match, ignore_case: true}
  - {metric: f1}
"#,
    );
    let r = run_task(&t, &mut Dummy::default(), &opts()).unwrap();
    let mut hits = 0.0;
    for s in &r.samples {
        let raw = s["resps"][0].as_str().unwrap();
        // The dummy answers " answer N\n\nmore": the stop string cuts it, the regex picks N.
        assert!(
            raw.starts_with(" answer ") && !raw.contains("more"),
            "{raw}"
        );
        let picked = s["filtered_resps"]["strict"].as_str().unwrap();
        assert_eq!(picked, raw.trim().trim_start_matches("answer "));
        assert_eq!(s["filtered_resps"]["raw"], raw);
        hits += f64::from(u8::from(picked == s["target"].as_str().unwrap()));
    }
    assert_eq!(metric(&r, "exact_match", "strict").0, hits / 40.0);
    assert_eq!(
        metric(&r, "exact_match", "raw").0,
        0.0,
        "unfiltered text never equals"
    );
    assert!(
        r.metrics.iter().all(|m| m.filter != "none"),
        "only the listed pipelines"
    );
    assert!(metric(&r, "f1", "strict").0 >= metric(&r, "exact_match", "strict").0);
}

#[test]
fn rolling_loglikelihoods_give_lm_evals_perplexities() {
    let dir = tempfile::tempdir().unwrap();
    // Parquet data, written with arrow as `datasets` would read it.
    let texts = ["The quick brown fox.", "光阴似箭，日月如梭。", "A  b\tc\n"];
    let batch = arrow::record_batch::RecordBatch::try_from_iter([(
        "text",
        std::sync::Arc::new(arrow::array::StringArray::from(texts.to_vec())) as _,
    )])
    .unwrap();
    let file = std::fs::File::create(dir.path().join("wiki.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let t = task(
        dir.path(),
        "wiki",
        r#"task: wiki
dataset_path: parquet
dataset_kwargs: {data_files: wiki.parquet}
test_split: test
output_type: loglikelihood_rolling
doc_to_target: text
"#,
    );
    let r = run_task(&t, &mut Dummy::default(), &opts()).unwrap();
    let lls: Vec<f64> = r
        .samples
        .iter()
        .map(|s| s["resps"][0].as_f64().unwrap())
        .collect();
    let bytes: f64 = texts.iter().map(|t| t.len() as f64).sum();
    let words: f64 = texts.iter().map(|t| metrics::word_count(t) as f64).sum();
    let total: f64 = lls.iter().sum();
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} vs {b}");
    close(
        metric(&r, "bits_per_byte", "none").0,
        -total / bytes / std::f64::consts::LN_2,
    );
    close(
        metric(&r, "byte_perplexity", "none").0,
        (-total / bytes).exp(),
    );
    close(
        metric(&r, "word_perplexity", "none").0,
        (-total / words).exp(),
    );
    assert!(
        metric(&r, "bits_per_byte", "none").1.is_finite(),
        "bootstrap stderr"
    );
    assert!(!r.metrics[0].higher_is_better);
}

#[test]
fn groups_average_micro_and_macro() {
    let dir = tempfile::tempdir().unwrap();
    let csv = |n: usize| {
        let mut s = String::from("question,a,b,answer\n");
        for i in 0..n {
            s.push_str(&format!("Q{i}?,yes,no,{}\n", i % 2));
        }
        s
    };
    std::fs::write(dir.path().join("small.csv"), csv(10)).unwrap();
    std::fs::write(dir.path().join("big.csv"), csv(90)).unwrap();
    let yaml = |name: &str, file: &str| {
        format!(
            "task: {name}\ndataset_path: csv\ndataset_kwargs: {{data_files: {file}}}\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: \"{{{{question}}}}\"\ndoc_to_choice: ['yes', 'no']\ndoc_to_target: answer\n"
        )
    };
    let small = task(dir.path(), "small", &yaml("small", "small.csv"));
    let big = task(dir.path(), "big", &yaml("big", "big.csv"));
    std::fs::write(
        dir.path().join("both.yaml"),
        "group: both\ntask: [small, big]\naggregate_metric_list:\n  - {metric: acc, weight_by_size: true}\n  - {metric: acc_norm, weight_by_size: false}\n",
    )
    .unwrap();
    let groups = discover_groups(dir.path()).unwrap();
    assert_eq!(groups.len(), 1);
    let rs = small.config.task.clone();
    let a = run_task(&small, &mut Dummy::default(), &opts()).unwrap();
    let b = run_task(&big, &mut Dummy::default(), &opts()).unwrap();
    assert_eq!(a.task, rs);
    let g = group_metrics(&groups[0], &[&a, &b]);
    let (acc_a, acc_b) = (metric(&a, "acc", "none").0, metric(&b, "acc", "none").0);
    assert!((g[0].value - (acc_a * 10.0 + acc_b * 90.0) / 100.0).abs() < 1e-12);
    let (n_a, n_b) = (
        metric(&a, "acc_norm", "none").0,
        metric(&b, "acc_norm", "none").0,
    );
    assert!((g[1].value - (n_a + n_b) / 2.0).abs() < 1e-12);
    let se = metrics::pooled_stderr(
        &[metric(&a, "acc", "none").1, metric(&b, "acc", "none").1],
        &[10, 90],
    );
    assert_eq!(g[0].stderr, se);
}

#[test]
fn random_fewshot_is_seeded_per_document_and_never_the_document_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::from("question,a,b,answer\n");
    for i in 0..30 {
        s.push_str(&format!("Q{i}?,yes,no,{}\n", i % 2));
    }
    std::fs::write(dir.path().join("d.csv"), s).unwrap();
    let yaml = "task: fs\ndataset_path: csv\ndataset_kwargs: {data_files: d.csv}\ntest_split: test\nfewshot_split: test\nnum_fewshot: 3\nfewshot_config: {sampler: random}\noutput_type: multiple_choice\ndoc_to_text: \"{{question}}\"\ndoc_to_choice: ['yes', 'no']\ndoc_to_target: answer\n";
    let t = task(dir.path(), "fs", yaml);
    let again = task(dir.path(), "fs", yaml);
    let mut distinct = std::collections::HashSet::new();
    for row in 0..30 {
        let ctx = t.context(row).unwrap();
        assert_eq!(ctx, again.context(row).unwrap(), "seeded");
        let shots: Vec<&str> = ctx.split("\n\n").collect();
        assert_eq!(shots.len(), 4, "{ctx}");
        assert!(
            !shots[..3]
                .iter()
                .any(|s| s.starts_with(&format!("Q{row}?"))),
            "{ctx}"
        );
        distinct.insert(shots[..3].join("|"));
    }
    assert!(distinct.len() > 20, "examples differ between documents");
    let mut other = task(dir.path(), "fs", yaml);
    other.set_seed(7);
    assert_ne!(other.hash, t.hash, "the seed is part of the task");
    assert!((0..30).any(|r| other.context(r).unwrap() != t.context(r).unwrap()));
}

#[test]
fn circular_eval_rotates_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::from("q,o1,o2,o3,ans\n");
    for i in 0..60 {
        s.push_str(&format!(
            "Q{i}?,red{i},green{i},blue{i},{}\n",
            ["A", "B", "C"][i % 3]
        ));
    }
    std::fs::write(dir.path().join("c.csv"), s).unwrap();
    let t = task(
        dir.path(),
        "circ",
        "task: circ\ndataset_path: csv\ndataset_kwargs: {data_files: c.csv}\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: \"{{q}}\\nA. {{o1}}\\nB. {{o2}}\\nC. {{o3}}\\nAnswer:\"\ndoc_to_choice: ['A', 'B', 'C']\ndoc_to_target: ans\ncircular_fields: [o1, o2, o3]\n",
    );
    let it = t.circular_item(1, 1).unwrap();
    // Row 1's answer is B (green1); shifted by one, green1 shows as option A.
    assert!(
        it.context.contains("A. green1\nB. blue1\nC. red1"),
        "{}",
        it.context
    );
    assert_eq!(it.gold, 0);
    let on = Options {
        circular: true,
        ..opts()
    };
    let mut model = Dummy::default();
    let r = run_task(&t, &mut model, &on).unwrap();
    assert_eq!(model.calls, 60 * 3 * 3, "three rotations of three options");
    let (acc, circ) = (
        metric(&r, "acc", "none").0,
        metric(&r, "acc_circular", "none").0,
    );
    assert!(circ <= acc && circ < acc, "{circ} vs {acc}");
    let plain = run_task(&t, &mut Dummy::default(), &opts()).unwrap();
    assert_eq!(metric(&plain, "acc", "none").0, acc);
    assert!(plain.metrics.iter().all(|m| m.name != "acc_circular"));
}

#[test]
fn aggregations_match_lm_evals_own_functions() {
    let (Ok(lmeval), Ok(pycheck)) = (
        std::env::var("FLAGOPEN_LMEVAL"),
        std::env::var("FLAGOPEN_PYCHECK"),
    ) else {
        eprintln!(
            "skipped: FLAGOPEN_LMEVAL / FLAGOPEN_PYCHECK not set (cargo xtask test sets them)"
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lmeval_metrics.py");
    let out = flagcore::python::run_ok(
        flagcore::python::test_script(script).env("PYTHONPATH", format!("{lmeval}:{pycheck}")),
    );
    let want: Value = serde_json::from_str(&out).unwrap();
    let scores: Vec<(f64, f64)> = [1., 0., 1., 1., 0., 1., 1.]
        .iter()
        .map(|&x| (x, 1.0))
        .collect();
    let lls = [-12.5, -30.25, -7.0, -19.75];
    let words = [3.0, 9.0, 2.0, 6.0];
    let weighted: Vec<(f64, f64)> = lls.iter().copied().zip(words).collect();
    let plain: Vec<(f64, f64)> = lls.iter().map(|&l| (l, 1.0)).collect();
    let close = |a: f64, key: &str| {
        let b = want[key].as_f64().unwrap();
        assert!(
            (a - b).abs() <= 1e-12 * b.abs().max(1.0),
            "{key}: {a} vs {b}"
        );
    };
    close(metrics::aggregate("mean", &scores).unwrap(), "mean");
    close(metrics::stderr("mean", &scores, 0, 0), "mean_stderr");
    close(
        metrics::aggregate("perplexity", &plain).unwrap(),
        "perplexity",
    );
    close(
        metrics::aggregate("weighted_perplexity", &weighted).unwrap(),
        "weighted_perplexity",
    );
    close(
        metrics::aggregate("bits_per_byte", &weighted).unwrap(),
        "bits_per_byte",
    );
    close(
        metrics::pooled_stderr(&[0.05, 0.02, 0.1], &[70, 300, 12]),
        "pooled_stderr",
    );
    let counts: Vec<usize> = ["  leading and trailing  ", "one", "多 个\t词\n"]
        .iter()
        .map(|t| metrics::word_count(t))
        .collect();
    assert_eq!(serde_json::json!(counts), want["word_counts"]);
    let tokens: Vec<i64> = (0..23).collect();
    let windows = flageval::model::rolling_windows(&tokens, -1, 8);
    assert_eq!(serde_json::json!(windows), want["windows"]);
}

#[test]
fn binary_f1_and_mcc_follow_their_formulas() {
    // (gold, pred): tp 2, fp 1, fn 1, tn 1 → F1 = 2·2/(2·2+1+1) = 2/3;
    // MCC = (2·1 − 1·1)/√(3·3·2·2) = 1/6.
    let items = [(1.0, 1.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.0, 0.0)];
    assert!((metrics::aggregate("f1", &items).unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert!((metrics::aggregate("matthews_corrcoef", &items).unwrap() - 1.0 / 6.0).abs() < 1e-12);
    // A bootstrap standard error is seeded: the same seed, the same number.
    let a = metrics::stderr("f1", &items, 500, 1);
    assert_eq!(a, metrics::stderr("f1", &items, 500, 1));
    assert!(a > 0.0 && a < 1.0);
    assert_eq!(metrics::token_f1("The cat sat", "a cat sat down"), 0.8);
}
