//! Generation with a KV cache (greedy, temperature, top-k, top-p, stop strings, seeded
//! sampling) and the per-token log-probabilities of a given text, which evaluation scores with.

use crate::model::{KvCache, Llama};
use crate::{Error, Result};
use tch::{Kind, Tensor};

#[derive(Clone, Debug)]
pub struct SamplingParams {
    pub max_new_tokens: usize,
    /// 0 means greedy (argmax, ties to the lowest id).
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub seed: u64,
    /// Generation ends before any of these strings; the text stops where it begins.
    pub stop: Vec<String>,
    /// Token ids that end generation (not included in the output).
    pub eos: Vec<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
            stop: vec![],
            eos: vec![],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Length,
    Stop,
    Eos,
    /// The caller asked to stop (a client gone, a deadline passed).
    Cancelled,
}

impl FinishReason {
    /// OpenAI's name for it.
    pub fn as_openai(self) -> &'static str {
        match self {
            FinishReason::Length | FinishReason::Cancelled => "length",
            FinishReason::Stop | FinishReason::Eos => "stop",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    /// Log-probability of each generated token under the model (before temperature).
    pub logprobs: Vec<f64>,
    pub finish_reason: FinishReason,
}

/// The ids of the usual end-of-text tokens this tokenizer has (`</s>`, `<|endoftext|>`,
/// `<|im_end|>`, `<|eot_id|>`).
pub fn eos_ids(tokenizer: &tokenizers::Tokenizer) -> Vec<u32> {
    ["</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>"]
        .iter()
        .filter_map(|t| tokenizer.token_to_id(t))
        .collect()
}

/// SplitMix64: a small seeded generator, so a seed gives the same samples on every device.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn log_softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
    logits.iter().map(|l| l - lse).collect()
}

/// Picks the next token from one row of logits.
fn pick(logits: &[f64], p: &SamplingParams, rng: &mut Rng) -> usize {
    if p.temperature <= 0.0 {
        return logits
            .iter()
            .enumerate()
            .fold(0, |best, (i, &l)| if l > logits[best] { i } else { best });
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| {
        logits[b]
            .partial_cmp(&logits[a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    if let Some(k) = p.top_k.filter(|&k| k > 0) {
        order.truncate(k);
    }
    let scaled: Vec<f64> = order.iter().map(|&i| logits[i] / p.temperature).collect();
    let probs: Vec<f64> = log_softmax(&scaled).into_iter().map(f64::exp).collect();
    let mut keep = probs.len();
    if let Some(top_p) = p.top_p.filter(|&t| t < 1.0) {
        let mut cum = 0.0;
        for (i, q) in probs.iter().enumerate() {
            cum += q;
            if cum >= top_p {
                keep = i + 1;
                break;
            }
        }
    }
    let total: f64 = probs[..keep].iter().sum();
    let mut u = rng.next_f64() * total;
    for (i, q) in probs[..keep].iter().enumerate() {
        if u < *q {
            return order[i];
        }
        u -= q;
    }
    order[keep - 1]
}

fn last_row(logits: &Tensor) -> Vec<f64> {
    let row = logits
        .select(0, 0)
        .select(0, -1)
        .to_kind(Kind::Double)
        .to_device(tch::Device::Cpu);
    Vec::<f64>::try_from(&row).unwrap_or_default()
}

/// Generates after `prompt` (ids). The model runs once over the prompt, then one token at a
/// time against the KV cache.
pub fn generate(
    model: &Llama,
    tokenizer: &tokenizers::Tokenizer,
    prompt: &[u32],
    p: &SamplingParams,
) -> Result<Generation> {
    generate_streaming(model, tokenizer, prompt, p, &mut |_| true)
}

/// How much of `text` can be shown for good: not a trailing part that may still become a
/// stop string, nor a trailing replacement character (a character split across tokens).
fn settled(text: &str, stop: &[String]) -> usize {
    let base = text.trim_end_matches('\u{FFFD}').len();
    let mut end = base;
    for s in stop.iter().filter(|s| !s.is_empty()) {
        for (i, _) in s.char_indices().skip(1) {
            if text[..base].ends_with(&s[..i]) {
                end = end.min(base - i);
            }
        }
    }
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Like [`generate`], handing each new piece of settled text to `on_text` as it appears (its
/// concatenation is the final text); `on_text` returning false stops generation (finish
/// reason `Cancelled`).
pub fn generate_streaming(
    model: &Llama,
    tokenizer: &tokenizers::Tokenizer,
    prompt: &[u32],
    p: &SamplingParams,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation> {
    let mut sent = 0usize;
    let out = generate_inner(model, tokenizer, prompt, p, &mut |text, done| {
        let end = if done {
            text.len()
        } else {
            settled(text, &p.stop)
        };
        if end > sent {
            let piece = &text[sent..end];
            sent = end;
            return on_text(piece);
        }
        true
    })?;
    Ok(out)
}

fn generate_inner(
    model: &Llama,
    tokenizer: &tokenizers::Tokenizer,
    prompt: &[u32],
    p: &SamplingParams,
    progress: &mut dyn FnMut(&str, bool) -> bool,
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(Error::Invalid("the prompt has no tokens".into()));
    }
    let device = model.device();
    let mut cache = KvCache::new();
    let mut rng = Rng(p.seed);
    let ids: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
    let mut logits = model.forward_cached(
        &Tensor::from_slice(&ids).view([1, -1]).to_device(device),
        Some(&mut cache),
    )?;
    let mut out = Generation {
        tokens: vec![],
        text: String::new(),
        logprobs: vec![],
        finish_reason: FinishReason::Length,
    };
    for _ in 0..p.max_new_tokens {
        let row = last_row(&logits);
        let next = pick(&row, p, &mut rng);
        if p.eos.contains(&(next as u32)) {
            out.finish_reason = FinishReason::Eos;
            break;
        }
        out.logprobs.push(log_softmax(&row)[next]);
        out.tokens.push(next as u32);
        out.text = tokenizer
            .decode(&out.tokens, true)
            .map_err(|e| Error::Invalid(format!("decoding: {e}")))?;
        if let Some(at) = p
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| out.text.find(s.as_str()))
            .min()
        {
            out.text.truncate(at);
            out.finish_reason = FinishReason::Stop;
            break;
        }
        if !progress(&out.text, false) {
            out.finish_reason = FinishReason::Cancelled;
            break;
        }
        if cache.len() as usize >= model.config.max_position_embeddings {
            break;
        }
        logits = model.forward_cached(
            &Tensor::from_slice(&[next as i64])
                .view([1, 1])
                .to_device(device),
            Some(&mut cache),
        )?;
    }
    if out.finish_reason != FinishReason::Cancelled {
        progress(&out.text, true);
    }
    Ok(out)
}

/// For each token after the first, its log-probability given the tokens before it (what
/// `loglikelihood` scoring needs): `result[i]` belongs to `ids[i + 1]`.
pub fn token_logprobs(model: &Llama, ids: &[u32]) -> Result<Vec<f64>> {
    if ids.len() < 2 {
        return Ok(vec![]);
    }
    let t: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
    let logits = model.forward(
        &Tensor::from_slice(&t)
            .view([1, -1])
            .to_device(model.device()),
    )?;
    let lp = logits
        .select(0, 0)
        .to_kind(Kind::Double)
        .log_softmax(-1, Kind::Double);
    let targets = Tensor::from_slice(&t[1..])
        .to_device(lp.device())
        .unsqueeze(1);
    let picked = lp
        .narrow(0, 0, t.len() as i64 - 1)
        .gather(1, &targets, false)
        .squeeze_dim(1)
        .to_device(tch::Device::Cpu);
    Ok(Vec::<f64>::try_from(&picked).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_text_never_shows_a_stop_string_in_the_making() {
        let stop = vec!["</end>".to_string()];
        assert_eq!(settled("abc</e", &stop), 3);
        assert_eq!(settled("abc<", &stop), 3);
        assert_eq!(settled("abc", &stop), 3);
        assert_eq!(settled("ab\u{FFFD}", &[]), 2);
        assert_eq!(settled("a</end", &stop), 1);
    }

    #[test]
    fn sampling_rules() {
        let logits = [1.0, 3.0, 2.0, 3.0];
        let mut rng = Rng(1);
        let greedy = SamplingParams::default();
        assert_eq!(
            pick(&logits, &greedy, &mut rng),
            1,
            "ties go to the lowest id"
        );
        let top1 = SamplingParams {
            temperature: 1.0,
            top_k: Some(1),
            ..Default::default()
        };
        assert!((0..50).all(|_| pick(&logits, &top1, &mut rng) == 1));
        let nucleus = SamplingParams {
            temperature: 1.0,
            top_p: Some(0.5),
            ..Default::default()
        };
        assert!((0..200).all(|_| [1, 3].contains(&pick(&logits, &nucleus, &mut rng))));
        let free = SamplingParams {
            temperature: 1.0,
            ..Default::default()
        };
        let mut seen = [0usize; 4];
        for _ in 0..4000 {
            seen[pick(&logits, &free, &mut rng)] += 1;
        }
        // Softmax of (1, 3, 2, 3): 0.0466, 0.3445, 0.1268, 0.3445.
        assert!((seen[2] as f64 / 4000.0 - 0.1268).abs() < 0.02, "{seen:?}");
        let (mut a, mut b) = (Rng(9), Rng(9));
        assert!((0..20).all(|_| pick(&logits, &free, &mut a) == pick(&logits, &free, &mut b)));
    }
}
