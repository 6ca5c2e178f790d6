//! `config.json` of a BERT-family encoder, as Hugging Face `transformers` writes it (the
//! fields the forward pass needs; others are ignored, as transformers ignores them).

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
    /// Dropout after the embeddings and each sub-layer, while fine-tuning.
    #[serde(default = "dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout of attention probabilities, while fine-tuning.
    #[serde(default = "dropout")]
    pub attention_probs_dropout_prob: f64,
}

fn dropout() -> f64 {
    0.1
}

fn gelu() -> String {
    "gelu".into()
}
fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-12
}
fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Checks what the forward pass relies on; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_new" | "relu") {
            return Err(format!("hidden_act `{}` is not supported", self.hidden_act));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type `{}` is not supported",
                self.position_embedding_type
            ));
        }
        Ok(())
    }
}
