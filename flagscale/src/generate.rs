//! Generation with a KV cache (greedy, temperature, top-k, top-p, stop strings, seeded
//! sampling) and the per-token log-probabilities of a given text, which evaluation scores with.

use crate::model::{KvCache, Llama};
use crate::{Error, Result};
use flagcore::rng::Rng;
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
    let mut out = generate_batch(
        model,
        tokenizer,
        &mut [BatchRequest {
            prompt,
            params: p,
            on_text,
        }],
    )?;
    Ok(out.remove(0))
}

/// One prompt of a batch: its sampling settings and where its text goes as it settles.
pub struct BatchRequest<'a> {
    pub prompt: &'a [u32],
    pub params: &'a SamplingParams,
    pub on_text: &'a mut dyn FnMut(&str) -> bool,
}

impl std::fmt::Debug for BatchRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchRequest")
            .field("prompt", &self.prompt.len())
            .field("params", self.params)
            .finish()
    }
}

/// The decoding state of one sequence: sampling, stop rules and streaming of settled text.
struct Row<'a> {
    p: &'a SamplingParams,
    rng: Rng,
    out: Generation,
    sent: usize,
    on_text: &'a mut dyn FnMut(&str) -> bool,
    done: bool,
}

impl<'a> Row<'a> {
    fn new(p: &'a SamplingParams, on_text: &'a mut dyn FnMut(&str) -> bool) -> Self {
        let mut row = Row {
            p,
            rng: Rng::new(p.seed),
            out: Generation {
                tokens: vec![],
                text: String::new(),
                logprobs: vec![],
                finish_reason: FinishReason::Length,
            },
            sent: 0,
            on_text,
            done: false,
        };
        if p.max_new_tokens == 0 {
            row.finish(FinishReason::Length);
        }
        row
    }

    /// Hands on the text that can no longer change (all of it once `done`).
    fn emit(&mut self, done: bool) -> bool {
        let text = &self.out.text;
        let end = if done {
            text.len()
        } else {
            settled(text, &self.p.stop)
        };
        if end > self.sent {
            let piece = &text[self.sent..end];
            self.sent = end;
            return (self.on_text)(piece);
        }
        true
    }

    fn finish(&mut self, reason: FinishReason) {
        self.done = true;
        self.out.finish_reason = reason;
        if reason != FinishReason::Cancelled {
            self.emit(true);
        }
    }

    /// Takes the logits of the next position; returns the token to feed back, or `None`
    /// once the sequence is finished.
    fn step(&mut self, logits: &[f64], tokenizer: &tokenizers::Tokenizer) -> Result<Option<u32>> {
        let next = pick(logits, self.p, &mut self.rng) as u32;
        if self.p.eos.contains(&next) {
            self.finish(FinishReason::Eos);
            return Ok(None);
        }
        self.out.logprobs.push(log_softmax(logits)[next as usize]);
        self.out.tokens.push(next);
        self.out.text = tokenizer
            .decode(&self.out.tokens, true)
            .map_err(|e| Error::Invalid(format!("decoding: {e}")))?;
        if let Some(at) = self
            .p
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.out.text.find(s.as_str()))
            .min()
        {
            self.out.text.truncate(at);
            self.finish(FinishReason::Stop);
            return Ok(None);
        }
        if !self.emit(false) {
            self.finish(FinishReason::Cancelled);
            return Ok(None);
        }
        if self.out.tokens.len() >= self.p.max_new_tokens {
            self.finish(FinishReason::Length);
            return Ok(None);
        }
        Ok(Some(next))
    }
}

/// Rows of logits (B, vocab) at the last position, as f64 on the host.
fn last_rows(logits: &Tensor) -> Vec<Vec<f64>> {
    let rows = logits
        .select(1, -1)
        .to_kind(Kind::Double)
        .to_device(tch::Device::Cpu);
    (0..rows.size()[0])
        .map(|b| Vec::<f64>::try_from(&rows.get(b)).unwrap_or_default())
        .collect()
}

/// Generates for several prompts at once: prompts are left-padded to one length, every row
/// gets its own positions and a mask that hides the padding, and each step decodes one token
/// for every unfinished row against a shared KV cache. A row's tokens are those it would get
/// alone (up to float rounding of the batched kernels).
pub fn generate_batch(
    model: &Llama,
    tokenizer: &tokenizers::Tokenizer,
    requests: &mut [BatchRequest<'_>],
) -> Result<Vec<Generation>> {
    let context = model.config.max_position_embeddings as i64;
    let lens: Vec<i64> = requests.iter().map(|r| r.prompt.len() as i64).collect();
    if lens.contains(&0) {
        return Err(Error::Invalid("a prompt has no tokens".into()));
    }
    // Checked here on the host: the batched path skips the model's own (device) check.
    let vocab = model.config.vocab_size as u32;
    if let Some(bad) = requests
        .iter()
        .flat_map(|r| r.prompt)
        .find(|&&t| t >= vocab)
    {
        return Err(Error::Invalid(format!(
            "token id {bad} is outside the model's vocabulary of {vocab}"
        )));
    }
    let longest = lens.iter().copied().max().unwrap_or(0);
    if longest > context {
        return Err(Error::Invalid(format!(
            "{longest} prompt tokens exceed the model's context of {context}"
        )));
    }
    let device = model.device();
    let b = requests.len() as i64;
    let pads: Vec<i64> = lens.iter().map(|l| longest - l).collect();
    let mut ids = Vec::with_capacity((b * longest) as usize);
    for (r, &pad) in requests.iter().zip(&pads) {
        ids.extend(std::iter::repeat_n(0i64, pad as usize));
        ids.extend(r.prompt.iter().map(|&t| t as i64));
    }
    let pads_t = Tensor::from_slice(&pads).to_device(device).view([b, 1]);
    let mut rows: Vec<Row<'_>> = requests
        .iter_mut()
        .map(|r| Row::new(r.params, &mut *r.on_text))
        .collect();
    let mut cache = KvCache::new();
    let ids = Tensor::from_slice(&ids)
        .view([b, longest])
        .to_device(device);
    let mut logits = if b == 1 {
        // Nothing to hide: the plain causal path.
        model.forward_cached(&ids, Some(&mut cache))?
    } else {
        let cols = Tensor::arange(longest, (Kind::Int64, device)).view([1, longest]);
        let positions = (&cols - &pads_t).clamp_min(0);
        let (q, k) = (cols.view([1, longest, 1]), cols.view([1, 1, longest]));
        let real = k.ge_tensor(&pads_t.view([b, 1, 1]));
        // A padding query attends itself only, so its softmax row is never empty.
        let mask = k
            .le_tensor(&q)
            .logical_and(&real)
            .logical_or(&k.eq_tensor(&q));
        model.forward_masked(&ids, &positions, &mask.unsqueeze(1), Some(&mut cache))
    };
    let mut len = longest;
    loop {
        let row_logits = last_rows(&logits);
        let mut next = vec![0i64; b as usize];
        for (i, row) in rows.iter_mut().enumerate() {
            if !row.done {
                if let Some(t) = row.step(&row_logits[i], tokenizer)? {
                    next[i] = t as i64;
                }
            }
        }
        if rows.iter().all(|r| r.done) {
            break;
        }
        if len >= context {
            for row in rows.iter_mut().filter(|r| !r.done) {
                row.finish(FinishReason::Length);
            }
            break;
        }
        let next = Tensor::from_slice(&next).view([b, 1]).to_device(device);
        logits = if b == 1 {
            model.forward_cached(&next, Some(&mut cache))?
        } else {
            let positions = (-&pads_t + len).view([b, 1]);
            let keys = Tensor::arange(len + 1, (Kind::Int64, device)).view([1, len + 1]);
            let mask = keys.ge_tensor(&pads_t).view([b, 1, 1, len + 1]);
            model.forward_masked(&next, &positions, &mask, Some(&mut cache))
        };
        len += 1;
    }
    Ok(rows.into_iter().map(|r| r.out).collect())
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
        let mut rng = Rng::new(1);
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
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        assert!((0..20).all(|_| pick(&logits, &free, &mut a) == pick(&logits, &free, &mut b)));
    }
}
