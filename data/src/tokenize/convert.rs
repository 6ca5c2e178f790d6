//! GGUF vocabularies to Hugging Face `tokenizer.json`, reproducing llama.cpp's tokenization.
//!
//! BPE vocabularies (`tokenizer.ggml.model = gpt2`) become a byte-level BPE whose
//! pre-tokenizer is llama.cpp's regex list for the file's `tokenizer.ggml.pre` (one `Split`
//! per regex, isolated, then `ByteLevel` without its own regex). SentencePiece vocabularies
//! (`llama`) become a BPE with byte fallback whose merges are rebuilt from the piece scores:
//! llama.cpp merges the adjacent pair whose joined piece scores highest, which is BPE with
//! merges ordered by that score.

use super::deepseek_llm_regex::DEEPSEEK_LLM;
use super::gguf::Metadata;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashMap;

const CONTRACTIONS: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3_TAIL: &str =
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_TAIL: &str =
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35_TAIL: &str = r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const FALCON_PUNCT: &str = r"[\p{P}\$\+<=>\^~\|`]+";
const DEFAULT_PUNCT: &str = r"[\p{P}\$\+<=>\^~\|]+";

/// How a BPE vocabulary splits text before merging.
struct PreTokenizer {
    regexes: Vec<String>,
    normalizer: Value,
    ignore_merges: bool,
    add_bos_default: bool,
}

fn pre_tokenizer(pre: &str) -> Option<PreTokenizer> {
    let p = |regexes: Vec<String>| PreTokenizer {
        regexes,
        normalizer: Value::Null,
        ignore_merges: false,
        add_bos_default: false,
    };
    let gpt2 = || GPT2.to_string();
    Some(match pre {
        "gpt-2" | "mpt" | "olmo" | "phi-2" | "jina-es" | "jina-de" | "jina-v1-en"
        | "jina-v2-es" | "jina-v2-de" | "jina-v2-code" | "roberta-bpe" | "poro-chat" | "viking"
        | "gpt3-finnish" => p(vec![gpt2()]),
        "llama-bpe" | "llama3" | "llama-v3" => PreTokenizer {
            ignore_merges: true,
            add_bos_default: true,
            ..p(vec![format!("{CONTRACTIONS}{LLAMA3_TAIL}")])
        },
        "dbrx" | "smaug-bpe" => p(vec![format!("{CONTRACTIONS}{LLAMA3_TAIL}")]),
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "megrez" => PreTokenizer {
            normalizer: json!({"type": "NFC"}),
            ..p(vec![format!("{CONTRACTIONS}{QWEN2_TAIL}")])
        },
        "qwen35" => p(vec![format!("{CONTRACTIONS}{QWEN35_TAIL}")]),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
            p(vec![r"\p{N}".into(), gpt2()])
        }
        "falcon" => p(vec![FALCON_PUNCT.into(), gpt2(), "[0-9][0-9][0-9]".into()]),
        "deepseek-coder" => p(vec![
            "[\r\n]".into(),
            r"\s?\p{L}+".into(),
            r"\s?\p{P}+".into(),
            "[一-龥ࠀ-一가-\u{D7FF}]+".into(),
            r"\p{N}".into(),
        ]),
        "deepseek-llm" => p(DEEPSEEK_LLM.iter().map(|s| s.to_string()).collect()),
        "default" => p(vec![
            DEFAULT_PUNCT.into(),
            gpt2(),
            r"\p{N}+".into(),
            "[0-9][0-9][0-9]".into(),
        ]),
        // Not a llama.cpp name: Hugging Face's GPT2Tokenizer (what Aquila's original tokenizer is).
        "hf-gpt2" => p(vec![]),
        _ => return None,
    })
}

const KNOWN_PRE: &str = "gpt-2, llama-bpe, qwen2, qwen35, starcoder, refact, command-r, falcon, deepseek-coder, deepseek-llm, mpt, olmo, dbrx, default, hf-gpt2";

fn added_token(id: usize, content: &str, special: bool) -> Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": special})
}

fn template(tokens: &[String], bos: Option<usize>, eos: Option<usize>) -> Value {
    let mut single = Vec::new();
    let mut special = serde_json::Map::new();
    for id in [bos, eos].into_iter().flatten() {
        special.insert(
            tokens[id].clone(),
            json!({"id": tokens[id], "ids": [id], "tokens": [tokens[id]]}),
        );
    }
    if let Some(b) = bos {
        single.push(json!({"SpecialToken": {"id": tokens[b], "type_id": 0}}));
    }
    single.push(json!({"Sequence": {"id": "A", "type_id": 0}}));
    if let Some(e) = eos {
        single.push(json!({"SpecialToken": {"id": tokens[e], "type_id": 0}}));
    }
    let mut pair = single.clone();
    pair.push(json!({"Sequence": {"id": "B", "type_id": 1}}));
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special})
}

fn id_key(meta: &Metadata, key: &str, n: usize) -> Result<Option<usize>> {
    match meta.get(key) {
        None => Ok(None),
        Some(v) => {
            let id = v.as_u64().ok_or_else(|| meta.bad(key, "an integer"))? as usize;
            if id >= n {
                return Err(meta.bad(key, &format!("a token id below {n}")));
            }
            Ok(Some(id))
        }
    }
}

fn token_types(meta: &Metadata, n: usize) -> Result<Vec<i64>> {
    match meta.get("tokenizer.ggml.token_type") {
        None => Ok(vec![1; n]),
        Some(v) => {
            let arr = v
                .as_array()
                .ok_or_else(|| meta.bad("tokenizer.ggml.token_type", "an array"))?;
            if arr.len() != n {
                return Err(meta.bad("tokenizer.ggml.token_type", &format!("{n} entries long")));
            }
            arr.iter()
                .map(|t| {
                    t.as_i64()
                        .ok_or_else(|| meta.bad("tokenizer.ggml.token_type", "integers"))
                })
                .collect()
        }
    }
}

/// The `tokenizer.json` for a GGUF vocabulary; `pre` overrides the file's pre-tokenizer name.
pub fn to_tokenizer_json(meta: &Metadata, pre: Option<&str>) -> Result<Value> {
    if meta.strings("tokenizer.ggml.tokens")?.is_empty() {
        return Err(meta.bad("tokenizer.ggml.tokens", "a non-empty list"));
    }
    let model = meta
        .require("tokenizer.ggml.model")?
        .as_str()
        .ok_or_else(|| meta.bad("tokenizer.ggml.model", "a string"))?;
    match model {
        "gpt2" => bpe(meta, pre),
        "llama" => spm(meta),
        other => Err(Error::format(
            &meta.path,
            "tokenizer.ggml.model",
            format!("`{other}` vocabularies are not supported (gpt2 and llama are)"),
        )),
    }
}

fn bpe(meta: &Metadata, pre_override: Option<&str>) -> Result<Value> {
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let n = tokens.len();
    let merges = meta.strings("tokenizer.ggml.merges")?;
    let types = token_types(meta, n)?;
    let pre_name = match pre_override {
        Some(p) => p.to_string(),
        None => meta
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default")
            .to_string(),
    };
    let pre = pre_tokenizer(&pre_name).ok_or_else(|| {
        Error::format(
            &meta.path,
            "tokenizer.ggml.pre",
            format!("pre-tokenizer `{pre_name}` is not supported (known: {KNOWN_PRE})"),
        )
    })?;
    let mut vocab = serde_json::Map::new();
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), json!(i));
    }
    if vocab.len() != n {
        return Err(meta.bad("tokenizer.ggml.tokens", "free of duplicate tokens"));
    }
    let mut pairs = Vec::with_capacity(merges.len());
    for m in &merges {
        // llama.cpp splits at the first space after the first character.
        let cut = m
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == ' ')
            .map(|(i, _)| i);
        let (l, r) = cut.map(|i| (&m[..i], &m[i + 1..])).ok_or_else(|| {
            meta.bad(
                "tokenizer.ggml.merges",
                &format!("pairs (`{m}` has no space)"),
            )
        })?;
        pairs.push(json!([l, r]));
    }
    let bos = id_key(meta, "tokenizer.ggml.bos_token_id", n)?;
    let eos = id_key(meta, "tokenizer.ggml.eos_token_id", n)?;
    let unk = id_key(meta, "tokenizer.ggml.unknown_token_id", n)?;
    let mut added = Vec::new();
    for (i, (t, &ty)) in tokens.iter().zip(&types).enumerate() {
        let is_pad_filler = t.starts_with("[PAD")
            && t.ends_with(']')
            && t[4..t.len() - 1].bytes().all(|b| b.is_ascii_digit());
        if ty == 3 || [bos, eos, unk].contains(&Some(i)) {
            added.push(added_token(i, t, true));
        } else if ty == 4 && !is_pad_filler {
            added.push(added_token(i, t, false));
        }
    }
    let add_bos = meta
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.as_bool())
        .unwrap_or(pre.add_bos_default);
    let add_eos = meta
        .get("tokenizer.ggml.add_eos_token")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let pre_tokenizer = if pre.regexes.is_empty() {
        byte_level(true)
    } else {
        let mut seq: Vec<Value> = pre
            .regexes
            .iter()
            .map(|r| json!({"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": false}))
            .collect();
        seq.push(byte_level(false));
        json!({"type": "Sequence", "pretokenizers": seq})
    };
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": pre.normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": template(&tokens, bos.filter(|_| add_bos), eos.filter(|_| add_eos)),
        "decoder": byte_level(true),
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": pre.ignore_merges, "vocab": vocab, "merges": pairs,
        },
    }))
}

fn spm(meta: &Metadata) -> Result<Value> {
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let n = tokens.len();
    let types = token_types(meta, n)?;
    let scores: Vec<f64> = meta
        .require("tokenizer.ggml.scores")?
        .as_array()
        .ok_or_else(|| meta.bad("tokenizer.ggml.scores", "an array"))?
        .iter()
        .map(|v| {
            v.as_f64()
                .ok_or_else(|| meta.bad("tokenizer.ggml.scores", "numbers"))
        })
        .collect::<Result<_>>()?;
    if scores.len() != n {
        return Err(meta.bad("tokenizer.ggml.scores", &format!("{n} entries long")));
    }
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let normal = |i: usize| types[i] == 1;
    // Every split of a normal piece into two normal pieces is a merge ranked by the piece's
    // score; within one piece by (left id, right id); a stable sort keeps ties in id order.
    let mut merges: Vec<(usize, usize, f64)> = Vec::new();
    for (i, t) in tokens.iter().enumerate().filter(|(i, _)| normal(*i)) {
        let mut local: Vec<(usize, usize)> = t
            .char_indices()
            .skip(1)
            .filter_map(|(k, _)| {
                let (l, r) = (ids.get(&t[..k])?, ids.get(&t[k..])?);
                (normal(*l) && normal(*r)).then_some((*l, *r))
            })
            .collect();
        local.sort_unstable();
        merges.extend(local.into_iter().map(|(l, r)| (l, r, scores[i])));
    }
    merges.sort_by(|a, b| b.2.partial_cmp(&a.2).unwrap_or(std::cmp::Ordering::Equal));
    let pairs: Vec<Value> = merges
        .iter()
        .map(|&(l, r, _)| json!([tokens[l], tokens[r]]))
        .collect();
    let mut vocab = serde_json::Map::new();
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), json!(i));
    }
    let unk = id_key(meta, "tokenizer.ggml.unknown_token_id", n)?.unwrap_or(0);
    let bos = id_key(meta, "tokenizer.ggml.bos_token_id", n)?.or(Some(1).filter(|&b| b < n));
    let eos = id_key(meta, "tokenizer.ggml.eos_token_id", n)?.or(Some(2).filter(|&e| e < n));
    let mut added = Vec::new();
    for (i, (t, &ty)) in tokens.iter().zip(&types).enumerate() {
        if ty == 2 || ty == 3 {
            added.push(added_token(i, t, true));
        } else if ty == 4 {
            added.push(added_token(i, t, false));
        }
    }
    let add_prefix = meta
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let add_bos = meta
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let add_eos = meta
        .get("tokenizer.ggml.add_eos_token")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    // llama.cpp always puts "▁" before the text (even one starting with a space), which
    // Prepend does and Metaspace's "first" scheme does not.
    let mut normalizers = Vec::new();
    if add_prefix {
        normalizers.push(json!({"type": "Prepend", "prepend": "▁"}));
    }
    normalizers.push(json!({"type": "Replace", "pattern": {"String": " "}, "content": "▁"}));
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "▁"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": null,
        "post_processor": template(&tokens, bos.filter(|_| add_bos), eos.filter(|_| add_eos)),
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": tokens[unk], "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": pairs,
        },
    }))
}

/// llama.cpp's test vectors beside a vocabulary: `<file>.inp` (texts separated by
/// `\n__ggml_vocab_test__\n`) and `<file>.out` (one line of token ids per text, no BOS).
pub fn load_test_vectors(gguf: &std::path::Path) -> Result<Vec<(String, Vec<u32>)>> {
    let with = |ext: &str| {
        let mut p = gguf.as_os_str().to_os_string();
        p.push(ext);
        std::path::PathBuf::from(p)
    };
    let (inp, out) = (with(".inp"), with(".out"));
    let text = std::fs::read_to_string(&inp).map_err(|e| Error::io(&inp, e))?;
    let ids = std::fs::read_to_string(&out).map_err(|e| Error::io(&out, e))?;
    let sep = "\n__ggml_vocab_test__\n";
    let mut cases: Vec<String> = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        match rest.find(sep) {
            Some(i) => {
                cases.push(rest[..i].to_string());
                rest = &rest[i + sep.len()..];
            }
            None => {
                cases.push(rest.to_string());
                rest = "";
            }
        }
    }
    let lines: Vec<&str> = ids.split('\n').collect();
    let lines = &lines[..lines.len().saturating_sub(usize::from(ids.ends_with('\n')))];
    if lines.len() != cases.len() {
        return Err(Error::format(
            &out,
            "lines",
            format!(
                "{} id lines for {} texts in {}",
                lines.len(),
                cases.len(),
                inp.display()
            ),
        ));
    }
    cases
        .into_iter()
        .zip(lines)
        .enumerate()
        .map(|(i, (t, l))| {
            let ids = l
                .split_whitespace()
                .map(|x| x.parse::<u32>())
                .collect::<std::result::Result<Vec<_>, _>>();
            ids.map(|ids| (t, ids))
                .map_err(|e| Error::format(&out, format!("line {}", i + 1), e.to_string()))
        })
        .collect()
}
