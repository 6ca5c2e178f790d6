//! Loading llama.cpp GGUF checkpoints of LLaMA-architecture models: the config from the
//! `llama.*` metadata, tensors dequantised from F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0
//! (GGML's block formats: 32 values per block, f16 scale, and an f16 minimum for the `_1` kinds)
//! and the K quantisations Q2_K to Q6_K (`kquants.rs`).
//!
//! llama.cpp's converter reorders the rows of the query and key projections so that its rotary
//! kernel can rotate adjacent channel pairs; those weights are exactly a model with the
//! interleaved rotary layout, which is how they are loaded here (no un-permuting needed).

mod kquants;

use crate::model::{Llama, LlamaConfig};
use crate::{Error, Result};
use flagdata::tokenize::gguf::{Metadata, TensorInfo};
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

fn f16(b: &[u8]) -> f32 {
    flagcore::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Bytes per block and values per block of a GGML type, or `None` if unsupported.
fn layout(ggml_type: u32) -> Option<(usize, usize)> {
    Some(match ggml_type {
        0 => (4, 1),
        1 | 30 => (2, 1),
        2 => (18, 32),
        3 => (20, 32),
        6 => (22, 32),
        7 => (24, 32),
        8 => (34, 32),
        k => (kquants::block_bytes(k)?, kquants::QK_K),
    })
}

/// Values of a tensor's raw bytes of GGML type `ggml_type` (whole blocks), in GGML order;
/// `None` for a type this loader does not read.
pub fn dequantize_bytes(ggml_type: u32, bytes: &[u8]) -> Option<Vec<f32>> {
    let (size, values) = layout(ggml_type)?;
    let mut out = Vec::with_capacity(bytes.len() / size * values);
    dequantize(ggml_type, bytes, &mut out);
    Some(out)
}

/// Values of a tensor's raw bytes, in GGML order.
fn dequantize(ggml_type: u32, bytes: &[u8], out: &mut Vec<f32>) {
    match ggml_type {
        0 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        1 => out.extend(bytes.chunks_exact(2).map(f16)),
        30 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| flagcore::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        2 | 3 => {
            let size = if ggml_type == 2 { 18 } else { 20 };
            for blk in bytes.chunks_exact(size) {
                let d = f16(&blk[0..2]);
                let (min, qs) = if ggml_type == 3 {
                    (f16(&blk[2..4]), &blk[4..20])
                } else {
                    (-8.0 * d, &blk[2..18])
                };
                // Low nibbles hold values 0..16, high nibbles 16..32.
                out.extend(qs.iter().map(|q| (q & 0x0F) as f32 * d + min));
                out.extend(qs.iter().map(|q| (q >> 4) as f32 * d + min));
            }
        }
        6 | 7 => {
            let size = if ggml_type == 6 { 22 } else { 24 };
            for blk in bytes.chunks_exact(size) {
                let d = f16(&blk[0..2]);
                let (min, rest) = if ggml_type == 7 {
                    (f16(&blk[2..4]), &blk[4..])
                } else {
                    (-16.0 * d, &blk[2..])
                };
                let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let qs = &rest[4..20];
                let hi = |j: usize| (((qh >> j) & 1) << 4) as u8;
                out.extend(
                    qs.iter()
                        .enumerate()
                        .map(|(j, q)| ((q & 0x0F) | hi(j)) as f32 * d + min),
                );
                out.extend(
                    qs.iter()
                        .enumerate()
                        .map(|(j, q)| ((q >> 4) | hi(j + 16)) as f32 * d + min),
                );
            }
        }
        8 => {
            for blk in bytes.chunks_exact(34) {
                let d = f16(&blk[0..2]);
                out.extend(blk[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        k => kquants::dequantize(k, bytes, out),
    }
}

fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let hf = match part {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// The model config a GGUF's `llama.*` metadata describes (tied when it has no `output.weight`).
pub fn config(meta: &Metadata) -> Result<LlamaConfig> {
    let fail = |field: &str, m: String| Error::Config {
        path: meta.path.clone(),
        field: field.into(),
        message: m,
    };
    let arch = meta
        .get("general.architecture")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if arch != "llama" {
        return Err(fail(
            "general.architecture",
            format!("`{arch}` models are not supported (llama is)"),
        ));
    }
    let int = |key: &str| -> Result<usize> {
        meta.get(key)
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| fail(key, "missing or not an integer".into()))
    };
    let heads = int("llama.attention.head_count")?;
    let vocab = match meta.get("llama.vocab_size").and_then(|v| v.as_u64()) {
        Some(v) => v as usize,
        None => meta.strings("tokenizer.ggml.tokens")?.len(),
    };
    let cfg = LlamaConfig {
        hidden_size: int("llama.embedding_length")?,
        intermediate_size: int("llama.feed_forward_length")?,
        num_hidden_layers: int("llama.block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: Some(int("llama.attention.head_count_kv").unwrap_or(heads)),
        head_dim: None,
        rms_norm_eps: meta
            .get("llama.attention.layer_norm_rms_epsilon")
            .and_then(|v| v.as_f64())
            .unwrap_or(1e-5),
        rope_theta: meta
            .get("llama.rope.freq_base")
            .and_then(|v| v.as_f64())
            .unwrap_or(10_000.0),
        vocab_size: vocab,
        max_position_embeddings: int("llama.context_length").unwrap_or(2048),
        tie_word_embeddings: !meta.tensors.iter().any(|t| t.name == "output.weight"),
        rope_interleaved: true,
        rope_scaling: None,
        rope_parameters: None,
        attention_bias: false,
        mlp_bias: false,
    };
    cfg.validate(&meta.path)?;
    Ok(cfg)
}

fn tensor(
    meta: &Metadata,
    data: &[u8],
    info: &TensorInfo,
    dtype: flagcore::DType,
    device: tch::Device,
) -> Result<Tensor> {
    let fail = |m: String| Error::Checkpoint {
        path: meta.path.clone(),
        name: info.name.clone(),
        message: m,
    };
    let (block_bytes, block_values) = layout(info.ggml_type).ok_or_else(|| {
        fail(format!(
            "GGML type {} is not supported (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 are)",
            info.ggml_type
        ))
    })?;
    let numel = info
        .dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| fail("dimensions overflow".into()))?;
    if numel % block_values as u64 != 0 {
        return Err(fail(format!(
            "{numel} values do not fill blocks of {block_values}"
        )));
    }
    let bytes = numel / block_values as u64 * block_bytes as u64;
    let start = meta
        .data_offset
        .checked_add(info.offset)
        .ok_or_else(|| fail("offset overflows".into()))?;
    let end = start
        .checked_add(bytes)
        .filter(|&e| e <= data.len() as u64)
        .ok_or_else(|| {
            fail(format!(
                "data at {start}..+{bytes} lies beyond the file's {} bytes (truncated?)",
                data.len()
            ))
        })?;
    let mut values = Vec::with_capacity(numel as usize);
    dequantize(
        info.ggml_type,
        &data[start as usize..end as usize],
        &mut values,
    );
    let shape: Vec<i64> = info.dims.iter().rev().map(|&d| d as i64).collect();
    Ok(Tensor::from_slice(&values)
        .view(shape.as_slice())
        .to_kind(dtype.into())
        .to_device(device))
}

/// Loads a GGUF LLaMA-architecture model, dequantised to `dtype` on `device`.
pub fn load(path: &Path, dtype: flagcore::DType, device: tch::Device) -> Result<Llama> {
    let meta = Metadata::read(path)?;
    let cfg = config(&meta)?;
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    // SAFETY: read-only map of a file we do not modify.
    let data = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    let mut tensors = HashMap::new();
    for info in &meta.tensors {
        let name = hf_name(&info.name).ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            name: info.name.clone(),
            message: "not a LLaMA tensor name".into(),
        })?;
        tensors.insert(name, tensor(&meta, &data, info, dtype, device)?);
    }
    Llama::from_tensors(cfg, tensors, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(d: f32, m: Option<f32>, qs: &[u8]) -> Vec<u8> {
        let mut b = flagcore::f16::from_f32(d).to_le_bytes().to_vec();
        if let Some(m) = m {
            b.extend(flagcore::f16::from_f32(m).to_le_bytes());
        }
        b.extend(qs);
        b
    }

    #[test]
    fn block_formats_dequantize() {
        let qs: Vec<u8> = (0..16u8).map(|i| (i % 16) | ((15 - i) << 4)).collect();
        let mut out = Vec::new();
        dequantize(2, &block(0.5, None, &qs), &mut out);
        assert_eq!(out[0], -4.0); // (0 - 8) * 0.5
        assert_eq!(out[15], 3.5); // (15 - 8) * 0.5
        assert_eq!(out[16], 3.5); // high nibble of byte 0 is 15
        out.clear();
        dequantize(3, &block(0.25, Some(1.0), &qs), &mut out);
        assert_eq!((out[1], out[17]), (1.25, 4.5));
        out.clear();
        let q8: Vec<u8> = (0..32).map(|i| (i as i8 - 16) as u8).collect();
        dequantize(8, &block(2.0, None, &q8), &mut out);
        assert_eq!((out[0], out[31]), (-32.0, 30.0));
        out.clear();
        let mut q5 = flagcore::f16::from_f32(1.0).to_le_bytes().to_vec();
        q5.extend(0x8000_0001u32.to_le_bytes()); // high bits for values 0 and 31
        q5.extend([0u8; 16]);
        dequantize(6, &q5, &mut out);
        assert_eq!((out[0], out[1], out[31]), (0.0, -16.0, 0.0));
    }

    #[test]
    fn names_map_to_hugging_face() {
        assert_eq!(
            hf_name("blk.3.attn_q.weight").as_deref(),
            Some("model.layers.3.self_attn.q_proj.weight")
        );
        assert_eq!(hf_name("output.weight").as_deref(), Some("lm_head.weight"));
        assert_eq!(hf_name("blk.3.attn_q_norm.weight"), None);
    }
}
