//! Criterion benchmarks of the per-document stages on generated mixed Chinese/English text
//! (`cargo bench -p flagdata`); `flagdata bench` measures the same on the real corpus against
//! datatrove.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flagdata::dedup::minhash::{MinHashConfig, MinHasher};
use flagdata::filter::gopher::{GopherQuality, GopherRepetition};
use flagdata::filter::text::words;

/// About 64 KB of text: Chinese sentences and English ones, deterministic.
fn text() -> String {
    let zh = [
        "人民日报发表社论，迎接新的一年。",
        "深化改革，扩大开放，促进经济发展。",
        "我们要坚持解放思想、实事求是。",
    ];
    let en = [
        "To be, or not to be, that is the question. ",
        "The quick brown fox jumps over the lazy dog. ",
        "All the world's a stage, and all the men and women merely players. ",
    ];
    let mut s = String::new();
    let mut i = 0usize;
    while s.len() < 64 * 1024 {
        s.push_str(zh[i % 3]);
        s.push_str(en[(i * 7) % 3]);
        if i % 5 == 4 {
            s.push('\n');
        }
        i += 1;
    }
    s
}

fn stages(c: &mut Criterion) {
    let t = text();
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(t.len() as u64));
    g.bench_function("words", |b| b.iter(|| words(&t).len()));
    let mh = MinHasher::new(&MinHashConfig::default());
    g.bench_function("minhash_signature", |b| b.iter(|| mh.signature(&t)));
    let q = GopherQuality::default();
    g.bench_function("gopher_quality", |b| b.iter(|| q.check(&t)));
    let r = GopherRepetition::default();
    g.bench_function("gopher_repetition", |b| b.iter(|| r.check(&t)));
    g.bench_function("nfkc", |b| b.iter(|| flagdata::clean::nfkc(&t).len()));
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
