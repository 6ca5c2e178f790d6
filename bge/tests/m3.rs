//! bge-m3's dense, sparse and ColBERT outputs and scores on a random-weight XLM-R with random
//! heads equal what transformers and FlagEmbedding's formulas give (scripts/m3_reference.py)
//! within 1e-5. Runs where `cargo xtask test` set FLAGOPEN_PYCHECK.

use bge::m3::{colbert_score, dense_score, hybrid_score, sparse_score, M3};

mod common;

#[test]
fn m3_outputs_match_flagembeddings_formulas() {
    let Some((tmp, r, bert)) = common::random_model("m3_reference.py") else {
        return;
    };
    let dir = tmp.path().join("model");
    let m3 = M3::load(&dir, vec![0, 1, 2, 3], tch::Kind::Float, tch::Device::Cpu).unwrap();
    let ids = tch::Tensor::from_slice(&common::int_rows(&r["ids"])).view([2, 8]);
    let mask = tch::Tensor::from_slice(&common::int_rows(&r["mask"])).view([2, 8]);
    let out = m3.forward(&bert, &ids, &mask).unwrap();
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-5, "{what}: {a} vs {b}");
    for (o, want) in out.iter().zip(r["outputs"].as_array().unwrap()) {
        for (a, b) in o.dense.iter().zip(want["dense"].as_array().unwrap()) {
            close(*a as f64, b.as_f64().unwrap(), "dense");
        }
        let lex = want["sparse"].as_object().unwrap();
        assert_eq!(o.sparse.len(), lex.len(), "{:?} vs {lex:?}", o.sparse);
        for (id, w) in lex {
            close(
                o.sparse[&id.parse::<u32>().unwrap()] as f64,
                w.as_f64().unwrap(),
                "sparse",
            );
        }
        let cols = want["colbert"].as_array().unwrap();
        assert_eq!(o.colbert.len(), cols.len());
        for (v, w) in o.colbert.iter().zip(cols) {
            for (a, b) in v.iter().zip(w.as_array().unwrap()) {
                close(*a as f64, b.as_f64().unwrap(), "colbert");
            }
        }
    }
    let s = &r["scores"];
    let (q, p) = (&out[0], &out[1]);
    close(
        dense_score(&q.dense, &p.dense) as f64,
        s["dense"].as_f64().unwrap(),
        "dense score",
    );
    close(
        sparse_score(&q.sparse, &p.sparse) as f64,
        s["sparse"].as_f64().unwrap(),
        "sparse score",
    );
    close(
        colbert_score(&q.colbert, &p.colbert) as f64,
        s["colbert"].as_f64().unwrap(),
        "colbert score",
    );
    close(
        hybrid_score(q, p, [0.4, 0.2, 0.4]) as f64,
        s["hybrid"].as_f64().unwrap(),
        "hybrid",
    );
}
