//! XLM-RoBERTa (bge-m3's and BGE rerankers' architecture): a random-weight model saved by
//! `transformers` (scripts/xlmr_reference.py) gives our encoder the same last hidden states
//! on a padded batch within 1e-5 — RoBERTa's position ids from the padding index included —
//! through libtorch and through the CPU plan (fused passes; products by libtorch or packed).
//! Runs where `cargo xtask test` set FLAGOPEN_PYCHECK (transformers and torch).

mod common;

#[test]
fn random_xlm_roberta_matches_transformers() {
    let Some((_tmp, r, bert)) = common::random_model("xlmr_reference.py") else {
        return;
    };
    let (ids, mask) = (common::int_rows(&r["ids"]), common::int_rows(&r["mask"]));
    let ids_t = tch::Tensor::from_slice(&ids).view([3, 7]);
    let mask_t = tch::Tensor::from_slice(&mask).view([3, 7]);
    let plain = tch::no_grad(|| bert.forward(&ids_t, &mask_t)).unwrap();
    let planned = |pack: bool| {
        let plan = bert
            .cpu_plan(pack)
            .expect("an f32 GELU model on the CPU has a plan");
        tch::no_grad(|| bert.forward_planned(&plan, &ids_t, None, &mask_t)).unwrap()
    };
    for (name, h) in [
        ("libtorch", plain),
        ("planned, libtorch products", planned(false)),
        ("planned, packed products", planned(true)),
    ] {
        let mut worst = 0f64;
        for b in 0..3 {
            for t in 0..7 {
                if mask[b * 7 + t] == 0 {
                    continue;
                }
                let want = r["hidden"][b][t].as_array().unwrap();
                let got = Vec::<f32>::try_from(h.get(b as i64).get(t as i64)).unwrap();
                for (g, w) in got.iter().zip(want) {
                    worst = worst.max((*g as f64 - w.as_f64().unwrap()).abs());
                }
            }
        }
        eprintln!("XLM-R vs transformers ({name}): worst |difference| {worst:.2e}");
        assert!(worst < 1e-5, "{name}: {worst}");
    }
}
