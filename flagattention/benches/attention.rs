//! Criterion benchmarks (`cargo bench -p flagattention [--features tch]`): forward and
//! backward of ours at B = 1, H = 4, M = N ∈ {1024, 2048}, D ∈ {64, 128}, causal and not,
//! f32. Throughput is counted in FLOPs by FlashAttention's formula (forward 4·B·H·M·N·D,
//! backward 2.5× that, causal half), so criterion's "elem/s" read as FLOP/s. With the `tch`
//! feature the same groups also time libtorch's CPU `scaled_dot_product_attention` and the
//! naive formula (matmul, softmax, matmul) through libtorch, in the same run.
//! `flagattention bench` prints the same comparison as a table with ratios and peak memory.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flagattention::{flash_attention, flash_attention_backward, Options};
use flagcore::TensorView;
use std::time::Duration;

const SHAPES: [(usize, usize); 4] = [(1024, 64), (2048, 64), (1024, 128), (2048, 128)];
const B: usize = 1;
const H: usize = 4;

fn inputs(n: usize, d: usize) -> Vec<f32> {
    (0..4 * B * H * n * d)
        .map(|j| ((j as f32 * 0.618_034).fract() - 0.5) * 2.0)
        .collect()
}

fn flops(n: usize, d: usize, causal: bool) -> u64 {
    let f = 4 * B * H * n * n * d;
    (if causal { f / 2 } else { f }) as u64
}

fn attention(c: &mut Criterion) {
    for (pass, factor) in [("forward", 2), ("backward", 5)] {
        let mut g = c.benchmark_group(pass);
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for (n, d) in SHAPES {
            let x = inputs(n, d);
            let len = B * H * n * d;
            let view = |k: usize| {
                TensorView::from_slice(&x[k * len..(k + 1) * len], &[B, H, n, d]).unwrap()
            };
            let (q, k, v, d_o) = (view(0), view(1), view(2), view(3));
            for causal in [false, true] {
                let id = format!("n{n}_d{d}_{}", if causal { "causal" } else { "full" });
                g.throughput(Throughput::Elements(flops(n, d, causal) * factor / 2));
                let opts = Options {
                    causal,
                    ..Options::new(d)
                };
                if pass == "forward" {
                    g.bench_function(BenchmarkId::new("ours", &id), |b| {
                        b.iter(|| flash_attention(&q, &k, &v, opts).unwrap())
                    });
                } else {
                    let fwd = flash_attention(&q, &k, &v, opts).unwrap();
                    g.bench_function(BenchmarkId::new("ours", &id), |b| {
                        b.iter(|| flash_attention_backward(&q, &k, &v, &fwd, &d_o, opts).unwrap())
                    });
                }
                #[cfg(feature = "tch")]
                peers::bench(&mut g, pass, &id, &x, [B, H, n, d], causal);
            }
        }
        g.finish();
    }
}

#[cfg(feature = "tch")]
mod peers {
    use criterion::{measurement::WallTime, BenchmarkGroup, BenchmarkId};
    use std::time::{Duration, Instant};
    use tch::{Kind, Tensor};

    type Attend<'a> = dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor + 'a;

    /// libtorch's SDPA and the naive formula on the same inputs; the backward times only
    /// `backward()`, after a forward with autograd.
    pub fn bench(
        g: &mut BenchmarkGroup<'_, WallTime>,
        pass: &str,
        id: &str,
        x: &[f32],
        shape: [usize; 4],
        causal: bool,
    ) {
        let dims: Vec<i64> = shape.iter().map(|&s| s as i64).collect();
        let len = x.len() / 4;
        let t = |k: usize| Tensor::from_slice(&x[k * len..(k + 1) * len]).view(dims.as_slice());
        let (q, k, v, d_o) = (t(0), t(1), t(2), t(3));
        let sdpa = |q: &Tensor, k: &Tensor, v: &Tensor| {
            Tensor::scaled_dot_product_attention(q, k, v, None::<Tensor>, 0.0, causal, None, false)
        };
        let naive = |q: &Tensor, k: &Tensor, v: &Tensor| {
            let n = shape[2] as i64;
            let s = q.matmul(&k.transpose(-2, -1)) / (shape[3] as f64).sqrt();
            let s = match causal {
                true => {
                    let mask = Tensor::ones([n, n], (Kind::Bool, tch::Device::Cpu)).tril(0);
                    s.masked_fill(&mask.logical_not(), f64::NEG_INFINITY)
                }
                false => s,
            };
            s.softmax(-1, Kind::Float).matmul(v)
        };
        let peers: [(&str, &Attend<'_>); 2] = [("libtorch_sdpa", &sdpa), ("naive", &naive)];
        for (name, f) in peers {
            if pass == "forward" {
                g.bench_function(BenchmarkId::new(name, id), |b| {
                    b.iter(|| tch::no_grad(|| f(&q, &k, &v)))
                });
            } else {
                g.bench_function(BenchmarkId::new(name, id), |b| {
                    b.iter_custom(|iters| {
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            let [qg, kg, vg] =
                                [&q, &k, &v].map(|t| t.copy().set_requires_grad(true));
                            let loss = (f(&qg, &kg, &vg) * &d_o).sum(Kind::Float);
                            let start = Instant::now();
                            loss.backward();
                            spent += start.elapsed();
                        }
                        spent
                    })
                });
            }
        }
    }
}

criterion_group!(benches, attention);
criterion_main!(benches);
