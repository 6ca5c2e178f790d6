//! BERT (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional Transformers for
//! Language Understanding") as an encoder: embeddings (word + absolute position + token type,
//! LayerNorm), post-norm layers of self-attention and a GELU feed-forward. The tensor names
//! are `transformers`' `BertModel` ones, with or without a `bert.` prefix; the pooler is not
//! used (sentence-transformers and BGE pool the last hidden states).

use crate::config::BertConfig;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

mod attend;
mod cpu;
mod plan_cache;
pub use cpu::CpuPlan;
pub use plan_cache::PlanCache;

#[derive(Debug)]
struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn share(&self) -> Self {
        Linear {
            w: self.w.shallow_clone(),
            b: self.b.shallow_clone(),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w, Some(&self.b))
    }
}

#[derive(Debug)]
struct Norm {
    w: Tensor,
    b: Tensor,
}

impl Norm {
    fn share(&self) -> Self {
        Norm {
            w: self.w.shallow_clone(),
            b: self.b.shallow_clone(),
        }
    }
}

#[derive(Debug)]
struct Layer {
    /// Query, key and value in one (3·hidden, hidden) projection: one matrix product
    /// instead of three when not training. `q`, `k`, `v` are views of it (shared storage),
    /// so fine-tuning, which trains the three, updates it too.
    qkv: Linear,
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    out_norm: Norm,
}

#[derive(Debug)]
pub struct Bert {
    pub config: BertConfig,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embed_norm: Norm,
    layers: Vec<Layer>,
    /// Every tensor the forward pass uses, under its name in the checkpoint (sharing storage
    /// with the fields above): what fine-tuning updates and saves.
    params: Vec<(String, Tensor)>,
    /// Checkpoint tensors the forward pass does not use (a pooler, buffers), saved back as
    /// they came so a fine-tuned folder keeps them.
    extras: Vec<(String, Tensor)>,
    /// Which load this is (kept by [`Bert::share`]): what tells a [`PlanCache`] that another
    /// model was put in the place of the one its plan came from.
    id: u64,
}

/// The named tensors of a checkpoint, taken out one by one; a missing or misshapen tensor is
/// an error naming it. Taken tensors are remembered under their checkpoint names.
struct Weights {
    left: HashMap<String, Tensor>,
    taken: Vec<(String, Tensor)>,
}

impl Weights {
    fn take(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let key = [
            name.to_string(),
            format!("bert.{name}"),
            format!("roberta.{name}"),
        ]
        .into_iter()
        .find(|k| self.left.contains_key(k))
        .ok_or_else(|| Error::Weights(format!("tensor `{name}` is missing")))?;
        let t = self.left.remove(&key).expect("key found above");
        self.taken.push((key, t.shallow_clone()));
        if t.size() != shape {
            return Err(Error::Weights(format!(
                "tensor `{name}` has shape {:?}, the config says {shape:?}",
                t.size()
            )));
        }
        Ok(t)
    }

    fn linear(&mut self, name: &str, out: i64, inp: i64) -> Result<Linear> {
        Ok(Linear {
            w: self.take(&format!("{name}.weight"), &[out, inp])?,
            b: self.take(&format!("{name}.bias"), &[out])?,
        })
    }

    /// Query, key and value of `prefix` fused (see [`Layer::qkv`]); the taken tensors are
    /// replaced by views of the fused ones.
    fn qkv(&mut self, prefix: &str, h: i64) -> Result<[Linear; 4]> {
        let parts = ["query", "key", "value"]
            .map(|n| self.linear(&format!("{prefix}.attention.self.{n}"), h, h));
        let [q, k, v] = parts;
        let (q, k, v) = (q?, k?, v?);
        let w = Tensor::cat(&[&q.w, &k.w, &v.w], 0);
        let b = Tensor::cat(&[&q.b, &k.b, &v.b], 0);
        let part = |i: i64| Linear {
            w: w.narrow(0, i * h, h),
            b: b.narrow(0, i * h, h),
        };
        let views = [part(0), part(1), part(2)];
        let n = self.taken.len();
        for (j, slot) in self.taken[n - 6..].iter_mut().enumerate() {
            let l = &views[j / 2];
            slot.1 = if j % 2 == 0 { &l.w } else { &l.b }.shallow_clone();
        }
        let [q, k, v] = views;
        Ok([Linear { w, b }, q, k, v])
    }

    fn norm(&mut self, name: &str, dim: i64) -> Result<Norm> {
        Ok(Norm {
            w: self.take(&format!("{name}.weight"), &[dim])?,
            b: self.take(&format!("{name}.bias"), &[dim])?,
        })
    }
}

/// Columns a batch of `rows` is padded to on `device`: the longest row; on CUDA rounded up
/// to a multiple of 16 within `max_length`, since libtorch's attention there most likely plans
/// a kernel per new sequence length (bf16 encoding was 3× slower than f32 over varied
/// lengths, 2.6 s → 2.1 s for 3,999 texts with the rounding on an H100). The padding is
/// masked, so results are the same.
pub fn batch_width(rows: &[&[u32]], device: tch::Device, max_length: usize) -> usize {
    let longest = rows.iter().map(|r| r.len()).max().unwrap_or(1);
    match device {
        tch::Device::Cuda(_) => longest.next_multiple_of(16).min(max_length).max(longest),
        _ => longest,
    }
}

/// Rows of token ids padded with `fill` to the longest (at least 1) as (B, T) i64 on `device`,
/// with the attention mask (1 for tokens, 0 for padding).
pub fn pad_rows(rows: &[&[u32]], fill: i64, device: tch::Device) -> (Tensor, Tensor) {
    pad_rows_to(rows, fill, device, 1)
}

/// [`pad_rows`] to `width` columns (at least the longest row).
pub fn pad_rows_to(
    rows: &[&[u32]],
    fill: i64,
    device: tch::Device,
    width: usize,
) -> (Tensor, Tensor) {
    let longest = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
    let width = width.max(longest);
    let mut flat = Vec::with_capacity(rows.len() * width);
    let mut mask = Vec::with_capacity(rows.len() * width);
    for r in rows {
        flat.extend(r.iter().map(|&t| t as i64));
        flat.resize(flat.len() + width - r.len(), fill);
        mask.extend(std::iter::repeat_n(1i64, r.len()));
        mask.resize(mask.len() + width - r.len(), 0);
    }
    let shape = [rows.len() as i64, width as i64];
    (
        Tensor::from_slice(&flat).view(shape).to_device(device),
        Tensor::from_slice(&mask).view(shape).to_device(device),
    )
}

/// Every tensor of a safetensors file by name, floating-point ones in `kind` (f32, bf16, f16)
/// on `device`; errors name the file.
pub fn load_tensors(
    path: &Path,
    kind: Kind,
    device: tch::Device,
) -> Result<HashMap<String, Tensor>> {
    let fail = |message: String| Error::File {
        path: path.to_path_buf(),
        message,
    };
    let dtype = flagcore::DType::try_from(kind).map_err(|e| fail(e.to_string()))?;
    let tensors = flagcore::torch::load_safetensors(path, Some(dtype), device)
        .map_err(|e| fail(e.to_string()))?;
    Ok(tensors.into_iter().collect())
}

impl Bert {
    /// Loads `model.safetensors` of `dir` with `config` in `kind` on `device`.
    pub fn load(dir: &Path, config: BertConfig, kind: Kind, device: tch::Device) -> Result<Self> {
        config.validate().map_err(|m| Error::File {
            path: dir.join("config.json"),
            message: m,
        })?;
        Self::from_tensors(
            load_tensors(&dir.join("model.safetensors"), kind, device)?,
            config,
        )
    }

    /// Builds the model from named tensors (transformers' names).
    pub fn from_tensors(tensors: HashMap<String, Tensor>, config: BertConfig) -> Result<Self> {
        let mut w = Weights {
            left: tensors,
            taken: Vec::new(),
        };
        let (h, f) = (config.hidden_size as i64, config.intermediate_size as i64);
        let word = w.take(
            "embeddings.word_embeddings.weight",
            &[config.vocab_size as i64, h],
        )?;
        let position = w.take(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings as i64, h],
        )?;
        let token_type = w.take(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size as i64, h],
        )?;
        let embed_norm = w.norm("embeddings.LayerNorm", h)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let [qkv, q, k, v] = w.qkv(&p, h)?;
            layers.push(Layer {
                qkv,
                q,
                k,
                v,
                attn_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                up: w.linear(&format!("{p}.intermediate.dense"), f, h)?,
                down: w.linear(&format!("{p}.output.dense"), h, f)?,
                out_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        let mut extras: Vec<(String, Tensor)> = w.left.into_iter().collect();
        extras.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Bert {
            config,
            word,
            position,
            token_type,
            embed_norm,
            layers,
            params: w.taken,
            extras,
            id: {
                static LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        })
    }

    /// Which load this model is (see the field).
    pub(crate) fn load_id(&self) -> u64 {
        self.id
    }

    /// RoBERTa-family position ids (XLM-R: bge-m3, BGE's rerankers).
    fn roberta(&self) -> bool {
        matches!(
            self.config.model_type.as_deref(),
            Some("xlm-roberta" | "roberta")
        )
    }

    /// The most tokens one input may have (RoBERTa's positions start after the padding
    /// index).
    pub fn max_tokens(&self) -> usize {
        let max = self.config.max_position_embeddings;
        if self.roberta() {
            max.saturating_sub(self.config.pad_token_id.unwrap_or(1).max(0) as usize + 1)
        } else {
            max
        }
    }

    /// The same model over the same weight storage (another handle to each tensor): what
    /// another thread runs, tensors being `Send` but not `Sync`.
    pub fn share(&self) -> Bert {
        let named = |v: &[(String, Tensor)]| {
            v.iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect()
        };
        Bert {
            config: self.config.clone(),
            word: self.word.shallow_clone(),
            position: self.position.shallow_clone(),
            token_type: self.token_type.shallow_clone(),
            embed_norm: self.embed_norm.share(),
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    qkv: l.qkv.share(),
                    q: l.q.share(),
                    k: l.k.share(),
                    v: l.v.share(),
                    attn_out: l.attn_out.share(),
                    attn_norm: l.attn_norm.share(),
                    up: l.up.share(),
                    down: l.down.share(),
                    out_norm: l.out_norm.share(),
                })
                .collect(),
            params: named(&self.params),
            extras: named(&self.extras),
            id: self.id,
        }
    }

    /// The tensors fine-tuning trains, under their checkpoint names.
    pub fn parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// Every checkpoint tensor (trained and untouched) under its name, for saving.
    pub fn named_tensors(&self) -> impl Iterator<Item = &(String, Tensor)> {
        self.params.iter().chain(&self.extras)
    }

    pub fn device(&self) -> tch::Device {
        self.word.device()
    }

    fn layer_norm(&self, x: &Tensor, n: &Norm) -> Tensor {
        x.layer_norm(
            [self.config.hidden_size as i64],
            Some(&n.w),
            Some(&n.b),
            self.config.layer_norm_eps,
            false,
        )
    }

    fn act(&self, x: &Tensor) -> Tensor {
        match self.config.hidden_act.as_str() {
            "relu" => x.relu(),
            "gelu_new" => x.gelu("tanh"),
            _ => x.gelu("none"),
        }
    }

    /// Last hidden states (B, T, hidden) of token ids (B, T) with an attention mask (B, T) of
    /// 1 for tokens and 0 for padding; token types all 0.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.forward_t(ids, None, mask, false)
    }

    /// [`Bert::forward`] with token types (B, T) (sentence pairs of BERT cross-encoders; all
    /// 0 when `None`) and with the config's dropout when `train`.
    pub fn forward_t(
        &self,
        ids: &Tensor,
        types: Option<&Tensor>,
        mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let mut x = self.embed(ids, types, train)?;
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let (heads, d) = (
            self.config.num_attention_heads as i64,
            self.config.head_dim() as i64,
        );
        let p = self.config.hidden_dropout_prob;
        let drop = |x: Tensor| if train { x.dropout(p, true) } else { x };
        let attn_p = if train {
            self.config.attention_probs_dropout_prob
        } else {
            0.0
        };
        let keep = key_mask(mask, b, t);
        for l in &self.layers {
            let (q, k, v) = if train {
                let split = |y: Tensor| y.view([b, t, heads, d]).transpose(1, 2);
                (
                    split(l.q.forward(&x)),
                    split(l.k.forward(&x)),
                    split(l.v.forward(&x)),
                )
            } else {
                split_qkv(&l.qkv.forward(&x), heads, d)
            };
            let a = attention(&q, &k, &v, Some(&keep), attn_p)
                .transpose(1, 2)
                .reshape([b, t, heads * d]);
            x = self.layer_norm(&(drop(l.attn_out.forward(&a)) + &x), &l.attn_norm);
            let ff = drop(l.down.forward(&self.act(&l.up.forward(&x))));
            x = self.layer_norm(&(ff + &x), &l.out_norm);
        }
        Ok(x)
    }

    /// The embedding layer's output (B, T, hidden) for token ids (B, T), checked against the
    /// config (dropout on when `train`).
    fn embed(&self, ids: &Tensor, types: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let size = ids.size();
        if size.len() != 2 || size[1] == 0 {
            return Err(Error::Invalid(format!(
                "token ids must have shape (batch, length > 0), not {size:?}"
            )));
        }
        let t = size[1];
        if t as usize > self.config.max_position_embeddings {
            return Err(Error::Invalid(format!(
                "{t} tokens exceed the model's {} positions",
                self.config.max_position_embeddings
            )));
        }
        // Out-of-range ids would abort inside libtorch: a mismatched tokenizer is an error.
        let over = |t: &Tensor, n: usize| t.numel() > 0 && t.max().int64_value(&[]) >= n as i64;
        if over(ids, self.config.vocab_size) || ids.numel() > 0 && ids.min().int64_value(&[]) < 0 {
            return Err(Error::Invalid(format!(
                "token ids must lie in 0..{} (the model's vocab_size)",
                self.config.vocab_size
            )));
        }
        if types.is_some_and(|t| t.size() != size || over(t, self.config.type_vocab_size)) {
            return Err(Error::Invalid(format!(
                "token types must have the ids' shape and lie in 0..{} (type_vocab_size)",
                self.config.type_vocab_size
            )));
        }
        let positions = if self.roberta() {
            // RoBERTa / XLM-R: positions count the non-padding tokens from pad + 1, and padding
            // sits at the padding index (transformers' create_position_ids_from_input_ids).
            let pad = self.config.pad_token_id.unwrap_or(1);
            let real = ids.ne(pad).to_kind(Kind::Int64);
            let last = t + pad;
            if last as usize >= self.config.max_position_embeddings {
                return Err(Error::Invalid(format!(
                    "{t} tokens exceed the model's {} positions",
                    self.config.max_position_embeddings as i64 - pad - 1
                )));
            }
            real.cumsum(1, Kind::Int64) * &real + pad
        } else {
            Tensor::arange(t, (Kind::Int64, ids.device())).unsqueeze(0)
        };
        let x = Tensor::embedding(&self.word, ids, -1, false, false)
            + Tensor::embedding(&self.position, &positions, -1, false, false)
            + match types {
                Some(t) => Tensor::embedding(&self.token_type, t, -1, false, false),
                None => self.token_type.get(0).view([1, 1, -1]),
            };
        let x = self.layer_norm(&x, &self.embed_norm);
        Ok(if train {
            x.dropout(self.config.hidden_dropout_prob, true)
        } else {
            x
        })
    }
}

/// Keys that are padding are never attended: the attention mask (B, T) as (B, 1, 1, T) bools.
fn key_mask(mask: &Tensor, b: i64, t: i64) -> Tensor {
    mask.to_kind(Kind::Bool).view([b, 1, 1, t])
}

/// A fused q/k/v product (B, T, 3·heads·d) as three (B, heads, T, d) views.
fn split_qkv(y: &Tensor, heads: i64, d: i64) -> (Tensor, Tensor, Tensor) {
    let size = y.size();
    let y = y
        .view([size[0], size[1], 3, heads, d])
        .permute([2, 0, 3, 1, 4]);
    (y.get(0), y.get(1), y.get(2))
}

/// libtorch's scaled dot-product attention (B, heads, T, d), padding keys masked out by
/// `keep` (B, 1, 1, T) when given, with dropout `p`.
fn attention(q: &Tensor, k: &Tensor, v: &Tensor, keep: Option<&Tensor>, p: f64) -> Tensor {
    Tensor::scaled_dot_product_attention(q, k, v, keep, p, false, None, false)
}
