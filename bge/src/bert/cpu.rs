//! BERT inference on the CPU with its weights prepared once ([`CpuPlan`]): the products
//! through MKL with packed weights (`mkl.rs`), each followed by one fused pass (`fused.rs`)
//! instead of libtorch's bias copy, activation, residual add and LayerNorm. What inference
//! runs on the CPU (the encoder, the rerankers, the server's routes); training and CUDA take
//! [`Bert::forward_t`].
//!
//! A bf16 model on a CPU without bf16 arithmetic (no AVX-512 BF16: libtorch's bf16 products
//! there run a generic kernel at ~5 GFLOP/s per core) keeps bf16 values, rounded where the
//! bf16 model rounds, in f32 storage, and its products run through f32 copies of its weights:
//! the same values at f32's rate ([`Storage::Bf16InF32`]).

use super::{attend, attention, key_mask, split_qkv, Bert, Layer};
use crate::fused::{self, NormParams, Storage};
use crate::mkl::PackedWeight;
use crate::Result;
use tch::{Kind, Tensor};

/// A product x·Wᵀ as a plan runs it.
enum Product {
    /// Through MKL with W packed (f32; a bf16 W as its f32 values).
    Packed(PackedWeight),
    /// libtorch's `mm` with the layer's own weight tensor.
    Torch,
}

impl Product {
    fn new(w: &Tensor, pack: bool) -> Product {
        let size = w.size();
        if !pack {
            return Product::Torch;
        }
        let values = fused::floats(w);
        match PackedWeight::new(&values, size[0] as usize, size[1] as usize) {
            Some(p) => Product::Packed(p),
            None => Product::Torch,
        }
    }

    /// out (m, n) = x (m, k) · wᵀ, x and out contiguous; `w` is the layer's weight (n, k).
    fn run(&self, x: &Tensor, w: &Tensor, out: &mut Tensor) {
        match self {
            Product::Packed(p) => {
                let k = x.size()[1] as usize;
                // SAFETY: f32 tensors (the plan's storage), out distinct from x.
                let (xs, os) = unsafe { (fused::elems::<f32>(x), fused::elems_mut::<f32>(out)) };
                p.product(xs, k, os, p.rows());
            }
            Product::Torch => {
                let _ = x.mm_out(out, &w.tr());
            }
        }
    }
}

/// One layer's prepared weights and epilogue parameters.
struct LayerPlan {
    qkv: Product,
    out: Product,
    up: Product,
    down: Product,
    /// Bias added to the q/k/v product's first columns (the query's; see `forward_planned`).
    lead: Vec<f32>,
    attn_norm: NormParams,
    up_bias: Vec<f32>,
    out_norm: NormParams,
}

/// A model's weights prepared for [`Bert::forward_planned`]. Built from the weights as they are
/// now (a later in-place update, fine-tuning, needs a new plan); `Sync`, so the workers of
/// `workers.rs` share one.
pub struct CpuPlan {
    storage: Storage,
    layers: Vec<LayerPlan>,
}

impl std::fmt::Debug for CpuPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let packed = self
            .layers
            .first()
            .is_some_and(|l| matches!(l.qkv, Product::Packed(_)));
        write!(f, "CpuPlan({:?}, packed: {packed})", self.storage)
    }
}

/// Whether the CPU has bf16 arithmetic libtorch uses (oneDNN's AVX-512 BF16 / AMX kernels).
fn native_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Bert {
    /// The plan for this model on the CPU, or `None` where [`Bert::forward_planned`] does not
    /// apply (another device, kind or activation than erf GELU). With `pack` (what `PlanCache`
    /// asks) and where libtorch carries MKL, f32 weights are packed for it, and so are f32
    /// copies of bf16 weights on a CPU without bf16 arithmetic; MKL's packed copy is the matrix
    /// plus ~5–7 MB. Otherwise products go through libtorch's `mm` (bf16 ones through its bf16
    /// kernels).
    pub fn cpu_plan(&self, pack: bool) -> Option<CpuPlan> {
        if self.device() != tch::Device::Cpu || self.config.hidden_act != "gelu" {
            return None;
        }
        let mkl = pack && crate::mkl::available();
        let storage = match self.word.kind() {
            Kind::Float => Storage::F32,
            Kind::BFloat16 if mkl && !native_bf16() => Storage::Bf16InF32,
            Kind::BFloat16 => Storage::Bf16,
            _ => return None,
        };
        let pack = storage != Storage::Bf16 && mkl;
        let h = self.config.hidden_size;
        let fl = |t: &Tensor| t.to_kind(Kind::Float);
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let mut lead = fused::floats(&l.q.b);
                if storage == Storage::Bf16InF32 {
                    // Zeros over k and v: the pass then rounds them too.
                    lead.resize(3 * h, 0.0);
                }
                // b_o + W_o·b_v: the value bias carried through the output projection.
                let bo = fl(&l.attn_out.b) + fl(&l.attn_out.w).mv(&fl(&l.v.b));
                LayerPlan {
                    qkv: Product::new(&l.qkv.w, pack),
                    out: Product::new(&l.attn_out.w, pack),
                    up: Product::new(&l.up.w, pack),
                    down: Product::new(&l.down.w, pack),
                    lead,
                    attn_norm: NormParams::new(&bo, &l.attn_norm.w, &l.attn_norm.b),
                    up_bias: fused::floats(&l.up.b),
                    out_norm: NormParams::new(&l.down.b, &l.out_norm.w, &l.out_norm.b),
                }
            })
            .collect();
        Some(CpuPlan { storage, layers })
    }

    /// Last hidden states for inference: through `plan` (a [`Bert::cpu_plan`] of this model)
    /// when given, otherwise [`Bert::forward_t`] without dropout. Padding positions hold
    /// zeros on the first path and what libtorch computed on the second: read real tokens
    /// only.
    pub fn last_hidden(
        &self,
        plan: Option<&CpuPlan>,
        ids: &Tensor,
        types: Option<&Tensor>,
        mask: &Tensor,
    ) -> Result<Tensor> {
        match plan {
            Some(plan) => self.forward_planned(plan, ids, types, mask),
            None => self.forward_t(ids, types, mask, false),
        }
    }

    /// [`Bert::forward_t`] (inference) through `plan`, a [`Bert::cpu_plan`] of this model;
    /// positions the mask drops hold zeros.
    pub fn forward_planned(
        &self,
        plan: &CpuPlan,
        ids: &Tensor,
        types: Option<&Tensor>,
        mask: &Tensor,
    ) -> Result<Tensor> {
        assert_eq!(plan.layers.len(), self.layers.len(), "a plan of this model");
        if mask.size() != ids.size() {
            return Err(crate::Error::Invalid(format!(
                "the attention mask has shape {:?}, the token ids {:?}",
                mask.size(),
                ids.size()
            )));
        }
        let x = self.embed(ids, types, false)?;
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let (h, heads, d) = (
            self.config.hidden_size as i64,
            self.config.num_attention_heads as i64,
            self.config.head_dim() as i64,
        );
        let s = plan.storage;
        // Only the batch's real tokens go through the products and passes (rows (N, hidden)):
        // padding to the longest text is 5-6 % of the rows of disfl_qa's length-sorted
        // batches of 32. Attention alone needs the (B, T) layout.
        let tokens = Tokens::new(mask, b, t);
        let out = Tensor::zeros([b * t, h], (self.word.kind(), tch::Device::Cpu));
        if tokens.padded_rows.is_empty() {
            return Ok(out.view([b, t, h]));
        }
        // Exact for bf16 held in f32; contiguous, as the passes and products need.
        let mut x = x
            .view([b * t, h])
            .index_select(0, &tokens.real)
            .to_kind(s.kind())
            .contiguous();
        for (l, p) in self.layers.iter().zip(&plan.layers) {
            // Without addmm's pass copying the bias into the output: only the query's bias is
            // added. The key's adds q·b_k to every score of a query, which softmax cancels;
            // the value's adds b_v to every output row (each row's probabilities sum to 1),
            // folded into the output projection's bias (`cpu_plan`).
            let mut y = Tensor::empty([x.size()[0], 3 * h], (s.kind(), tch::Device::Cpu));
            p.qkv.run(&x, &l.qkv.w, &mut y);
            fused::bias_lead_(&mut y, &p.lead, s);
            // In f32 for bf16 held in f32, its output not rounded (one rounding fewer than
            // libtorch's bf16 attention).
            let a = tokens.attend(&y, heads, d);
            x = self.after_attention(l, p, s, &a, &x);
        }
        let mut out = out;
        let _ = out.index_copy_(0, &tokens.real, &x.to_kind(self.word.kind()));
        Ok(out.view([b, t, h]))
    }

    /// The rest of a layer after attention, a block of rows at a time: with
    /// y = LayerNorm(x + a·W_oᵀ + b_o + W_o·b_v), LayerNorm(y + down(GELU(up(y)))) for the
    /// attention output a and the layer input x, rows (N, hidden). The block's y and its
    /// (rows, intermediate) activation stay in cache between the products and the fused passes,
    /// instead of a round trip through memory each.
    fn after_attention(
        &self,
        l: &Layer,
        p: &LayerPlan,
        s: Storage,
        a: &Tensor,
        x: &Tensor,
    ) -> Tensor {
        // Products of 1,024 rows run at MKL's full rate (one core, MiniLM's shapes: 205-211
        // GFLOP/s, against 180-198 for 256 rows on a Sapphire Rapids core); the block's
        // activation (6 MiB in f32) still stays in the last-level cache between the products
        // and GELU.
        const ROWS: i64 = 1024;
        let n = x.size()[0];
        let out = x.empty_like();
        let f = self.config.intermediate_size as i64;
        let opts = (x.kind(), x.device());
        let (y, up) = (
            Tensor::empty([ROWS.min(n), x.size()[1]], opts),
            Tensor::empty([ROWS.min(n), f], opts),
        );
        let eps = self.config.layer_norm_eps;
        for start in (0..n).step_by(ROWS as usize) {
            let r = ROWS.min(n - start);
            let xs = x.narrow(0, start, r);
            let mut ys = y.narrow(0, 0, r);
            p.out.run(&a.narrow(0, start, r), &l.attn_out.w, &mut ys);
            fused::bias_residual_norm_(&mut ys, &xs, &p.attn_norm, eps, s);
            let mut hs = up.narrow(0, 0, r);
            p.up.run(&ys, &l.up.w, &mut hs);
            fused::bias_gelu_(&mut hs, &p.up_bias, s);
            let mut os = out.narrow(0, start, r);
            p.down.run(&hs, &l.down.w, &mut os);
            fused::bias_residual_norm_(&mut os, &ys, &p.out_norm, eps, s);
        }
        out
    }
}

/// Where a batch's real tokens sit, for attention over rows of real tokens only.
struct Tokens {
    /// Flat indices (B·T) of the tokens the mask keeps, in order.
    real: Tensor,
    /// The same in the attention's (B, T') layout, ascending.
    padded_rows: Vec<usize>,
    /// Keys that are padding are never attended (B, 1, 1, T').
    keep: Tensor,
    b: i64,
    /// T', the length attention runs at: libtorch's CPU flash kernel is 1.5–2× slower per
    /// FLOP on a short length that is not a multiple of 16 (one thread, 32×12 heads of 32:
    /// T = 28 takes 2.09 ms in bf16, T = 32 1.03 ms; f32 1.73 / 1.05 ms), so short batches
    /// are padded to one (masked keys).
    tp: i64,
    /// Where each text's tokens start among the rows and how many there are, for batches of
    /// long texts (T' ≥ 64) padded on the right: attention then runs text by text, unmasked,
    /// over its own length (disfl_qa's paragraph batches: 10 % fewer FLOPs than at the
    /// batch's longest), with no copy into the padded layout and back.
    texts: Option<Vec<(i64, i64)>>,
}

impl Tokens {
    fn new(mask: &Tensor, b: i64, t: i64) -> Self {
        let tp = if t < 64 { (t + 15) / 16 * 16 } else { t };
        let real = mask.reshape([b * t]).nonzero().view([-1]);
        let real_padded = real.divide_scalar_mode(t, "floor") * tp + real.remainder(t);
        let keep = Tensor::zeros([b, tp], (Kind::Bool, tch::Device::Cpu));
        keep.narrow(1, 0, t)
            .copy_(&key_mask(mask, b, t).view([b, t]));
        let padded_rows: Vec<usize> = Vec::<i64>::try_from(&real_padded)
            .expect("indices")
            .into_iter()
            .map(|j| j as usize)
            .collect();
        let texts = (tp >= 64)
            .then(|| right_padded(&padded_rows, b, tp))
            .flatten();
        Tokens {
            real,
            padded_rows,
            keep: keep.view([b, 1, 1, tp]),
            b,
            tp,
            texts,
        }
    }

    /// Self-attention of a fused q/k/v product y (N, 3·heads·d) of the real tokens, as rows
    /// (N, heads·d).
    fn attend(&self, y: &Tensor, heads: i64, d: i64) -> Tensor {
        if let Some(texts) = &self.texts {
            return attend_each(y, texts, heads, d);
        }
        let cols = y.size()[1];
        let mut yp = Tensor::empty([self.b * self.tp, cols], (y.kind(), y.device()));
        // One pass writing each row once, in Rust: the real tokens' rows copied, padding rows
        // zeroed (their values are masked, but must be finite). libtorch's zeros + index_copy_
        // (which moves an element at a time) were 2.4 % of an f32 encode's time.
        let row = cols as usize * y.kind().elt_size_in_bytes();
        // SAFETY: y and yp are distinct contiguous CPU tensors of one kind, `row` bytes a row;
        // padded_rows, ascending, indexes yp's rows (B·T' of them), one per row of y.
        unsafe {
            let (src, dst) = (fused::elems::<u8>(y), fused::elems_mut::<u8>(&mut yp));
            let mut real = self.padded_rows.iter().enumerate().peekable();
            for (j, out) in dst.chunks_exact_mut(row).enumerate() {
                match real.next_if(|&(_, &r)| r == j) {
                    Some((i, _)) => out.copy_from_slice(&src[i * row..(i + 1) * row]),
                    None => out.fill(0),
                }
            }
        }
        let (q, k, v) = split_qkv(&yp.view([self.b, self.tp, cols]), heads, d);
        let o = attention(&q, &k, &v, Some(&self.keep), 0.0)
            .transpose(1, 2)
            .contiguous();
        // Back to the real tokens' rows, a row copy as on the way in.
        let mut out = Tensor::empty([y.size()[0], heads * d], (o.kind(), o.device()));
        let row = (heads * d) as usize * o.kind().elt_size_in_bytes();
        // SAFETY: o and out are distinct contiguous CPU tensors of one kind, `row` bytes a
        // row; padded_rows indexes o's rows (B·T'), one per row of out.
        unsafe {
            let (src, dst) = (fused::elems::<u8>(&o), fused::elems_mut::<u8>(&mut out));
            for (out, &j) in dst.chunks_exact_mut(row).zip(&self.padded_rows) {
                out.copy_from_slice(&src[j * row..(j + 1) * row]);
            }
        }
        out
    }
}

/// (start row, length) of each text when every text's real tokens come first in its row of
/// the padded layout (`rows`: their indices there, ascending), `None` otherwise.
fn right_padded(rows: &[usize], b: i64, tp: i64) -> Option<Vec<(i64, i64)>> {
    let mut texts = vec![(0i64, 0i64); b as usize];
    for (i, &r) in rows.iter().enumerate() {
        let (text, pos) = (r / tp as usize, r % tp as usize);
        let slot = &mut texts[text];
        if pos as i64 != slot.1 {
            return None;
        }
        if pos == 0 {
            slot.0 = i as i64;
        }
        slot.1 += 1;
    }
    texts.iter().all(|&(_, n)| n > 0).then_some(texts)
}

/// Self-attention text by text over rows (N, 3·heads·d) of the real tokens (see
/// [`Tokens::texts`]), as rows (N, heads·d).
fn attend_each(y: &Tensor, texts: &[(i64, i64)], heads: i64, d: i64) -> Tensor {
    let mut out = Tensor::empty([y.size()[0], heads * d], (y.kind(), y.device()));
    if y.kind() == Kind::Float && d % 16 == 0 && attend::available() {
        let (cols, h) = (y.size()[1] as usize, (heads * d) as usize);
        // SAFETY: y and out are distinct contiguous f32 CPU tensors (rows of cols and h).
        let (ys, os) = unsafe { (fused::elems::<f32>(y), fused::elems_mut::<f32>(&mut out)) };
        for &(start, n) in texts {
            let (s, n) = (start as usize, n as usize);
            let rows = (&ys[s * cols..(s + n) * cols], &mut os[s * h..(s + n) * h]);
            attend::attend(rows.0, n, heads as usize, d as usize, rows.1);
        }
        return out;
    }
    for &(start, n) in texts {
        let (q, k, v) = split_qkv(&y.narrow(0, start, n).unsqueeze(0), heads, d);
        let o = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<&Tensor>,
            0.0,
            false,
            None,
            false,
        );
        out.narrow(0, start, n)
            .view([1, n, heads, d])
            .copy_(&o.transpose(1, 2));
    }
    out
}
