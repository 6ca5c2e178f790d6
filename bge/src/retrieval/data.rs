//! Retrieval sets in FlagEmbedding's layout — `corpus.jsonl` {id, title, text},
//! `queries.jsonl` {id, text}, `qrels.jsonl` {qid, docid, relevance} — and BIG-bench's
//! `disfl_qa` turned into one: corpus = its unique paragraphs, queries = its questions, each
//! relevant to the paragraph it was asked about.

use super::metrics::Qrels;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// (id, text); a title, when present, precedes the text (FlagEmbedding joins them).
    pub corpus: Vec<(String, String)>,
    pub queries: Vec<(String, String)>,
    pub qrels: HashMap<String, Qrels>,
}

fn lines(path: &Path) -> Result<Vec<(usize, Value)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map(|v| (i + 1, v))
                .map_err(|e| Error::File {
                    path: path.to_path_buf(),
                    message: format!("line {}: {e}", i + 1),
                })
        })
        .collect()
}

fn field(path: &Path, line: usize, v: &Value, name: &str) -> Result<String> {
    match &v[name] {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Error::File {
            path: path.to_path_buf(),
            message: format!("line {line}: no `{name}`"),
        }),
    }
}

impl Dataset {
    /// Reads FlagEmbedding's three files from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut d = Dataset {
            corpus: Self::load_corpus(&dir.join("corpus.jsonl"), true)?,
            ..Default::default()
        };
        let p = dir.join("queries.jsonl");
        for (n, v) in lines(&p)? {
            d.queries
                .push((field(&p, n, &v, "id")?, field(&p, n, &v, "text")?));
        }
        let p = dir.join("qrels.jsonl");
        for (n, v) in lines(&p)? {
            // Absent means relevant (a qrels line states a judgement); otherwise a number.
            let rel = match &v["relevance"] {
                Value::Null => 1,
                r => r
                    .as_f64()
                    .filter(|x| x.is_finite() && x.fract() == 0.0)
                    .ok_or_else(|| Error::File {
                        path: p.clone(),
                        message: format!("line {n}: `relevance` must be an integer"),
                    })? as i64,
            };
            d.qrels
                .entry(field(&p, n, &v, "qid")?)
                .or_default()
                .insert(field(&p, n, &v, "docid")?, rel);
        }
        Ok(d)
    }

    /// (id, text) of a corpus file: JSON lines with `text`, an optional `title` (joined before
    /// the text) and an `id`, which only `need_id` requires (a line number stands in).
    pub fn load_corpus(p: &Path, need_id: bool) -> Result<Vec<(String, String)>> {
        lines(p)?
            .into_iter()
            .map(|(n, v)| {
                let title = v["title"].as_str().unwrap_or("").trim().to_string();
                let text = field(p, n, &v, "text")?;
                let full = if title.is_empty() {
                    text
                } else {
                    format!("{title} {text}")
                };
                let id = match field(p, n, &v, "id") {
                    Err(e) if need_id => return Err(e),
                    Err(_) => n.to_string(),
                    Ok(id) => id,
                };
                Ok((id, full))
            })
            .collect()
    }

    /// Writes the three files into `dir` (created).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            error: e,
        })?;
        let write = |name: &str, rows: Vec<Value>| {
            let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
            flagcore::fsutil::write_atomic(&dir.join(name), text.as_bytes()).map_err(|e| {
                Error::File {
                    path: dir.join(name),
                    message: e.to_string(),
                }
            })
        };
        write(
            "corpus.jsonl",
            self.corpus
                .iter()
                .map(|(id, t)| json!({"id": id, "title": "", "text": t}))
                .collect(),
        )?;
        write(
            "queries.jsonl",
            self.queries
                .iter()
                .map(|(id, t)| json!({"id": id, "text": t}))
                .collect(),
        )?;
        let mut qrels: Vec<Value> = Vec::new();
        for (q, _) in &self.queries {
            for (d, r) in self.qrels.get(q).into_iter().flatten() {
                qrels.push(json!({"qid": q, "docid": d, "relevance": r}));
            }
        }
        write("qrels.jsonl", qrels)
    }

    /// sha256 of the set's content (documents, queries and judgements, in a fixed order):
    /// two evaluations compare only when their sets hash alike.
    pub fn hash(&self) -> String {
        let mut text = String::new();
        for (id, t) in &self.corpus {
            text.push_str(&format!("d\t{id}\t{t}\n"));
        }
        for (id, t) in &self.queries {
            text.push_str(&format!("q\t{id}\t{t}\n"));
            let mut judged: Vec<(&String, &i64)> =
                self.qrels.get(id).into_iter().flatten().collect();
            judged.sort();
            for (d, r) in judged {
                text.push_str(&format!("r\t{id}\t{d}\t{r}\n"));
            }
        }
        flagcore::fsutil::sha256_bytes(text.as_bytes())
    }

    /// Keeps the first `n` queries (and their judgements).
    pub fn limit_queries(&mut self, n: usize) {
        self.queries.truncate(n);
        let kept: std::collections::HashSet<String> =
            self.queries.iter().map(|(q, _)| q.clone()).collect();
        self.qrels.retain(|q, _| kept.contains(q));
    }

    /// The first `n` documents and the queries whose relevant documents are all among them.
    pub fn subset(&self, n: usize) -> Dataset {
        let corpus: Vec<(String, String)> = self.corpus.iter().take(n).cloned().collect();
        let kept: std::collections::HashSet<&String> = corpus.iter().map(|(id, _)| id).collect();
        let queries: Vec<(String, String)> = self
            .queries
            .iter()
            .filter(|(q, _)| {
                self.qrels
                    .get(q)
                    .is_some_and(|r| !r.is_empty() && r.keys().all(|d| kept.contains(d)))
            })
            .cloned()
            .collect();
        self.with(corpus, queries)
    }

    /// A set of `corpus` and `queries` with this set's judgements of those queries.
    fn with(&self, corpus: Vec<(String, String)>, queries: Vec<(String, String)>) -> Dataset {
        let qrels = queries
            .iter()
            .filter_map(|(q, _)| Some((q.clone(), self.qrels.get(q)?.clone())))
            .collect();
        Dataset {
            corpus,
            queries,
            qrels,
        }
    }

    /// Splits by document: every `every`-th document (the last of each run of `every`) is
    /// held out with the queries judged on it. Returns (train: the other documents and the
    /// queries whose relevant documents are all among them; held-out: every document, so
    /// retrieval stays as hard, and the held-out queries).
    pub fn split(&self, every: usize) -> (Dataset, Dataset) {
        let every = every.max(2);
        let held: std::collections::HashSet<&String> = self
            .corpus
            .iter()
            .enumerate()
            .filter(|(i, _)| i % every == every - 1)
            .map(|(_, (id, _))| id)
            .collect();
        let pick = |want_held: bool| -> Vec<(String, String)> {
            self.queries
                .iter()
                .filter(|(q, _)| {
                    self.qrels.get(q).is_some_and(|r| {
                        let relevant: Vec<&String> =
                            r.iter().filter(|(_, &v)| v > 0).map(|(d, _)| d).collect();
                        !relevant.is_empty()
                            && relevant.iter().all(|d| held.contains(d) == want_held)
                    })
                })
                .cloned()
                .collect()
        };
        let train_docs = self
            .corpus
            .iter()
            .filter(|(id, _)| !held.contains(id))
            .cloned()
            .collect();
        (
            self.with(train_docs, pick(false)),
            self.with(self.corpus.clone(), pick(true)),
        )
    }

    /// Fine-tuning examples: each query with its relevant documents as positives.
    pub fn examples(&self) -> Vec<crate::finetune::data::Example> {
        let text: HashMap<&String, &String> = self.corpus.iter().map(|(i, t)| (i, t)).collect();
        self.queries
            .iter()
            .filter_map(|(q, query)| {
                let mut pos: Vec<(&String, &String)> = self
                    .qrels
                    .get(q)?
                    .iter()
                    .filter(|(_, &r)| r > 0)
                    .filter_map(|(d, _)| Some((d, *text.get(d)?)))
                    .collect();
                pos.sort();
                (!pos.is_empty()).then(|| crate::finetune::data::Example {
                    query: query.clone(),
                    pos: pos.into_iter().map(|(_, t)| t.clone()).collect(),
                    neg: Vec::new(),
                })
            })
            .collect()
    }

    /// BIG-bench `disfl_qa` (`task.json`): inputs are "question \ncontext: paragraph".
    pub fn from_disfl_qa(task_json: &Path) -> Result<Self> {
        let v: Value = crate::error::read_json(task_json)?;
        let examples = v["examples"].as_array().ok_or_else(|| Error::File {
            path: task_json.to_path_buf(),
            message: "no `examples` list".into(),
        })?;
        let mut d = Dataset::default();
        let mut para_id: HashMap<String, String> = HashMap::new();
        for (i, e) in examples.iter().enumerate() {
            let input = e["input"].as_str().unwrap_or("");
            let Some((q, p)) = input.split_once("\ncontext: ") else {
                return Err(Error::File {
                    path: task_json.to_path_buf(),
                    message: format!("example {i}: no `\\ncontext: ` in its input"),
                });
            };
            let p = p.trim().to_string();
            let next = format!("p{}", para_id.len());
            let pid = para_id.entry(p.clone()).or_insert_with(|| {
                d.corpus.push((next.clone(), p));
                next
            });
            let qid = format!("q{i}");
            d.qrels
                .entry(qid.clone())
                .or_default()
                .insert(pid.clone(), 1);
            d.queries.push((qid, q.trim().to_string()));
        }
        Ok(d)
    }
}
