//! Training on CPU: the loss falls on a learnable corpus, and a run of N steps equals N/2
//! steps + checkpoint + resume + N/2 steps, loss for loss.

use flagdata::indexed::{IndexedWriter, TokenDType};
use flagscale::model::LlamaConfig;
use flagscale::train::{init_model, LrSchedule, Precision, TrainConfig, Trainer};
use std::path::Path;

/// Documents counting upwards modulo 64 from varied starts: each token predicts the next.
fn corpus(prefix: &Path, docs: usize, base: u32) {
    let mut w = IndexedWriter::create(prefix, TokenDType::U16).unwrap();
    for d in 0..docs {
        let start = (d * 13 % 64) as u32;
        let toks: Vec<u32> = (0..40 + d % 17)
            .map(|i| base + (start + i as u32) % 64)
            .collect();
        w.add_document(&toks).unwrap();
    }
    w.finish().unwrap();
}

fn setup(dir: &Path, steps: usize) -> (LlamaConfig, TrainConfig) {
    // Bitwise repeatability needs a fixed reduction order: libtorch runs an op serially when
    // another thread of this test process is inside its pool, so both tests use one thread.
    tch::set_num_threads(1);
    // (Initial weights come from the seed alone, not libtorch's shared generator.)
    corpus(&dir.join("a"), 60, 0);
    corpus(&dir.join("b"), 30, 0);
    let model: LlamaConfig = serde_json::from_value(serde_json::json!({
        "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 64, "max_position_embeddings": 64
    }))
    .unwrap();
    let train = TrainConfig {
        seq_len: 32,
        micro_batch: 4,
        grad_accum: 2,
        schedule: LrSchedule {
            lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 3,
            total_steps: steps,
        },
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
        clip_grad: 1.0,
        seed: 11,
        data: vec![(dir.join("a"), 0.7), (dir.join("b"), 0.3)],
        keep_last: 2,
        precision: Precision::Fp32,
        split: [0.9, 0.1, 0.0],
    };
    (model, train)
}

#[test]
fn loss_falls_on_a_learnable_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let (mc, tc) = setup(dir.path(), 40);
    let mut t = Trainer::new(init_model(mc, 5, tch::Device::Cpu).unwrap(), tc).unwrap();
    let before = t.validate(4).unwrap().expect("a validation split");
    let losses: Vec<f64> = (0..40).map(|_| t.train_step().unwrap().loss).collect();
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[35..].iter().sum::<f64>() / 5.0;
    eprintln!("loss {first:.3} -> {last:.3}");
    assert!(first > 3.5, "starts near ln(64) = 4.16: {first}");
    assert!(last < 0.5 * first, "{first} -> {last}");
    // Held-out documents (never trained on) follow the same rule, so their loss falls too.
    let after = t.validate(4).unwrap().unwrap();
    eprintln!("validation {before:?} -> {after:?}");
    assert!(before.batches >= 2 && after.batches == before.batches);
    assert!((after.perplexity - after.loss.exp()).abs() < 1e-9);
    assert!(after.loss < 0.5 * before.loss, "{before:?} -> {after:?}");
}

#[test]
fn bf16_mixed_precision_tracks_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let (mc, mut tc) = setup(dir.path(), 20);
    let mut fp32 = Trainer::new(
        init_model(mc.clone(), 5, tch::Device::Cpu).unwrap(),
        tc.clone(),
    )
    .unwrap();
    tc.precision = Precision::Bf16;
    let mut bf16 = Trainer::new(init_model(mc, 5, tch::Device::Cpu).unwrap(), tc).unwrap();
    let a: Vec<f64> = (0..20).map(|_| fp32.train_step().unwrap().loss).collect();
    let b: Vec<f64> = (0..20).map(|_| bf16.train_step().unwrap().loss).collect();
    eprintln!("fp32 {a:?}\nbf16 {b:?}");
    // bf16 keeps 8 bits of mantissa: the first loss agrees to about 1%, and training follows.
    assert!((a[0] - b[0]).abs() < 0.02 * a[0], "{} vs {}", a[0], b[0]);
    assert!(a[0] != b[0], "the bf16 path must actually round");
    assert!(b[19] < 0.7 * b[0], "{b:?}");
    assert!(
        (a[19] - b[19]).abs() < 0.15 * a[19],
        "{} vs {}",
        a[19],
        b[19]
    );
    // Weights stay f32 (the master copy) and checkpoints say so.
    let ck = bf16.save_checkpoint(&dir.path().join("ck")).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["torch_dtype"], "float32");
}

#[test]
fn resume_continues_the_exact_loss_curve() {
    let dir = tempfile::tempdir().unwrap();
    let (mc, tc) = setup(dir.path(), 8);
    let mut whole = Trainer::new(
        init_model(mc.clone(), 5, tch::Device::Cpu).unwrap(),
        tc.clone(),
    )
    .unwrap();
    let straight: Vec<f64> = (0..8).map(|_| whole.train_step().unwrap().loss).collect();

    let mut first = Trainer::new(init_model(mc, 5, tch::Device::Cpu).unwrap(), tc).unwrap();
    let mut resumed: Vec<f64> = (0..4).map(|_| first.train_step().unwrap().loss).collect();
    let ckpts = dir.path().join("ckpt");
    first.save_checkpoint(&ckpts).unwrap();
    drop(first);
    let mut second = Trainer::resume(&ckpts, tch::Device::Cpu).unwrap();
    assert_eq!((second.step, second.consumed_samples), (4, 32));
    resumed.extend((0..4).map(|_| second.train_step().unwrap().loss));
    assert_eq!(straight, resumed);

    // Only the last `keep_last` checkpoints stay; a half-written one is never picked.
    second.save_checkpoint(&ckpts).unwrap();
    std::fs::create_dir_all(ckpts.join(".partial-step-00000099")).unwrap();
    std::fs::create_dir_all(ckpts.join("step-00000099")).unwrap();
    let third = Trainer::resume(&ckpts, tch::Device::Cpu).unwrap();
    assert_eq!(third.step, 8);
}
