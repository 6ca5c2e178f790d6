//! `flagattention bench`: forward and backward throughput (GFLOP/s by FlashAttention's count:
//! forward 4·B·H·M·N·D, backward 2.5× that, causal half) of ours and of libtorch's CPU
//! `scaled_dot_product_attention` (run by `scripts/sdpa_bench.py` in the same invocation),
//! with the ratio, and the process's peak RSS after each of our runs.

use clap::Parser;
use flagattention::{flash_attention, flash_attention_backward, Options};
use flagcore::TensorView;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "flagattention",
    version,
    about = "Attention kernels: benchmark"
)]
enum Cli {
    /// Ours vs libtorch SDPA on the CPU, f32, M = N.
    Bench {
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        heads: usize,
        #[arg(long, value_delimiter = ',', default_value = "1024,2048,4096")]
        n: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "64,128")]
        d: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
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

fn best<T>(repeats: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<f64> {
    f()?;
    let mut t = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let start = std::time::Instant::now();
        f()?;
        t = t.min(start.elapsed().as_secs_f64());
    }
    Ok(t)
}

fn main() -> anyhow::Result<()> {
    let Cli::Bench {
        batch,
        heads,
        n,
        d,
        repeats,
        no_peer,
        forward_only,
        python,
        script,
    } = Cli::parse();
    let mut shapes = Vec::new();
    for &dd in &d {
        for &nn in &n {
            for causal in [false, true] {
                shapes.push((nn, dd, causal));
            }
        }
    }
    let peer: Vec<serde_json::Value> = if no_peer {
        Vec::new()
    } else {
        let tmp = std::env::temp_dir().join(format!("flagattention-bench-{}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        let spec: Vec<_> = shapes
            .iter()
            .map(|&(n, d, causal)| serde_json::json!({"b": batch, "h": heads, "n": n, "d": d, "causal": causal, "repeats": repeats}))
            .collect();
        std::fs::write(tmp.join("shapes.json"), serde_json::to_vec(&spec)?)?;
        let run = std::process::Command::new(&python)
            .arg(&script)
            .arg(tmp.join("shapes.json"))
            .arg(tmp.join("out.json"))
            .output()?;
        anyhow::ensure!(
            run.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        let out = serde_json::from_slice(&std::fs::read(tmp.join("out.json"))?)?;
        let _ = std::fs::remove_dir_all(&tmp);
        out
    };
    println!(
        "f32, B = {batch}, H = {heads}, M = N; GFLOP/s (FlashAttention's count); rayon threads {}",
        rayon::current_num_threads()
    );
    println!("| N | D | causal | ours fwd | SDPA fwd | fwd ratio | ours bwd | SDPA bwd | bwd ratio | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (i, &(nn, dd, causal)) in shapes.iter().enumerate() {
        let len = batch * heads * nn * dd;
        let x: Vec<f32> = (0..4 * len)
            .map(|j| ((j as f32 * 0.618_034).fract() - 0.5) * 2.0)
            .collect();
        let view =
            |k: usize| TensorView::from_slice(&x[k * len..(k + 1) * len], &[batch, heads, nn, dd]);
        let (q, k, v, d_o) = (view(0)?, view(1)?, view(2)?, view(3)?);
        let opts = Options {
            causal,
            ..Options::new(dd)
        };
        let fwd = best(repeats, || Ok(flash_attention(&q, &k, &v, opts)?))?;
        let out = flash_attention(&q, &k, &v, opts)?;
        let bwd = match forward_only {
            true => f64::NAN,
            false => best(repeats, || {
                Ok(flash_attention_backward(&q, &k, &v, &out, &d_o, opts)?)
            })?,
        };
        let flops = 4.0 * (batch * heads * nn * nn * dd) as f64 * if causal { 0.5 } else { 1.0 };
        let g = |f: f64, t: f64| f / t / 1e9;
        let (pf, pb) = peer.get(i).map_or((f64::NAN, f64::NAN), |p| {
            (
                p["forward"].as_f64().unwrap_or(f64::NAN),
                p["backward"].as_f64().unwrap_or(f64::NAN),
            )
        });
        println!(
            "| {nn} | {dd} | {causal} | {:.1} | {:.1} | {:.2}× | {:.1} | {:.1} | {:.2}× | {:.0} |",
            g(flops, fwd),
            g(flops, pf),
            pf / fwd,
            g(2.5 * flops, bwd),
            g(2.5 * flops, pb),
            pb / bwd,
            peak_rss_mib()
        );
    }
    Ok(())
}
