//! Fine-tuning MiniLM for a few steps lowers the contrastive loss on its training pairs, and
//! the saved folder loads in sentence-transformers, which then embeds exactly as we do
//! (cosine ≥ 0.99999) — and differently from the original model. Mining never returns a
//! positive. Runs where the pinned MiniLM asset is cached (the sentence-transformers check
//! where `cargo xtask test` set FLAGOPEN_ST and FLAGOPEN_PYCHECK).

use bge::finetune::{self, data::Example, mine, TrainOptions};

mod common;

fn examples() -> Vec<Example> {
    let facts = [
        (
            "Which river flows through Cairo?",
            "The Nile flows north through Cairo into the Mediterranean Sea.",
        ),
        (
            "What do bees make?",
            "Honey bees produce honey from the nectar of flowers.",
        ),
        (
            "Who wrote Hamlet?",
            "Hamlet is a tragedy written by William Shakespeare around 1600.",
        ),
        (
            "What is the boiling point of water?",
            "At sea level water boils at 100 degrees Celsius.",
        ),
        (
            "How many legs does a spider have?",
            "Spiders are arachnids with eight legs.",
        ),
        (
            "What is the capital of Japan?",
            "Tokyo is the capital and largest city of Japan.",
        ),
        (
            "Which planet is the largest?",
            "Jupiter is the largest planet of the Solar System.",
        ),
        (
            "What language is spoken in Brazil?",
            "Portuguese is the official language of Brazil.",
        ),
    ];
    // Each question is paired with the next fact's passage: a mapping the model does not
    // know yet, so the loss starts high and only training lowers it.
    (0..facts.len())
        .map(|i| Example {
            query: facts[i].0.to_string(),
            pos: vec![facts[(i + 1) % facts.len()].1.to_string()],
            neg: Vec::new(),
        })
        .collect()
}

/// The InfoNCE loss of every example against all positives, without dropout.
fn loss(enc: &bge::Encoder, ex: &[Example]) -> f64 {
    let q: Vec<&str> = ex.iter().map(|e| e.query.as_str()).collect();
    let p: Vec<&str> = ex.iter().map(|e| e.pos[0].as_str()).collect();
    let t = |v: Vec<Vec<f32>>| tch::Tensor::from_slice(&v.concat()).view([v.len() as i64, -1]);
    let (q, p) = (t(enc.encode(&q).unwrap()), t(enc.encode(&p).unwrap()));
    finetune::info_nce(&q, &p, 1, 0.05).double_value(&[])
}

#[test]
fn finetune_lowers_loss_and_saves_a_sentence_transformers_folder() {
    let Some(model) = common::minilm() else {
        return;
    };
    let mut enc = bge::Encoder::load(&model, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let mut ex = examples();
    // Mining over the positives of all examples: every negative is another example's
    // positive, never the example's own.
    let opts = mine::MineOptions {
        range: (0, 8),
        negatives: 3,
        ..Default::default()
    };
    mine::mine(&enc, &mut ex, None, &opts).unwrap();
    for e in &ex {
        assert_eq!(e.neg.len(), 3);
        assert!(!e.neg.contains(&e.pos[0]), "{e:?}");
    }
    // Training keeps f32 weights: a bf16 model is refused, not silently trained in bf16.
    let mut half = bge::Encoder::load(&model, tch::Kind::BFloat16, tch::Device::Cpu).unwrap();
    let e = finetune::train(&mut half, &ex, &TrainOptions::default(), |_| {}).unwrap_err();
    assert!(e.to_string().contains("f32"), "{e}");
    let before = loss(&enc, &ex);
    let train = TrainOptions {
        learning_rate: 1e-4,
        epochs: 3,
        batch_size: 4,
        group_size: 4,
        warmup_ratio: 0.0,
        ..Default::default()
    };
    tch::manual_seed(0);
    let losses = finetune::train(&mut enc, &ex, &train, |_| {}).unwrap();
    assert_eq!(losses.len(), 6);
    let after = loss(&enc, &ex);
    assert!(after < before, "loss {before} → {after}");

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tuned");
    finetune::save(&enc, &model, &out).unwrap();
    assert!(
        finetune::save(&enc, &model, &out).is_err(),
        "refuses a non-empty folder"
    );
    let reloaded = bge::Encoder::load(&out, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let texts = ["Which river flows through Cairo?", "北京是中国的首都。"];
    let ours = reloaded.encode(&texts).unwrap();
    assert_eq!(ours, enc.encode(&texts).unwrap());
    let original = bge::Encoder::load(&model, tch::Kind::Float, tch::Device::Cpu).unwrap();
    assert_ne!(ours, original.encode(&texts).unwrap());

    let (Ok(st), Ok(pycheck)) = (
        std::env::var("FLAGOPEN_ST"),
        std::env::var("FLAGOPEN_PYCHECK"),
    ) else {
        eprintln!(
            "skipped the sentence-transformers check: FLAGOPEN_ST / FLAGOPEN_PYCHECK not set"
        );
        return;
    };
    let input = tmp.path().join("sentences.json");
    std::fs::write(&input, serde_json::to_vec(&texts).unwrap()).unwrap();
    let json = tmp.path().join("st.json");
    common::run_script(
        "st_reference.py",
        &[out.as_os_str(), input.as_os_str(), json.as_os_str()],
        &format!("{st}:{pycheck}"),
        tmp.path(),
    );
    let want: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(ours.len(), want["embeddings"].as_array().unwrap().len());
    for (a, b) in ours.iter().zip(want["embeddings"].as_array().unwrap()) {
        let cos = common::cosine(a, &common::floats(b));
        assert!(cos >= 0.99999, "cosine {cos}");
    }
}
