//! bge's results files land on flageval's leaderboard: a board of their own (`embedding`)
//! with only their task columns, the main metric (nDCG@10, Spearman) as the cell, and the
//! capability averages; language-model columns do not leak into it.

use bge::results::{document, TaskResult};

#[test]
fn results_show_on_the_flageval_leaderboard() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("my-embedder");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    let tasks = [
        TaskResult {
            task: "disfl_qa_retrieval".into(),
            capability: "retrieval".into(),
            main_metric: "ndcg_at_10".into(),
            scores: vec![("ndcg_at_10".into(), 0.81), ("recall_at_10".into(), 0.94)],
            hash: "abc".into(),
        },
        TaskResult {
            task: "pairs_sts".into(),
            capability: "sts".into(),
            main_metric: "spearman".into(),
            scores: vec![("spearman".into(), 0.6), ("pearson".into(), 0.5)],
            hash: "def".into(),
        },
    ];
    let doc = document(
        &model,
        &tasks,
        "2026-11-26T00:00:00Z",
        serde_json::json!({}),
    )
    .unwrap();
    let dir = tmp.path().join("runs/emb");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("results.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
    // A language-model results file beside it, on the base board.
    let llm = serde_json::json!({
        "results": {"csem_llsrc": {"acc,none": 0.3}},
        "taxonomy": {"csem_llsrc": {"main_metric": "acc,none", "capability": "language"}},
        "config": {"model": "some-llm", "board": "base"},
    });
    let dir2 = tmp.path().join("runs/llm");
    std::fs::create_dir_all(&dir2).unwrap();
    std::fs::write(dir2.join("results.json"), serde_json::to_vec(&llm).unwrap()).unwrap();

    let board = flageval::leaderboard::build(&[tmp.path().join("runs")], Some(tmp.path())).unwrap();
    let e = board
        .entries
        .iter()
        .find(|e| e.model == "my-embedder")
        .unwrap();
    assert_eq!(e.board, "embedding");
    assert_eq!(e.tasks["disfl_qa_retrieval"].value, 0.81);
    assert_eq!(e.tasks["disfl_qa_retrieval"].metric, "ndcg_at_10,none");
    assert_eq!(e.tasks["pairs_sts"].value, 0.6);
    assert!((e.capabilities["retrieval"] - 0.81).abs() < 1e-12);
    assert!((e.average.unwrap() - 0.705).abs() < 1e-12);
    let page = flageval::leaderboard::render(&board, "FlagOpen");
    let section = &page[page
        .find("<h2>embedding models</h2>")
        .expect("an embedding board")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains("disfl_qa_retrieval") && section.contains("pairs_sts"));
    assert!(
        !section.contains("csem_llsrc"),
        "LLM columns leak into the embedding board"
    );
    assert!(page.contains("<h2>base models</h2>"));
}
