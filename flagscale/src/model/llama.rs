//! The LLaMA-family decoder (Touvron et al. 2023, "LLaMA: Open and Efficient Foundation
//! Language Models"), which Aquila2 follows: pre-norm RMSNorm (Zhang & Sennrich 2019), rotary
//! embeddings, SwiGLU feed-forward (Shazeer 2020), grouped-query attention (Ainslie et al.
//! 2023) through libtorch's `scaled_dot_product_attention`, no biases, untied or tied output.

use super::{LlamaConfig, Rope};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

#[derive(Debug)]
struct Layer {
    input_norm: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    post_norm: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

#[derive(Debug)]
pub struct Llama {
    pub config: LlamaConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// `None` when tied to the embedding.
    lm_head: Option<Tensor>,
    rope: Rope,
    /// Mixed precision: matrix products and attention run in this kind (weights are cast on
    /// the way in, as `torch.autocast` does), the rest in the weights' own kind.
    autocast: Option<Kind>,
}

/// Tensors a Hugging Face checkpoint may hold that the model does not use.
fn ignorable(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq")
}

impl Llama {
    /// Loads a Hugging Face folder: `config.json` and `model.safetensors` (or the shards that
    /// `model.safetensors.index.json` lists), converted to `dtype` on `device`.
    pub fn load(dir: &Path, dtype: flagcore::DType, device: tch::Device) -> Result<Self> {
        let config = LlamaConfig::from_file(&dir.join("config.json"))?;
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<std::path::PathBuf> = if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| Error::Io {
                path: index.clone(),
                error: e,
            })?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
                path: index.clone(),
                field: String::new(),
                message: e.to_string(),
            })?;
            let mut shards: Vec<String> = v["weight_map"]
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            shards.into_iter().map(|s| dir.join(s)).collect()
        } else {
            vec![dir.join("model.safetensors")]
        };
        let mut tensors = HashMap::new();
        for f in &files {
            for (name, t) in flagcore::torch::load_safetensors(f, Some(dtype), device)? {
                tensors.insert(name, t);
            }
        }
        Self::from_tensors(config, tensors, &files[0])
    }

    /// Builds the model from named tensors (Hugging Face names), checking every shape against
    /// the config; `source` names the checkpoint in errors.
    pub fn from_tensors(
        config: LlamaConfig,
        mut tensors: HashMap<String, Tensor>,
        source: &Path,
    ) -> Result<Self> {
        config.validate(source)?;
        let mut shapes: HashMap<String, Vec<i64>> = config.tensor_shapes().into_iter().collect();
        // Tied checkpoints may still carry a copy of the head, shaped like the embedding.
        shapes
            .entry("lm_head.weight".into())
            .or_insert_with(|| vec![config.vocab_size as i64, config.hidden_size as i64]);
        let mut take = |name: String| -> Result<Tensor> {
            let shape = shapes[&name].as_slice();
            let t = tensors.remove(&name).ok_or_else(|| Error::Checkpoint {
                path: source.into(),
                name: name.clone(),
                message: "missing".into(),
            })?;
            if t.size() != shape {
                return Err(Error::Checkpoint {
                    path: source.into(),
                    name,
                    message: format!("shape {:?}, the config needs {shape:?}", t.size()),
                });
            }
            Ok(t)
        };
        let embed = take("model.embed_tokens.weight".into())?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = |s: &str| format!("model.layers.{i}.{s}");
            layers.push(Layer {
                input_norm: take(p("input_layernorm.weight"))?,
                q: take(p("self_attn.q_proj.weight"))?,
                k: take(p("self_attn.k_proj.weight"))?,
                v: take(p("self_attn.v_proj.weight"))?,
                o: take(p("self_attn.o_proj.weight"))?,
                post_norm: take(p("post_attention_layernorm.weight"))?,
                gate: take(p("mlp.gate_proj.weight"))?,
                up: take(p("mlp.up_proj.weight"))?,
                down: take(p("mlp.down_proj.weight"))?,
            });
        }
        let norm = take("model.norm.weight".into())?;
        let lm_head = if config.tie_word_embeddings {
            match take("lm_head.weight".into()) {
                Err(Error::Checkpoint { message, .. }) if message == "missing" => {}
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            None
        } else {
            Some(take("lm_head.weight".into())?)
        };
        if let Some(extra) = tensors.keys().filter(|n| !ignorable(n)).min() {
            return Err(Error::Checkpoint {
                path: source.into(),
                name: extra.clone(),
                message: "not part of this model (a different architecture or config?)".into(),
            });
        }
        let rope = Rope::new(
            config.head_dim(),
            config.rope_theta,
            config.rope_interleaved,
            embed.device(),
        );
        Ok(Llama {
            config,
            embed,
            layers,
            norm,
            lm_head,
            rope,
            autocast: None,
        })
    }

    /// Handles to every parameter (named as in [`named_tensors`](Self::named_tensors)), with
    /// gradients switched on: what an optimizer updates in place.
    pub fn trainable_parameters(&self) -> Vec<(String, Tensor)> {
        self.named_tensors()
            .into_iter()
            .map(|(n, t)| (n, t.set_requires_grad(true)))
            .collect()
    }

    /// Runs matrix products and attention in `kind` (bf16 for mixed-precision training),
    /// keeping norms, the residual stream and the logits' softmax in the weights' kind.
    pub fn set_autocast(&mut self, kind: Option<Kind>) {
        self.autocast = kind;
    }

    fn cast(&self, t: &Tensor) -> Tensor {
        match self.autocast {
            Some(k) if t.kind() != k => t.to_kind(k),
            _ => t.shallow_clone(),
        }
    }

    /// Switches an interleaved-rotary model (llama.cpp's GGUF layout, Megatron's) to the
    /// halves layout `transformers` expects, by reordering each head's query and key rows:
    /// row 2i goes to i and row 2i + 1 to i + d/2. The outputs do not change.
    pub fn use_half_rope(&mut self) {
        if !self.config.rope_interleaved {
            return;
        }
        let d = self.config.head_dim() as i64;
        let permute = |w: &Tensor, heads: i64| {
            let cols = w.size()[1];
            w.view([heads, d / 2, 2, cols])
                .transpose(1, 2)
                .reshape([heads * d, cols])
        };
        let (hq, hk) = (
            self.config.num_attention_heads as i64,
            self.config.kv_heads() as i64,
        );
        for l in &mut self.layers {
            l.q = permute(&l.q, hq);
            l.k = permute(&l.k, hk);
        }
        self.config.rope_interleaved = false;
        self.rope = Rope::new(
            self.config.head_dim(),
            self.config.rope_theta,
            false,
            self.embed.device(),
        );
    }

    /// Where the weights live.
    pub fn device(&self) -> tch::Device {
        self.embed.device()
    }

    /// Named tensors in Hugging Face's layout (the tied head left out, as `transformers` does).
    pub fn named_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), &self.embed)];
        for (i, l) in self.layers.iter().enumerate() {
            let p = |s: &str| format!("model.layers.{i}.{s}");
            out.extend([
                (p("input_layernorm.weight"), &l.input_norm),
                (p("self_attn.q_proj.weight"), &l.q),
                (p("self_attn.k_proj.weight"), &l.k),
                (p("self_attn.v_proj.weight"), &l.v),
                (p("self_attn.o_proj.weight"), &l.o),
                (p("post_attention_layernorm.weight"), &l.post_norm),
                (p("mlp.gate_proj.weight"), &l.gate),
                (p("mlp.up_proj.weight"), &l.up),
                (p("mlp.down_proj.weight"), &l.down),
            ]);
        }
        out.push(("model.norm.weight".to_string(), &self.norm));
        if let Some(h) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), h));
        }
        out
    }

    /// Saves a Hugging Face folder (`config.json`, `model.safetensors`) that `transformers`
    /// loads as `LlamaForCausalLM`; each file is written atomically.
    pub fn save(&self, dir: &Path, dtype: flagcore::DType) -> Result<()> {
        let mut config =
            serde_json::to_value(&self.config).map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(m) = config.as_object_mut() {
            m.insert(
                "architectures".into(),
                serde_json::json!(["LlamaForCausalLM"]),
            );
            m.insert("model_type".into(), "llama".into());
            let torch_dtype = match dtype {
                flagcore::DType::BF16 => "bfloat16",
                flagcore::DType::F16 => "float16",
                _ => "float32",
            };
            m.insert("torch_dtype".into(), torch_dtype.into());
            // Both spellings: transformers 4 reads `rope_theta`, 5 reads `rope_parameters`.
            m.insert(
                "rope_parameters".into(),
                serde_json::json!({"rope_theta": self.config.rope_theta, "rope_type": "default"}),
            );
        }
        let named = self.named_tensors();
        let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        flagcore::torch::save_safetensors(
            &dir.join("model.safetensors"),
            &refs,
            Some(dtype),
            Some(meta),
        )?;
        let text = serde_json::to_vec_pretty(&config).map_err(|e| Error::Invalid(e.to_string()))?;
        flagcore::fsutil::write_atomic(&dir.join("config.json"), &text)?;
        Ok(())
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor) -> Tensor {
        if x.kind() == Kind::Float {
            // libtorch's fused kernel; in f32 it computes exactly the steps below.
            return x.rms_norm(
                [self.config.hidden_size as i64],
                Some(weight),
                self.config.rms_norm_eps,
            );
        }
        // In f32, cast back before the weight, as Hugging Face's LlamaRMSNorm does.
        let xf = x.to_kind(Kind::Float);
        let var = xf.square().mean_dim(-1, true, Kind::Float);
        let normed = (xf * (var + self.config.rms_norm_eps).rsqrt()).to_kind(x.kind());
        normed * weight
    }

    /// Self-attention of `x` (B, T, hidden) at positions `start..start+T`; with a cache, the
    /// new keys and values are appended and attention covers everything cached.
    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        cache: Option<&mut LayerCache>,
        mask: Option<&Tensor>,
    ) -> Tensor {
        let (b, t) = (x.size()[0], x.size()[1]);
        let x = &self.cast(x);
        let (hq, hk, d) = (
            self.config.num_attention_heads as i64,
            self.config.kv_heads() as i64,
            self.config.head_dim() as i64,
        );
        let proj = |w: &Tensor, heads: i64| {
            x.linear(&self.cast(w), None::<Tensor>)
                .view([b, t, heads, d])
                .transpose(1, 2)
        };
        let q = self.rope.apply(&proj(&layer.q, hq), cos, sin);
        let mut k = self.rope.apply(&proj(&layer.k, hk), cos, sin);
        let mut v = proj(&layer.v, hk);
        let past = match cache {
            Some(c) => {
                let past = c.k.as_ref().map_or(0, |k| k.size()[2]);
                if let (Some(pk), Some(pv)) = (&c.k, &c.v) {
                    k = Tensor::cat(&[pk, &k], 2);
                    v = Tensor::cat(&[pv, &v], 2);
                }
                c.k = Some(k.shallow_clone());
                c.v = Some(v.shallow_clone());
                past
            }
            None => 0,
        };
        // libtorch's causal flag aligns the mask top-left; with cached keys the new queries sit
        // at the bottom-right, so a chunk of several new tokens gets an explicit mask.
        let out = if let Some(mask) = mask {
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), 0.0, false, None, hq != hk)
        } else if past == 0 || t == 1 {
            Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                None::<Tensor>,
                0.0,
                past == 0,
                None,
                hq != hk,
            )
        } else {
            let rows = Tensor::arange_start(past, past + t, (Kind::Int64, x.device())).unsqueeze(1);
            let cols = Tensor::arange(past + t, (Kind::Int64, x.device())).unsqueeze(0);
            let mask = cols.le_tensor(&rows);
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), 0.0, false, None, hq != hk)
        };
        out.transpose(1, 2)
            .reshape([b, t, hq * d])
            .linear(&self.cast(&layer.o), None::<Tensor>)
    }

    fn mlp(&self, layer: &Layer, x: &Tensor) -> Tensor {
        let x = &self.cast(x);
        let gate = x.linear(&self.cast(&layer.gate), None::<Tensor>).silu();
        (gate * x.linear(&self.cast(&layer.up), None::<Tensor>))
            .linear(&self.cast(&layer.down), None::<Tensor>)
    }

    /// Logits (B, T, vocab) for token ids (B, T), positions from 0.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_cached(ids, None)
    }

    /// Like [`forward`](Self::forward), continuing after what `cache` holds (positions follow
    /// on) and appending the new keys and values to it.
    pub fn forward_cached(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.check(ids, cache.as_ref().map_or(0, |c| c.len()))?;
        Ok(self.forward_unchecked(ids, cache))
    }

    /// Shape, context and vocabulary checks of token ids (B, T) placed after `start` cached
    /// positions.
    fn check(&self, ids: &Tensor, start: i64) -> Result<()> {
        let size = ids.size();
        if size.len() != 2 || size[1] == 0 {
            return Err(Error::Invalid(format!(
                "token ids must have shape (batch, length > 0), not {size:?}"
            )));
        }
        if (start + size[1]) as usize > self.config.max_position_embeddings {
            return Err(Error::Invalid(format!(
                "{} tokens exceed the model's context of {}",
                start + size[1],
                self.config.max_position_embeddings
            )));
        }
        let (min, max) = (ids.min().int64_value(&[]), ids.max().int64_value(&[]));
        if min < 0 || max >= self.config.vocab_size as i64 {
            return Err(Error::Invalid(format!(
                "token ids must lie in 0..{}, found {min}..={max}",
                self.config.vocab_size
            )));
        }
        Ok(())
    }

    /// The forward pass without the checks of [`forward_cached`](Self::forward_cached) (they
    /// read the ids back from the device): for callers that checked the ids on the host.
    pub fn forward_unchecked(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Tensor {
        let start = cache.as_ref().map_or(0, |c| c.len());
        let (cos, sin) = self.rope.tables(start, ids.size()[1]);
        self.run(ids, cos, sin, cache, None)
    }

    /// A forward pass where every row has its own positions and attention mask: `positions`
    /// (B, T) are the rows' positions for the new tokens, `mask` (B, 1, T, cached + T) is true
    /// where a query may attend a key (padding excluded). What batched generation of prompts of
    /// different lengths needs.
    pub fn forward_masked(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
        cache: Option<&mut KvCache>,
    ) -> Tensor {
        let (cos, sin) = self.rope.tables_at(positions);
        self.run(ids, cos, sin, cache, Some(mask))
    }

    fn run(
        &self,
        ids: &Tensor,
        cos: Tensor,
        sin: Tensor,
        cache: Option<&mut KvCache>,
        mask: Option<&Tensor>,
    ) -> Tensor {
        self.head(&self.body(ids, cos, sin, cache, mask))
    }

    /// Embedding, layers and the final norm.
    fn body(
        &self,
        ids: &Tensor,
        cos: Tensor,
        sin: Tensor,
        mut cache: Option<&mut KvCache>,
        mask: Option<&Tensor>,
    ) -> Tensor {
        if let Some(c) = cache.as_mut() {
            c.layers.resize_with(self.layers.len(), LayerCache::default);
        }
        // Rounded once here rather than in every layer.
        let (cos, sin) = match self.autocast {
            Some(k) => (cos.to_kind(k), sin.to_kind(k)),
            None => (cos, sin),
        };
        let mut x = Tensor::embedding(&self.embed, ids, -1, false, false);
        for (i, layer) in self.layers.iter().enumerate() {
            let lc = cache.as_mut().map(|c| &mut c.layers[i]);
            let normed = self.rms_norm(&x, &layer.input_norm);
            x = &x + self.attention(layer, &normed, &cos, &sin, lc, mask);
            x = &x + self.mlp(layer, &self.rms_norm(&x, &layer.post_norm));
        }
        self.rms_norm(&x, &self.norm)
    }

    /// Final-norm hidden states (B, T, hidden) of token ids (B, T), positions from 0, checked
    /// as [`forward`](Self::forward) checks: for callers that need logits at a few positions
    /// only (scoring), which [`head`](Self::head) then gives.
    pub fn hidden(&self, ids: &Tensor) -> Result<Tensor> {
        self.check(ids, 0)?;
        let (cos, sin) = self.rope.tables(0, ids.size()[1]);
        Ok(self.body(ids, cos, sin, None, None))
    }

    /// Final-norm hidden states of token ids (B, T) placed after what `cache` holds (every row
    /// continues from the same cached length), appending their keys and values: scoring a
    /// shared prefix once and the rows' own tokens after it.
    pub fn hidden_cached(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let start = cache.len();
        self.check(ids, start)?;
        let (cos, sin) = self.rope.tables(start, ids.size()[1]);
        Ok(self.body(ids, cos, sin, Some(cache), None))
    }

    /// Final-norm hidden states with per-row positions and mask, as
    /// [`forward_masked`](Self::forward_masked) takes them.
    pub fn hidden_masked(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
        cache: &mut KvCache,
    ) -> Tensor {
        let (cos, sin) = self.rope.tables_at(positions);
        self.body(ids, cos, sin, Some(cache), Some(mask))
    }

    /// Logits of final-norm hidden states (any leading shape).
    pub fn head(&self, hidden: &Tensor) -> Tensor {
        self.cast(hidden).linear(
            &self.cast(self.lm_head.as_ref().unwrap_or(&self.embed)),
            None::<Tensor>,
        )
    }
}

/// Keys and values of one layer, (B, KV heads, T, head dim).
#[derive(Debug, Default)]
struct LayerCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
}

/// The key/value cache of a generation: what the model has already seen.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions cached so far.
    pub fn len(&self) -> i64 {
        self.layers
            .first()
            .and_then(|l| l.k.as_ref())
            .map_or(0, |k| k.size()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache with its batch rows picked by `rows` (indices into the batch, repeats
    /// allowed): one cached context continued by several rows.
    pub fn select(&self, rows: &Tensor) -> KvCache {
        let pick = |t: &Option<Tensor>| t.as_ref().map(|t| t.index_select(0, rows));
        KvCache {
            layers: self
                .layers
                .iter()
                .map(|l| LayerCache {
                    k: pick(&l.k),
                    v: pick(&l.v),
                })
                .collect(),
        }
    }
}
