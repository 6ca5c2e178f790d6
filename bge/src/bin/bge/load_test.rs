//! `bge load`: a bounded load generator for a running server on loopback.

/// Sentences of varied length for the load test.
fn load_texts(client: usize, n: usize, batch: usize) -> Vec<String> {
    (0..batch)
        .map(|j| {
            let k = client * 7919 + n * 31 + j;
            format!(
                "request {k}: {}",
                "dense retrieval with sentence embeddings ".repeat(1 + k % 12)
            )
        })
        .collect()
}

pub fn load_test(url: &str, clients: usize, seconds: u64, batch: usize) -> anyhow::Result<()> {
    // host[:port] up to the path; brackets around an IPv6 address.
    let authority = url
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(loopback, "--url {url}: load tests target loopback only");
    let endpoint = format!("{}/embed", url.trim_end_matches('/'));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let results: Vec<(Vec<f64>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let endpoint = &endpoint;
                s.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(std::time::Duration::from_secs(30))
                        .build();
                    let (mut lat, mut errors, mut n) = (Vec::new(), 0usize, 0usize);
                    while std::time::Instant::now() < deadline {
                        let body = serde_json::json!({"inputs": load_texts(c, n, batch)});
                        let t = std::time::Instant::now();
                        match agent.post(endpoint).send_json(body) {
                            Ok(r) if r.status() == 200 => lat.push(t.elapsed().as_secs_f64()),
                            _ => errors += 1,
                        }
                        n += 1;
                    }
                    (lat, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            // A client thread that died counts as one error.
            .map(|h| h.join().unwrap_or((Vec::new(), 1)))
            .collect()
    });
    let errors: usize = results.iter().map(|r| r.1).sum();
    let mut lat: Vec<f64> = results.into_iter().flat_map(|r| r.0).collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{clients} clients × {seconds} s, {batch} text(s) per request: {} requests ok, {errors} errors, {:.1} requests/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        lat.len() as f64 / seconds as f64,
        pct(0.5) * 1e3,
        pct(0.99) * 1e3,
        lat.last().copied().unwrap_or(f64::NAN) * 1e3
    );
    anyhow::ensure!(errors == 0, "{errors} requests failed");
    Ok(())
}
