//! Scoring token rows with shared work: rows with the same context form a group whose context
//! runs once; the groups of a batch (longest first) run their longest common prefix (the
//! few-shot examples) once; each row then runs only its continuation, attending the cached
//! context. lm-eval's `hf` backend feeds every context + continuation
//! whole (sharing only single-token continuations); the log-probabilities are the same sums.

use crate::Result;
use flagscale::model::{KvCache, Llama};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// Context and continuation tokens: both non-empty, together at most the context window + 1.
#[derive(Clone, Debug)]
pub struct Row {
    pub ctx: Vec<i64>,
    pub cont: Vec<i64>,
}

struct Group<'a> {
    ctx: &'a [i64],
    members: Vec<usize>,
}

/// (summed log-probability, greedy) of every row's continuation.
pub fn score(model: &Llama, rows: &[Row], budget: usize) -> Result<Vec<(f64, bool)>> {
    if rows.iter().any(|r| r.ctx.is_empty() || r.cont.is_empty()) {
        return Err(crate::Error::Invalid(
            "a scoring row needs context and continuation tokens".into(),
        ));
    }
    let mut index: HashMap<&[i64], usize> = HashMap::new();
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let g = *index.entry(&r.ctx).or_insert_with(|| {
            groups.push(Group {
                ctx: &r.ctx,
                members: Vec::new(),
            });
            groups.len() - 1
        });
        groups[g].members.push(i);
    }
    // Longest contexts first, so a batch pads little; a batch's common prefix (few-shot
    // examples every context starts with) is found whatever the order.
    groups.sort_by(|a, b| b.ctx.len().cmp(&a.ctx.len()).then(a.ctx.cmp(b.ctx)));
    // A group whose continuations alone exceed the budget (rolling windows all start from the
    // end-of-text token) is split: longest continuations first, as many as fit.
    let mut split = Vec::with_capacity(groups.len());
    for g in groups {
        let mut members = g.members;
        members.sort_by_key(|&i| std::cmp::Reverse(rows[i].cont.len()));
        let mut start = 0;
        while start < members.len() {
            let width = rows[members[start]].cont.len().max(1);
            let n = (budget / width).max(1).min(members.len() - start);
            split.push(Group {
                ctx: g.ctx,
                members: members[start..start + n].to_vec(),
            });
            start += n;
        }
    }
    let groups = split;
    let mut out = vec![(0.0, false); rows.len()];
    let mut start = 0;
    while start < groups.len() {
        // Padded tokens of the batch so far: contexts and continuations each padded to their
        // longest.
        let (mut n_ctx, mut n_cont, mut w_ctx, mut w_cont, mut end) = (0, 0, 0, 0, start);
        while end < groups.len() {
            let g = &groups[end];
            let wc = w_ctx.max(g.ctx.len());
            let wk = g
                .members
                .iter()
                .map(|&i| rows[i].cont.len())
                .fold(w_cont, usize::max);
            // Each multi-token continuation also holds a copy of its context's cache.
            let cost = (n_ctx + 1) * wc + (n_cont + g.members.len()) * (wk + wc);
            if end > start && cost > budget {
                break;
            }
            (w_ctx, w_cont) = (wc, wk);
            n_ctx += 1;
            n_cont += g.members.len();
            end += 1;
        }
        batch(model, rows, &groups[start..end], &mut out)?;
        start = end;
    }
    Ok(out)
}

fn common_prefix(groups: &[Group<'_>]) -> usize {
    let first = groups[0].ctx;
    // Every group keeps at least its last context token: it predicts the continuation's first.
    let mut n = groups.iter().map(|g| g.ctx.len()).min().unwrap_or(1) - 1;
    for g in &groups[1..] {
        n = n.min(first.iter().zip(g.ctx).take_while(|(a, b)| a == b).count());
    }
    n
}

fn padded(seqs: &[&[i64]], width: usize, device: tch::Device) -> Tensor {
    let mut ids = Vec::with_capacity(seqs.len() * width);
    for s in seqs {
        ids.extend_from_slice(s);
        ids.resize(ids.len() + width - s.len(), 0);
    }
    Tensor::from_slice(&ids)
        .view([seqs.len() as i64, width as i64])
        .to_device(device)
}

fn batch(model: &Llama, rows: &[Row], groups: &[Group<'_>], out: &mut [(f64, bool)]) -> Result<()> {
    let device = model.device();
    let shared = common_prefix(groups);
    let mut cache = KvCache::new();
    if shared > 0 {
        let prefix = Tensor::from_slice(&groups[0].ctx[..shared])
            .view([1, shared as i64])
            .to_device(device);
        let _ = tch::no_grad(|| model.hidden_cached(&prefix, &mut cache))?;
        let zeros = Tensor::zeros([groups.len() as i64], (Kind::Int64, device));
        cache = cache.select(&zeros);
    }
    let rests: Vec<&[i64]> = groups.iter().map(|g| &g.ctx[shared..]).collect();
    let w_ctx = rests.iter().map(|r| r.len()).max().unwrap_or(1);
    let h_ctx = tch::no_grad(|| model.hidden_cached(&padded(&rests, w_ctx, device), &mut cache))?;

    // Continuations of two or more tokens run after their group's cached context.
    let long: Vec<(usize, usize)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, grp)| grp.members.iter().map(move |&i| (g, i)))
        .filter(|&(_, i)| rows[i].cont.len() > 1)
        .collect();
    let h_cont = if long.is_empty() {
        None
    } else {
        let feeds: Vec<&[i64]> = long
            .iter()
            .map(|&(_, i)| &rows[i].cont[..rows[i].cont.len() - 1])
            .collect();
        let w = feeds.iter().map(|f| f.len()).max().unwrap_or(1) as i64;
        let past = (shared + w_ctx) as i64;
        let own: Vec<i64> = long
            .iter()
            .map(|&(g, _)| (shared + rests[g].len()) as i64)
            .collect();
        let own = Tensor::from_slice(&own).to_device(device).view([-1, 1]);
        let steps = Tensor::arange(w, (Kind::Int64, device)).view([1, w]);
        let positions = &own + &steps;
        let keys = Tensor::arange(past + w, (Kind::Int64, device)).view([1, 1, past + w]);
        let queries = steps.view([1, w, 1]);
        let context_keys = keys.lt_tensor(&own.view([-1, 1, 1]));
        let own_keys = keys
            .ge(past)
            .logical_and(&(&keys - past).le_tensor(&queries));
        let mask = context_keys.logical_or(&own_keys).unsqueeze(1);
        let pick: Vec<i64> = long.iter().map(|&(g, _)| g as i64).collect();
        let mut rows_cache = cache.select(&Tensor::from_slice(&pick).to_device(device));
        let ids = padded(&feeds, w as usize, device);
        Some(tch::no_grad(|| {
            model.hidden_masked(&ids, &positions, &mask, &mut rows_cache)
        }))
    };

    // Hidden states that predict each continuation token, then logits for those only.
    let mut picks = Vec::new();
    let mut spans = Vec::new();
    let mut n_long = 0;
    for (g, grp) in groups.iter().enumerate() {
        let last = h_ctx
            .get(g as i64)
            .get(rests[g].len() as i64 - 1)
            .unsqueeze(0);
        for &i in &grp.members {
            let n = rows[i].cont.len();
            picks.push(last.shallow_clone());
            if n > 1 {
                let h = h_cont
                    .as_ref()
                    .map(|h| h.get(n_long).narrow(0, 0, n as i64 - 1));
                picks.extend(h);
                n_long += 1;
            }
            spans.push((i, n));
        }
    }
    let lp = tch::no_grad(|| {
        model
            .head(&Tensor::cat(&picks, 0))
            .to_kind(Kind::Float)
            .log_softmax(-1, Kind::Float)
    });
    let targets: Vec<i64> = spans
        .iter()
        .flat_map(|&(i, _)| rows[i].cont.iter().copied())
        .collect();
    let targets = Tensor::from_slice(&targets).to_device(lp.device());
    let picked = Vec::<f64>::try_from(
        lp.gather(1, &targets.unsqueeze(1), false)
            .squeeze_dim(1)
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu),
    )
    .map_err(|e| crate::Error::Invalid(format!("reading log-probabilities: {e}")))?;
    let best = Vec::<i64>::try_from(lp.argmax(-1, false).to_device(tch::Device::Cpu))
        .map_err(|e| crate::Error::Invalid(format!("reading argmax: {e}")))?;
    let mut at = 0;
    for (i, n) in spans {
        let sum: f64 = picked[at..at + n].iter().sum();
        let greedy = rows[i]
            .cont
            .iter()
            .zip(&best[at..at + n])
            .all(|(t, b)| t == b);
        out[i] = (sum, greedy);
        at += n;
    }
    Ok(())
}
