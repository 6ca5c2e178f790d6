//! Decoding against a paged key/value cache (Kwon et al., 2023, "Efficient Memory Management
//! for Large Language Model Serving with PagedAttention"): each sequence's keys live in
//! fixed-size blocks scattered through one cache, listed by its row of the block table. One
//! query row per sequence attends to its first `context_len` positions; forward only.
//!
//! Arguments and layouts as FlagAttention's: query (B, Hq, D); key_cache and value_cache
//! (num_blocks, Hk, block_size, D); context_lens (B) i32; block_tables (B, max_blocks) i32.
//! Each task owns a (sequence, key head) and reads every key and value row once for the
//! group's query heads.

use crate::dtype::Float;
use crate::shape::{heads_and_scale, sizes};
use crate::vexp::{dot, exp_affine};
use crate::{Error, Result};
use flagcore::TensorView;
use rayon::prelude::*;

/// Row `idx` (all indices but the last) of a view, as f32.
fn row<T: Float>(v: &TensorView<'_, T>, idx: &[usize], out: &mut [f32]) {
    let s = v.strides();
    let base: usize = idx.iter().zip(s).map(|(i, s)| i * s).sum();
    let last = s[s.len() - 1];
    let data = v.data();
    if last == 1 {
        T::rows_to_f32(&data[base..base + out.len()], out);
    } else {
        out.iter_mut()
            .enumerate()
            .for_each(|(c, x)| *x = data[base + c * last].to_f32());
    }
}

/// The attention output (B, Hq, D), row-major, in the query's type.
pub fn paged_attention<T: Float>(
    query: &TensorView<'_, T>,
    key_cache: &TensorView<'_, T>,
    value_cache: &TensorView<'_, T>,
    context_lens: &TensorView<'_, i32>,
    block_tables: &TensorView<'_, i32>,
    sm_scale: f32,
) -> Result<Vec<T>> {
    let [b, hq, d] = sizes("query", query, "(batch, heads, head dim)")?;
    let cache = "(blocks, heads, block size, head dim)";
    let [blocks, hk, bs, kd] = sizes("key_cache", key_cache, cache)?;
    if value_cache.shape() != key_cache.shape() {
        return Err(Error::shape(
            "value_cache",
            format!("shape {:?} differs from key_cache's", value_cache.shape()),
        ));
    }
    if kd != d {
        return Err(Error::shape(
            "key_cache",
            format!("head dim {kd} differs from the query's {d}"),
        ));
    }
    heads_and_scale(d, hq, hk, sm_scale)?;
    if bs == 0 {
        return Err(Error::shape("key_cache", "the block size is 0"));
    }
    let [tb, max_blocks] = sizes("block_tables", block_tables, "(batch, max blocks)")?;
    let Some(capacity) = max_blocks.checked_mul(bs) else {
        return Err(Error::shape(
            "block_tables",
            format!("{max_blocks} blocks of {bs} overflow"),
        ));
    };
    let [lb] = sizes("context_lens", context_lens, "(batch)")?;
    if tb != b || lb != b {
        return Err(Error::shape(
            if tb != b {
                "block_tables"
            } else {
                "context_lens"
            },
            format!(
                "batch {} differs from the query's {b}",
                if tb != b { tb } else { lb }
            ),
        ));
    }
    // Every block a sequence uses must exist: checked up front, so no task can fail.
    let mut lens = Vec::with_capacity(b);
    for s in 0..b {
        let len = context_lens.get(&[s]).unwrap_or(0);
        if len < 0 || len as usize > capacity {
            return Err(Error::shape(
                "context_lens",
                format!(
                    "sequence {s} has length {len}, outside 0..={} (max blocks × block size)",
                    max_blocks * bs
                ),
            ));
        }
        for j in 0..(len as usize).div_ceil(bs) {
            let blk = block_tables.get(&[s, j]).unwrap_or(-1);
            if blk < 0 || blk as usize >= blocks {
                return Err(Error::shape(
                    "block_tables",
                    format!("sequence {s}, entry {j}: block {blk} is not in 0..{blocks}"),
                ));
            }
        }
        lens.push(len as usize);
    }
    let g = hq / hk;
    let mut out = vec![T::from_f32(0.0); b * hq * d];
    out.par_chunks_mut(g * d)
        .enumerate()
        .for_each(|(task, out)| {
            let (s, kh) = (task / hk, task % hk);
            let mut q = vec![0f32; g * d];
            for (h, qh) in q.chunks_exact_mut(d).enumerate() {
                row(query, &[s, kh * g + h], qh);
            }
            let (mut krow, mut vrow) = (vec![0f32; d], vec![0f32; d]);
            let (mut acc, mut part) = (vec![0f32; g * d], vec![0f32; g * d]);
            let mut alpha = vec![1f32; g];
            let (mut mx, mut sum) = (vec![f32::NEG_INFINITY; g], vec![0f32; g]);
            let mut scores = vec![0f32; g * bs];
            for j in 0..lens[s].div_ceil(bs) {
                let blk = block_tables.get(&[s, j]).unwrap_or(0) as usize;
                let n = bs.min(lens[s] - j * bs);
                for t in 0..n {
                    row(key_cache, &[blk, kh, t], &mut krow);
                    for (h, qh) in q.chunks_exact(d).enumerate() {
                        scores[h * bs + t] = dot(qh, &krow) * sm_scale;
                    }
                }
                // Online softmax per head over this block's keys; the block's weighted sum of
                // values is taken apart, then added (one running sum over a long context
                // would lose digits).
                for h in 0..g {
                    let sc = &mut scores[h * bs..h * bs + n];
                    let top = sc.iter().copied().fold(mx[h], f32::max);
                    alpha[h] = (mx[h] - top).exp();
                    mx[h] = top;
                    sum[h] = sum[h] * alpha[h] + exp_affine(sc, 1.0, -top);
                }
                part.fill(0.0);
                for t in 0..n {
                    row(value_cache, &[blk, kh, t], &mut vrow);
                    for h in 0..g {
                        let p = scores[h * bs + t];
                        let a = &mut part[h * d..(h + 1) * d];
                        a.iter_mut().zip(&vrow).for_each(|(a, v)| *a += p * v);
                    }
                }
                for (h, (a, p)) in acc
                    .chunks_exact_mut(d)
                    .zip(part.chunks_exact(d))
                    .enumerate()
                {
                    a.iter_mut()
                        .zip(p)
                        .for_each(|(a, p)| *a = *a * alpha[h] + p);
                }
            }
            for h in 0..g {
                let a = &mut acc[h * d..(h + 1) * d];
                // 0 only for an empty context; a NaN from the inputs goes on to the output.
                let inv = if sum[h] != 0.0 { 1.0 / sum[h] } else { 0.0 };
                a.iter_mut().for_each(|x| *x *= inv);
                T::rows_from_f32(a, &mut out[h * d..(h + 1) * d]);
            }
        });
    Ok(out)
}
