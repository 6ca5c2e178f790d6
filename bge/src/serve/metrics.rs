//! Prometheus text exposition of the server's counters and histograms (request latency per
//! route, forward-batch sizes), lock-free: every bucket is an atomic.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// A cumulative histogram over fixed upper bounds (Prometheus `le` buckets).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations in micro-units (µs for seconds), to stay atomic.
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of `name` with `labels` (`k="v"`
    /// pairs, comma-separated, or empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut acc = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            acc += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {acc}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

const SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The routes whose latency is measured, in exposition order.
pub const ROUTES: &[&str] = &[
    "/embed",
    "/embed_all",
    "/embed_sparse",
    "/embed_colbert",
    "/rerank",
    "/v1/embeddings",
];

#[derive(Debug)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub inputs: AtomicU64,
    pub tokens: AtomicU64,
    pub errors: AtomicU64,
    latency: Vec<Histogram>,
    pub batch_size: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: AtomicU64::new(0),
            inputs: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: ROUTES.iter().map(|_| Histogram::new(SECONDS)).collect(),
            batch_size: Histogram::new(SIZES),
        }
    }
}

impl Metrics {
    /// Records one answered request of `route` (successful or not) taking `seconds`.
    pub fn observe_request(&self, route: &str, seconds: f64) {
        if let Some(i) = ROUTES.iter().position(|r| *r == route) {
            self.latency[i].observe(seconds);
        }
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        for (name, help, v) in [
            (
                "bge_requests_total",
                "Model requests received.",
                &self.requests,
            ),
            (
                "bge_inputs_total",
                "Inputs (texts or pairs) run.",
                &self.inputs,
            ),
            ("bge_tokens_total", "Tokens run.", &self.tokens),
            (
                "bge_errors_total",
                "Requests answered with an error.",
                &self.errors,
            ),
        ] {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            );
        }
        let name = "bge_request_duration_seconds";
        let _ = write!(
            text,
            "# HELP {name} Time from a request's arrival to its answer.\n# TYPE {name} histogram\n"
        );
        for (route, h) in ROUTES.iter().zip(&self.latency) {
            h.render(&mut text, name, &format!("route=\"{route}\""));
        }
        let name = "bge_batch_size";
        let _ = write!(
            text,
            "# HELP {name} Inputs per forward batch (requests batched together).\n# TYPE {name} histogram\n"
        );
        self.batch_size.render(&mut text, name, "");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.5, 0.7, 3.0] {
            h.observe(v);
        }
        let mut s = String::new();
        h.render(&mut s, "x", "route=\"/embed\"");
        assert!(
            s.contains("x_bucket{route=\"/embed\",le=\"0.1\"} 1\n"),
            "{s}"
        );
        assert!(s.contains("x_bucket{route=\"/embed\",le=\"1\"} 3\n"), "{s}");
        assert!(
            s.contains("x_bucket{route=\"/embed\",le=\"+Inf\"} 4\n"),
            "{s}"
        );
        assert!(s.contains("x_sum{route=\"/embed\"} 4.25\n"), "{s}");
        assert!(s.contains("x_count{route=\"/embed\"} 4\n"), "{s}");
    }
}
