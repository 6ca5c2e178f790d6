//! Mixing tokenized sources by weight to a token budget, with hash splits.

use flagdata::indexed::{IndexedDataset, IndexedWriter, TokenDType};
use flagdata::mix::{mix, MixSource};
use std::path::Path;

fn dataset(prefix: &Path, docs: usize, len: usize, base: u32) {
    let mut w = IndexedWriter::create(prefix, TokenDType::U16).unwrap();
    for d in 0..docs {
        let toks: Vec<u32> = (0..len)
            .map(|t| base + ((d * 31 + t) % 1000) as u32)
            .collect();
        w.add_document(&toks).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn blends_to_the_budget_by_weight_and_splits_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    dataset(&dir.path().join("zh"), 500, 20, 0); // 10,000 tokens
    dataset(&dir.path().join("en"), 100, 10, 2000); // 1,000 tokens: needs upsampling
    let sources = vec![
        MixSource {
            name: "zh".into(),
            prefix: dir.path().join("zh"),
            weight: 0.6,
        },
        MixSource {
            name: "en".into(),
            prefix: dir.path().join("en"),
            weight: 0.4,
        },
    ];
    let out = dir.path().join("mix");
    let report = mix(&sources, 5000, 7, Some("90,5,5".parse().unwrap()), &out).unwrap();
    assert_eq!(report.sources[0].tokens, 3000);
    assert_eq!(report.sources[1].tokens, 2000);
    assert!((report.sources[1].epochs - 2.0).abs() < 1e-9);
    let total: u64 = report.split_tokens.iter().sum();
    assert_eq!(total, 5000);
    let train = IndexedDataset::open(&dir.path().join("mix_train")).unwrap();
    assert_eq!(train.total_tokens(), report.split_tokens[0]);
    assert!(
        report.split_documents[0] > 8 * (report.split_documents[1] + report.split_documents[2])
    );
    // The mix interleaves sources rather than concatenating them.
    let first: Vec<bool> = (0..20).map(|i| train.get(i).unwrap()[0] >= 2000).collect();
    assert!(
        first.iter().any(|&e| e) && first.iter().any(|&e| !e),
        "{first:?}"
    );

    // Same inputs and seed: byte-identical outputs.
    let again = dir.path().join("again");
    mix(&sources, 5000, 7, Some("90,5,5".parse().unwrap()), &again).unwrap();
    for s in ["train", "valid", "test"] {
        for ext in ["bin", "idx"] {
            let a = std::fs::read(dir.path().join(format!("mix_{s}.{ext}"))).unwrap();
            let b = std::fs::read(dir.path().join(format!("again_{s}.{ext}"))).unwrap();
            assert_eq!(a, b, "{s}.{ext}");
        }
    }
}

#[test]
fn mismatched_vocabularies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    dataset(&dir.path().join("a"), 5, 5, 0);
    let mut w = IndexedWriter::create(&dir.path().join("b"), TokenDType::I32).unwrap();
    w.add_document(&[1, 2, 3]).unwrap();
    w.finish().unwrap();
    let sources = vec![
        MixSource {
            name: "a".into(),
            prefix: dir.path().join("a"),
            weight: 1.0,
        },
        MixSource {
            name: "b".into(),
            prefix: dir.path().join("b"),
            weight: 1.0,
        },
    ];
    let err = mix(&sources, 10, 1, None, &dir.path().join("m"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("one vocabulary"), "{err}");
}
