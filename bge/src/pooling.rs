//! How token states become one vector, as the model folder says: sentence-transformers'
//! `modules.json` (Transformer → Pooling → optional Normalize) with `1_Pooling/config.json`
//! and `sentence_bert_config.json`; a plain `transformers` folder pools the CLS token and
//! normalises (FlagEmbedding's default for BGE).

use crate::error::read_json;
use crate::{Error, Result};
use serde::Deserialize;
use std::path::Path;
use tch::{Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    Cls,
    Mean,
}

#[derive(Clone, Debug)]
pub struct Head {
    pub pooling: Pooling,
    pub normalize: bool,
    /// `max_seq_length` of sentence_bert_config.json, when present.
    pub max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct Module {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

#[derive(Deserialize)]
struct SentenceBert {
    max_seq_length: Option<usize>,
}

impl Head {
    pub fn read(dir: &Path) -> Result<Self> {
        let modules = dir.join("modules.json");
        let sbert = dir.join("sentence_bert_config.json");
        let max_seq_length = if sbert.is_file() {
            read_json::<SentenceBert>(&sbert)?.max_seq_length
        } else {
            None
        };
        if !modules.is_file() {
            return Ok(Head {
                pooling: Pooling::Cls,
                normalize: true,
                max_seq_length,
            });
        }
        let list: Vec<Module> = read_json(&modules)?;
        let mut pooling = None;
        let mut normalize = false;
        for m in &list {
            match m.kind.rsplit('.').next().unwrap_or("") {
                "Transformer" => {}
                "Normalize" => normalize = true,
                "Pooling" => {
                    let path = dir.join(&m.path).join("config.json");
                    let c: PoolingConfig = read_json(&path)?;
                    let bad = c.pooling_mode_max_tokens
                        || c.pooling_mode_mean_sqrt_len_tokens
                        || c.pooling_mode_weightedmean_tokens
                        || c.pooling_mode_lasttoken;
                    pooling = Some(
                        match (c.pooling_mode_cls_token, c.pooling_mode_mean_tokens, bad) {
                            (true, false, false) => Pooling::Cls,
                            (false, true, false) => Pooling::Mean,
                            _ => {
                                return Err(Error::File {
                                    path,
                                    message: "only CLS or mean pooling (one of them) is supported"
                                        .into(),
                                })
                            }
                        },
                    );
                }
                other => {
                    return Err(Error::File {
                        path: modules,
                        message: format!("module type `{other}` is not supported"),
                    })
                }
            }
        }
        Ok(Head {
            pooling: pooling.unwrap_or(Pooling::Cls),
            normalize,
            max_seq_length,
        })
    }

    /// One vector per row of hidden states (B, T, H) under `mask` (B, T), L2-normalised when
    /// `normalize`.
    pub fn pool(&self, hidden: &Tensor, mask: &Tensor, normalize: bool) -> Tensor {
        let v = match self.pooling {
            Pooling::Cls => hidden.select(1, 0),
            Pooling::Mean => {
                let m = mask.to_kind(hidden.kind()).unsqueeze(-1);
                let sum = (hidden * &m).sum_dim_intlist(1, false, hidden.kind());
                sum / m.sum_dim_intlist(1, false, hidden.kind()).clamp_min(1e-9)
            }
        };
        let v = v.to_kind(Kind::Float);
        if normalize {
            let n = v.norm_scalaropt_dim(2, [-1], true).clamp_min(1e-12);
            v / n
        } else {
            v
        }
    }
}
