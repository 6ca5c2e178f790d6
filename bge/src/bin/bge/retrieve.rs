//! `bge index`, `bge search`, `bge rerank`: embed a corpus into an on-disk index, query it
//! exactly or through HNSW (with recall against exact), and rescore candidates with a
//! cross-encoder.

use anyhow::Context;
use bge::retrieval::data::Dataset;
use bge::retrieval::index::{recall, Index, Meta};
use bge::retrieval::rows_tensor;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    #[arg(long)]
    model: PathBuf,
    /// corpus.jsonl: {id, text, title?} per line.
    #[arg(long)]
    corpus: PathBuf,
    /// The index folder (must not exist or be empty).
    #[arg(long)]
    output: PathBuf,
    /// Row storage: f32 or f16 (half the size; scores within 2e-3 of f32's in the index test).
    // Not `--dtype`: that global flag is the model's weights.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
    index_dtype: String,
    /// Stored with the index; `bge search` prefixes it to queries.
    #[arg(long, default_value = "")]
    query_instruction: String,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    index: PathBuf,
    /// queries.jsonl: {id, text} per line.
    #[arg(long, conflicts_with = "query")]
    queries: Option<PathBuf>,
    /// One query text.
    #[arg(long)]
    query: Option<String>,
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Search an HNSW graph instead of every row.
    #[arg(long)]
    approx: bool,
    /// HNSW candidate list while building.
    #[arg(long, default_value_t = 100)]
    ef_construction: usize,
    /// HNSW candidate list while searching (at least --top-k).
    #[arg(long, default_value_t = 64)]
    ef_search: usize,
    /// With --approx: also search exactly and print HNSW's recall@k against it.
    #[arg(long, requires = "approx")]
    recall: bool,
    /// JSON lines {id, hits: [{id, score}]}; stdout when absent.
    #[arg(long)]
    output: Option<PathBuf>,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

#[derive(clap::Args, Debug)]
pub struct RerankArgs {
    /// A cross-encoder folder (transformers sequence classification).
    #[arg(long)]
    model: PathBuf,
    /// JSON lines {query, passages: [...]} (other fields kept).
    #[arg(long)]
    input: PathBuf,
    /// The same lines with `scores` added and passages best first.
    #[arg(long)]
    output: PathBuf,
    /// Map logits to (0, 1).
    #[arg(long)]
    sigmoid: bool,
    #[arg(long, default_value_t = 512)]
    max_length: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

pub fn index(a: IndexArgs) -> anyhow::Result<()> {
    let corpus = Dataset::load_corpus(&a.corpus, true)?;
    anyhow::ensure!(
        !corpus.is_empty(),
        "--corpus {}: no documents",
        a.corpus.display()
    );
    let enc = super::load(&a.model, a.batch_size)?;
    anyhow::ensure!(
        enc.head.normalize,
        "--model {}: its embeddings are not normalised, so inner products are not cosines",
        a.model.display()
    );
    let start = std::time::Instant::now();
    let texts: Vec<&str> = corpus.iter().map(|(_, t)| t.as_str()).collect();
    let rows = rows_tensor(&encode_with_bar(&enc, &texts)?);
    let ids: Vec<String> = corpus.into_iter().map(|(i, _)| i).collect();
    let meta = Meta {
        model: a.model.display().to_string(),
        dim: rows.size()[1] as usize,
        count: ids.len(),
        dtype: a.index_dtype,
        query_instruction: a.query_instruction,
    };
    Index::write(&a.output, &ids, &rows, meta)?;
    eprintln!(
        "{}: {} documents indexed ({:.1} s)",
        a.output.display(),
        ids.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Embeds in slices of a few batches so a progress bar can follow.
pub fn encode_with_bar(enc: &bge::Encoder, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
    let bar = flagcore::telemetry::progress_bar(texts.len() as u64, "texts");
    let mut out = Vec::with_capacity(texts.len());
    for part in texts.chunks(enc.batch_size.max(1) * 8) {
        out.extend(enc.encode(part)?);
        bar.inc(part.len() as u64);
    }
    bar.finish();
    Ok(out)
}

pub fn search(a: SearchArgs) -> anyhow::Result<()> {
    let idx = Index::open(&a.index)?;
    let queries: Vec<(String, String)> = match (&a.queries, &a.query) {
        (Some(p), None) => {
            Dataset::load_corpus(p, true).with_context(|| format!("--queries {}", p.display()))?
        }
        (None, Some(q)) => vec![("query".into(), q.clone())],
        _ => anyhow::bail!("give --queries FILE or --query TEXT"),
    };
    let enc = super::load(&a.model, a.batch_size)?;
    let texts: Vec<&str> = queries.iter().map(|(_, t)| t.as_str()).collect();
    let q = rows_tensor(&enc.encode_queries(&texts, &idx.meta.query_instruction)?);
    anyhow::ensure!(
        q.size()[1] as usize == idx.meta.dim,
        "--model gives {}-dim embeddings, the index holds {}",
        q.size()[1],
        idx.meta.dim
    );
    let k = a.top_k.max(1);
    let start = std::time::Instant::now();
    let hits = if a.approx {
        let hnsw = idx.hnsw(a.ef_construction, a.ef_search.max(k), 42)?;
        let built = start.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let flat = Vec::<f32>::try_from(q.flatten(0, -1))?;
        let approx: Vec<_> = flat
            .chunks(idx.meta.dim)
            .map(|r| hnsw.search(r, k))
            .collect();
        let searched = t.elapsed().as_secs_f64();
        if a.recall {
            let t = std::time::Instant::now();
            let exact = idx.search(&q, k, 65536)?;
            eprintln!(
                "HNSW recall@{k} against exact: {:.4} ({} queries, {} rows; build {built:.2} s, \
                 HNSW search {searched:.3} s, exact search {:.3} s)",
                recall(&approx, &exact, k),
                queries.len(),
                idx.len(),
                t.elapsed().as_secs_f64()
            );
        }
        approx
    } else {
        idx.search(&q, k, 65536)?
    };
    let mut text = String::new();
    for ((qid, _), h) in queries.iter().zip(hits) {
        let hits: Vec<_> = h
            .into_iter()
            .map(|(i, s)| serde_json::json!({"id": idx.ids[i], "score": s}))
            .collect();
        text.push_str(&serde_json::to_string(
            &serde_json::json!({"id": qid, "hits": hits}),
        )?);
        text.push('\n');
    }
    match &a.output {
        Some(p) => flagcore::fsutil::write_atomic(p, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(())
}

pub fn rerank(a: RerankArgs) -> anyhow::Result<()> {
    let raw = std::fs::read_to_string(&a.input)
        .with_context(|| format!("reading --input {}", a.input.display()))?;
    let mut rows: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (n, line) in raw
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let where_ = || format!("--input {} line {}", a.input.display(), n + 1);
        let row: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).with_context(where_)?;
        let query = row
            .get("query")
            .and_then(|v| v.as_str())
            .with_context(|| format!("{}: no `query` string", where_()))?;
        let passages = row
            .get("passages")
            .and_then(|v| v.as_array())
            .with_context(|| format!("{}: no `passages` list", where_()))?;
        for p in passages {
            let p = p
                .as_str()
                .with_context(|| format!("{}: passages must be strings", where_()))?;
            pairs.push((query.to_string(), p.to_string()));
        }
        rows.push(row);
    }
    let (kind, device) = super::placement();
    let mut rr = bge::rerank::Reranker::load(&a.model, a.max_length, kind, device)
        .with_context(|| format!("loading --model {}", a.model.display()))?;
    rr.batch_size = a.batch_size.max(1);
    let scores = rr.score(&pairs, a.sigmoid)?;
    let mut at = 0;
    let mut text = String::new();
    for mut row in rows {
        let passages: Vec<serde_json::Value> =
            row["passages"].as_array().cloned().unwrap_or_default();
        let mut scored: Vec<(serde_json::Value, f32)> = passages
            .into_iter()
            .zip(scores[at..].iter().copied())
            .collect();
        at += scored.len();
        scored.sort_by(|x, y| y.1.total_cmp(&x.1));
        row.insert(
            "passages".into(),
            scored.iter().map(|s| s.0.clone()).collect(),
        );
        row.insert(
            "scores".into(),
            scored.iter().map(|s| serde_json::json!(s.1)).collect(),
        );
        text.push_str(&serde_json::to_string(&row)?);
        text.push('\n');
    }
    flagcore::fsutil::write_atomic(&a.output, text.as_bytes())?;
    eprintln!("{}: {} pairs scored", a.output.display(), pairs.len());
    Ok(())
}
