//! The model config, with Hugging Face `config.json`'s field names, so real Aquila2, LLaMA and
//! SmolLM2 configs load as they are.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Fewer than `num_attention_heads` is grouped-query attention; absent means equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Absent means `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    pub vocab_size: usize,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Rotary layout: pairs of adjacent channels (GPT-J/Megatron style, which the Aquila2-7B
    /// recipe used) instead of Hugging Face's two halves. Not a Hugging Face field.
    #[serde(default)]
    pub rope_interleaved: bool,
    /// Only `null` is supported (no scaled rotary embeddings yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers 5 writes `{"rope_theta": ..., "rope_type": "default"}` here instead of a
    /// top-level `rope_theta`; when present it is what counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_positions() -> usize {
    2048
}

impl LlamaConfig {
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Reads a Hugging Face `config.json` (other fields, e.g. `architectures`, are ignored).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            error: e,
        })?;
        let mut cfg: LlamaConfig = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            field: String::new(),
            message: e.to_string(),
        })?;
        if let Some(params) = &cfg.rope_parameters {
            let bad = |m: &str| Error::Config {
                path: path.to_path_buf(),
                field: "rope_parameters".into(),
                message: m.into(),
            };
            match params.get("rope_type").and_then(|t| t.as_str()) {
                None | Some("default") => {}
                Some(other) => {
                    return Err(bad(&format!(
                        "rope_type `{other}` is not supported yet (only default)"
                    )))
                }
            }
            if let Some(theta) = params.get("rope_theta") {
                cfg.rope_theta = theta
                    .as_f64()
                    .ok_or_else(|| bad("rope_theta is not a number"))?;
            }
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks the shapes fit together; the error names the field.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let fail = |field: &str, message: String| {
            Err(Error::Config {
                path: path.to_path_buf(),
                field: field.into(),
                message,
            })
        };
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("vocab_size", self.vocab_size),
        ] {
            if v == 0 {
                return fail(field, "must be positive".into());
            }
        }
        if self.head_dim.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            return fail(
                "num_attention_heads",
                format!(
                    "{} heads do not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            );
        }
        let kv = self.kv_heads();
        if kv == 0 || self.num_attention_heads % kv != 0 {
            return fail(
                "num_key_value_heads",
                format!(
                    "{kv} KV heads do not divide {} attention heads",
                    self.num_attention_heads
                ),
            );
        }
        if self.head_dim() % 2 != 0 {
            return fail(
                "head_dim",
                format!(
                    "rotary embeddings need an even head size, not {}",
                    self.head_dim()
                ),
            );
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return fail("rms_norm_eps", "must be positive".into());
        }
        if self.rope_theta.is_nan() || self.rope_theta <= 0.0 {
            return fail("rope_theta", "must be positive".into());
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return fail(
                "rope_scaling",
                "scaled rotary embeddings are not supported yet".into(),
            );
        }
        if self.attention_bias || self.mlp_bias {
            return fail(
                "attention_bias",
                "Aquila/LLaMA models have no biases; biased variants are not supported".into(),
            );
        }
        Ok(())
    }

    /// Every weight a model of this config has, in Hugging Face's names and PyTorch's shapes,
    /// in a fixed order; the output head only when it is not tied to the embedding.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let (h, f, v) = (
            self.hidden_size as i64,
            self.intermediate_size as i64,
            self.vocab_size as i64,
        );
        let (q, kv) = (
            (self.num_attention_heads * self.head_dim()) as i64,
            (self.kv_heads() * self.head_dim()) as i64,
        );
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, h])];
        for i in 0..self.num_hidden_layers {
            for (name, shape) in [
                ("input_layernorm.weight", vec![h]),
                ("self_attn.q_proj.weight", vec![q, h]),
                ("self_attn.k_proj.weight", vec![kv, h]),
                ("self_attn.v_proj.weight", vec![kv, h]),
                ("self_attn.o_proj.weight", vec![h, q]),
                ("post_attention_layernorm.weight", vec![h]),
                ("mlp.gate_proj.weight", vec![f, h]),
                ("mlp.up_proj.weight", vec![f, h]),
                ("mlp.down_proj.weight", vec![h, f]),
            ] {
                out.push((format!("model.layers.{i}.{name}"), shape));
            }
        }
        out.push(("model.norm.weight".to_string(), vec![h]));
        if !self.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), vec![v, h]));
        }
        out
    }

    /// Parameters, embeddings included (the output head counted once when tied).
    pub fn parameter_count(&self) -> usize {
        self.tensor_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<i64>() as usize)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aquila2_7b() -> LlamaConfig {
        serde_json::from_str(
            r#"{"architectures": ["AquilaForCausalLM"], "hidden_size": 4096, "intermediate_size": 11008,
                "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
                "rms_norm_eps": 1e-5, "rope_theta": 10000, "vocab_size": 100008,
                "max_position_embeddings": 4096, "tie_word_embeddings": false}"#,
        )
        .unwrap()
    }

    #[test]
    fn real_configs_load_and_count() {
        let c = aquila2_7b();
        c.validate(Path::new("c.json")).unwrap();
        assert_eq!((c.head_dim(), c.kv_heads()), (128, 32));
        // 7.0B parameters: 32 layers of (4·4096² + 3·4096·11008 + 2·4096) plus 2 embeddings.
        assert_eq!(
            c.parameter_count(),
            32 * (4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 100008 * 4096 + 4096
        );
        let big: LlamaConfig = serde_json::from_str(
            r#"{"hidden_size": 6144, "intermediate_size": 24576, "num_hidden_layers": 60,
                "num_attention_heads": 48, "num_key_value_heads": 8, "vocab_size": 100008}"#,
        )
        .unwrap();
        big.validate(Path::new("c.json")).unwrap();
        assert_eq!((big.head_dim(), big.kv_heads()), (128, 8));
    }

    #[test]
    fn transformers_5_rope_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        let base = r#""hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 11"#;
        std::fs::write(&p, format!(r#"{{{base}, "rope_parameters": {{"rope_theta": 100000.0, "rope_type": "default"}}}}"#)).unwrap();
        assert_eq!(LlamaConfig::from_file(&p).unwrap().rope_theta, 100000.0);
        std::fs::write(
            &p,
            format!(
                r#"{{{base}, "rope_parameters": {{"rope_theta": 1.0, "rope_type": "llama3"}}}}"#
            ),
        )
        .unwrap();
        assert!(LlamaConfig::from_file(&p)
            .unwrap_err()
            .to_string()
            .contains("`rope_parameters`: rope_type `llama3`"));
    }

    #[test]
    fn bad_shapes_name_the_field() {
        let mut c = aquila2_7b();
        c.num_key_value_heads = Some(5);
        let e = c.validate(Path::new("c.json")).unwrap_err().to_string();
        assert!(
            e.starts_with("c.json: `num_key_value_heads`: 5 KV heads do not divide 32"),
            "{e}"
        );
        let mut c = aquila2_7b();
        c.num_attention_heads = 30;
        assert!(c
            .validate(Path::new("c.json"))
            .unwrap_err()
            .to_string()
            .contains("`num_attention_heads`"));
        let mut c = aquila2_7b();
        c.rope_scaling = Some(serde_json::json!({"type": "linear", "factor": 2.0}));
        assert!(c
            .validate(Path::new("c.json"))
            .unwrap_err()
            .to_string()
            .contains("`rope_scaling`"));
    }
}
