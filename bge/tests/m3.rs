//! bge-m3's dense, sparse and ColBERT outputs and scores on a random-weight XLM-R with random
//! heads equal what transformers and FlagEmbedding's formulas give (scripts/m3_reference.py)
//! within 1e-5; the heads saved as FlagEmbedding saves them (`torch.save`d `.pt` state dicts)
//! load to the same outputs, and awkward tensors in such files read back exactly. Runs where
//! `cargo xtask test` set FLAGOPEN_PYCHECK.

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
    let plain = m3.forward(&bert, &ids, &mask).unwrap();
    // The server's path: hidden states through the CPU plan.
    let plan = bert.cpu_plan(true).expect("an f32 GELU model on the CPU");
    let h = tch::no_grad(|| bert.forward_planned(&plan, &ids, None, &mask)).unwrap();
    let planned = m3.outputs(&h, &ids, &mask).unwrap();
    for out in [&planned, &plain] {
        check_outputs(out, &r);
    }
}

/// `out` against the reference's outputs and scores, within 1e-5.
fn check_outputs(out: &[bge::m3::M3Output], r: &serde_json::Value) {
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-5, "{what}: {a} vs {b}");
    assert_eq!(out.len(), r["outputs"].as_array().unwrap().len());
    for (o, want) in out.iter().zip(r["outputs"].as_array().unwrap()) {
        assert_eq!(o.dense.len(), want["dense"].as_array().unwrap().len());
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
            assert_eq!(v.len(), w.as_array().unwrap().len());
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

#[test]
fn torch_saved_heads_and_tensors_read_back() {
    let Some((tmp, _, bert)) = common::random_model("m3_reference.py") else {
        return;
    };
    let (kind, cpu) = (tch::Kind::Float, tch::Device::Cpu);
    let safe = M3::load(&tmp.path().join("model"), vec![0, 1, 2, 3], kind, cpu).unwrap();
    let pt = M3::load(&tmp.path().join("pt"), vec![0, 1, 2, 3], kind, cpu).unwrap();
    let ids = tch::Tensor::from_slice(&[0i64, 17, 250, 17, 9, 2]).view([1, 6]);
    let mask = ids.ones_like();
    let (a, b) = (
        safe.forward(&bert, &ids, &mask).unwrap(),
        pt.forward(&bert, &ids, &mask).unwrap(),
    );
    assert_eq!(a[0].sparse, b[0].sparse);
    assert_eq!(a[0].colbert, b[0].colbert);

    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("awkward.json")).unwrap()).unwrap();
    let got = bge::torch_pickle::load_state_dict(
        &tmp.path().join("pt/awkward.pt"),
        tch::Kind::Double,
        cpu,
    )
    .unwrap();
    assert_eq!(got.len(), 6);
    for (name, w) in want.as_object().unwrap() {
        let t = &got[name];
        let shape: Vec<i64> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        assert_eq!(t.size(), shape, "{name}");
        let values = Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
        let expect = common::floats(&w["values"]);
        assert_eq!(values, expect, "{name}");
    }
}

#[test]
fn pickles_calling_anything_else_are_refused() {
    // A torch.save-shaped archive whose pickle calls os.system: refused, nothing run.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("evil.pt");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", opts).unwrap();
    std::io::Write::write_all(
        &mut zip,
        b"\x80\x02cos\nsystem\nX\x07\x00\x00\x00touch x\x85R.",
    )
    .unwrap();
    zip.finish().unwrap();
    let e = bge::torch_pickle::load_state_dict(&path, tch::Kind::Float, tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("os.system") && e.contains("evil.pt"), "{e}");
    std::fs::write(&path, b"not a zip").unwrap();
    assert!(bge::torch_pickle::load_state_dict(&path, tch::Kind::Float, tch::Device::Cpu).is_err());
}
