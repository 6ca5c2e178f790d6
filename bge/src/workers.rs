//! Batches on the CPU by one worker per libtorch thread, each running libtorch on one thread
//! and taking the next batch when done. libtorch's own threads fork and join at every
//! operator (hundreds per batch). Measured on 2 Sapphire Rapids cores before the CPU plan
//! (`bert/cpu.rs`): disfl_qa's mixed questions and paragraphs embedded at 235 f32 / 620 bf16
//! sentences/s against 186 / 519 one batch at a time on both threads (`bge bench`, MiniLM,
//! batch size 32). The batch size stays what the caller asked for.

use crate::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `run(model, batch)` over inputs of lengths `lens`, `batch_size` of them a batch, longest
/// first (so padding is small), on workers as [`each_batch`] runs them; `run` gets a batch as
/// indices into the inputs and gives one result per input, and the results come back in the
/// inputs' order.
pub(crate) fn by_length<M: Send, T: Send>(
    lens: &[usize],
    batch_size: usize,
    cpu: bool,
    share: impl Fn() -> M,
    run: impl Fn(&M, &[usize]) -> Result<Vec<T>> + Sync,
) -> Result<Vec<T>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
    let chunks: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
    let batches = each_batch(cpu, share, &chunks, |m, chunk| run(m, chunk));
    let mut out: Vec<Option<T>> = lens.iter().map(|_| None).collect();
    for (chunk, results) in chunks.iter().zip(batches) {
        let results = results?;
        if results.len() != chunk.len() {
            return Err(Error::Invalid(format!(
                "{} results for a batch of {} inputs",
                results.len(),
                chunk.len()
            )));
        }
        for (&i, r) in chunk.iter().zip(results) {
            out[i] = Some(r);
        }
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every input is in one batch"))
        .collect())
}

/// `run(model, batch)` for every batch, in the batches' order: where the model is on the CPU
/// (`cpu`), libtorch has several threads and there are several batches, on workers, each with
/// its own `share()` of the model (a shallow copy: libtorch's tensors are not `Sync`); else
/// one after the other on the calling thread.
fn each_batch<M: Send, B: Sync, T: Send>(
    cpu: bool,
    share: impl Fn() -> M,
    batches: &[B],
    run: impl Fn(&M, &B) -> Result<T> + Sync,
) -> Vec<Result<T>> {
    let threads = tch::get_num_threads().max(1) as usize;
    if !cpu || threads < 2 || batches.len() < 2 {
        let model = share();
        return batches.iter().map(|b| run(&model, b)).collect();
    }
    // set_num_threads also sets the count threads start with: put back when done, a worker's
    // panic (which the server catches) included.
    struct Restore(i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            tch::set_num_threads(self.0);
        }
    }
    let _restore = Restore(threads as i32);
    let (next, run) = (AtomicUsize::new(0), &run);
    let done: Vec<(usize, Result<T>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(batches.len()))
            .map(|_| {
                let (model, next) = (share(), &next);
                s.spawn(move || {
                    tch::set_num_threads(1);
                    let mut done = Vec::new();
                    loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        let Some(batch) = batches.get(j) else {
                            break done;
                        };
                        done.push((j, run(&model, batch)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out: Vec<Option<Result<T>>> = batches.iter().map(|_| None).collect();
    for (j, r) in done {
        out[j] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every batch ran"))
        .collect()
}
