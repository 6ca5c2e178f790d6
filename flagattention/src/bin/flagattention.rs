//! `flagattention bench`: forward and backward throughput (GFLOP/s by FlashAttention's count:
//! forward 4·B·H·M·N·D, backward 2.5× that, causal half) of ours, of libtorch's CPU
//! `scaled_dot_product_attention` and of the naive formula through libtorch (both run by
//! `scripts/sdpa_bench.py`, a helper process answering one timing per request), with the
//! ratios and this process's peak RSS. Each round times the peers and then ours on the same
//! shape (a few back-to-back runs each), and each side keeps its fastest, so that both see
//! the same machine load.

use anyhow::Context;
use clap::Parser;
use flagattention::{flash_attention, flash_attention_backward, Options};
use flagcore::TensorView;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

#[derive(Parser, Debug)]
#[command(
    name = "flagattention",
    version,
    about = "Attention kernels: benchmark"
)]
enum Cli {
    /// Ours vs libtorch SDPA and the naive formula on the CPU, f32, M = N.
    Bench {
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        heads: usize,
        #[arg(long, value_delimiter = ',', default_value = "1024,2048,4096,8192")]
        n: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "64,128")]
        d: Vec<usize>,
        /// Rounds per shape; each side keeps its fastest. On a shared machine a slow spell
        /// of seconds can cover one side's round and not the other's: more rounds give both
        /// sides a quiet one (with 3, single shapes came out 5–20 % off on the 2-vCPU VM).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Back-to-back runs per side in each round (the first ones after the other side's
        /// turn find cold caches and sleeping threads).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The naive formula holds N×N matrices: run it up to this N.
        #[arg(long, default_value_t = 4096)]
        naive_max: usize,
        /// Skip libtorch (ours only).
        #[arg(long)]
        no_peer: bool,
        /// Time the forward only (for profiling it alone).
        #[arg(long)]
        forward_only: bool,
        /// A Python with torch importable (PYTHONPATH is passed on).
        #[arg(long, env = "FLAGATTENTION_BENCH_PYTHON", default_value = "python3")]
        python: PathBuf,
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sdpa_bench.py"))]
        script: PathBuf,
    },
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The helper process: one JSON request line in, one JSON timing line out.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn(python: &PathBuf, script: &PathBuf) -> anyhow::Result<Peer> {
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let stdin = child.stdin.take().context("helper stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("helper stdout")?);
        Ok(Peer {
            child,
            stdin,
            stdout,
        })
    }

    fn time(&mut self, request: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        anyhow::ensure!(
            !line.is_empty(),
            "the libtorch helper stopped (its error is above)"
        );
        Ok(serde_json::from_str(&line)?)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pause between the sides: libtorch's OpenMP threads spin for milliseconds after their
/// work (as rayon's do, briefly), and would otherwise take cores from the next timing.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(100));
}

/// Wall time of one call.
fn seconds<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<f64> {
    let start = std::time::Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let Cli::Bench {
        batch,
        heads,
        n,
        d,
        repeats,
        runs,
        naive_max,
        no_peer,
        forward_only,
        python,
        script,
    } = Cli::parse();
    let mut peer = match no_peer {
        true => None,
        false => Some(Peer::spawn(&python, &script)?),
    };
    println!(
        "f32, B = {batch}, H = {heads}, M = N; GFLOP/s (FlashAttention's count), best of \
         {repeats} interleaved rounds of {runs} runs; rayon threads {}",
        rayon::current_num_threads()
    );
    println!("| N | D | causal | ours fwd | SDPA fwd | fwd ratio | naive fwd | ours bwd | SDPA bwd | bwd ratio | naive bwd | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &dd in &d {
        for &nn in &n {
            for causal in [false, true] {
                let len = batch * heads * nn * dd;
                let x: Vec<f32> = (0..4 * len)
                    .map(|j| ((j as f32 * 0.618_034).fract() - 0.5) * 2.0)
                    .collect();
                let shape = [batch, heads, nn, dd];
                let view = |k: usize| TensorView::from_slice(&x[k * len..(k + 1) * len], &shape);
                let (q, k, v, d_o) = (view(0)?, view(1)?, view(2)?, view(3)?);
                let opts = Options {
                    causal,
                    ..Options::new(dd)
                };
                let out = flash_attention(&q, &k, &v, opts)?;
                if !forward_only {
                    flash_attention_backward(&q, &k, &v, &out, &d_o, opts)?;
                }
                let request = serde_json::json!({"b": batch, "h": heads, "n": nn, "d": dd,
                    "causal": causal, "naive": nn <= naive_max, "runs": runs});
                // ours fwd, ours bwd, SDPA fwd, SDPA bwd, naive fwd, naive bwd
                let mut best = [f64::INFINITY; 6];
                for _ in 0..repeats.max(1) {
                    if let Some(peer) = peer.as_mut() {
                        settle();
                        let t = peer.time(&request)?;
                        settle();
                        for (slot, key) in [(2, "forward"), (3, "backward")]
                            .into_iter()
                            .chain([(4, "naive_forward"), (5, "naive_backward")])
                        {
                            let s = t[key].as_f64().unwrap_or(f64::INFINITY);
                            best[slot] = best[slot].min(s);
                        }
                    }
                    for _ in 0..runs.max(1) {
                        let fwd = seconds(|| Ok(flash_attention(&q, &k, &v, opts)?))?;
                        best[0] = best[0].min(fwd);
                    }
                    for _ in 0..runs.max(1) * usize::from(!forward_only) {
                        let bwd = seconds(|| {
                            Ok(flash_attention_backward(&q, &k, &v, &out, &d_o, opts)?)
                        })?;
                        best[1] = best[1].min(bwd);
                    }
                }
                let flops = 4.0 * len as f64 * nn as f64 * if causal { 0.5 } else { 1.0 };
                let g = |f: f64, t: f64| match t.is_finite() {
                    true => format!("{:.1}", f / t / 1e9),
                    false => "—".into(),
                };
                let ratio = |ours: f64, peer: f64| match ours.is_finite() && peer.is_finite() {
                    true => format!("{:.3}×", peer / ours),
                    false => "—".into(),
                };
                println!(
                    "| {nn} | {dd} | {causal} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                    g(flops, best[0]),
                    g(flops, best[2]),
                    ratio(best[0], best[2]),
                    g(flops, best[4]),
                    g(2.5 * flops, best[1]),
                    g(2.5 * flops, best[3]),
                    ratio(best[1], best[3]),
                    g(2.5 * flops, best[5]),
                    peak_rss_mib()
                );
            }
        }
    }
    Ok(())
}
