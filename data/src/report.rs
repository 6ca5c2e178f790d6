//! The run report: `stats.json` (machine-readable) and `report.md` (self-contained Markdown
//! with text bar charts), written beside the outputs.

use crate::dedup::DedupStats;
use crate::pipeline::Stats;
use crate::{Error, Result};
use std::fmt::Write;
use std::path::Path;

fn bar(value: u64, max: u64, width: usize) -> String {
    let n = if max == 0 {
        0
    } else {
        ((value as f64 / max as f64) * width as f64).round() as usize
    };
    "█".repeat(n)
}

fn pct(a: u64, b: u64) -> String {
    format!("{:.1}%", 100.0 * a as f64 / b.max(1) as f64)
}

/// The Markdown text of a report.
pub fn markdown(name: &str, stats: &Stats, dedup: Option<&DedupStats>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# flagdata report: {name}\n");
    let _ = writeln!(md, "| | documents | characters |\n|---|---:|---:|");
    let _ = writeln!(md, "| read | {} | {} |", stats.documents_in, stats.chars_in);
    let _ = writeln!(
        md,
        "| kept after steps | {} ({}) | {} |",
        stats.documents_out,
        pct(stats.documents_out, stats.documents_in),
        stats.chars_out
    );
    if let Some(d) = dedup {
        let _ = writeln!(
            md,
            "| kept after dedup | {} ({}) | |",
            d.documents_out,
            pct(d.documents_out, stats.documents_in)
        );
    }
    if stats.tokens_in > 0 {
        let kept = pct(stats.tokens_out, stats.tokens_in);
        let _ = writeln!(
            md,
            "| tokens read → kept | {} → {} ({kept}) | |",
            stats.tokens_in, stats.tokens_out
        );
    }
    let _ = writeln!(
        md,
        "\nShards: {}. Input records: {}.\n",
        stats.shards, stats.records_read
    );
    let _ = writeln!(
        md,
        "## Steps\n\n| step | in | out | dropped | chars in → out |\n|---|---:|---:|---:|---:|"
    );
    for s in &stats.steps {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} → {} |",
            s.name,
            s.documents_in,
            s.documents_out,
            s.documents_in - s.documents_out,
            s.chars_in,
            s.chars_out
        );
    }
    let mut reasons: Vec<(String, u64)> = stats
        .steps
        .iter()
        .flat_map(|s| {
            s.dropped
                .iter()
                .map(move |(r, n)| (format!("{}: {r}", s.name), *n))
        })
        .collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    if !reasons.is_empty() {
        let max = reasons[0].1;
        let _ = writeln!(md, "\n## Drop reasons\n\n```");
        for (r, n) in &reasons {
            let _ = writeln!(md, "{r:<40} {n:>9} {}", bar(*n, max, 40));
        }
        let _ = writeln!(md, "```");
    }
    if let Some(d) = dedup {
        let _ = writeln!(md, "\n## Deduplication\n\n| | |\n|---|---:|");
        let _ = writeln!(
            md,
            "| exact duplicates | {} |\n| near duplicates | {} |\n| duplicate rate | {:.2}% |",
            d.exact_duplicates,
            d.near_duplicates,
            100.0 * d.duplicate_rate()
        );
        let _ = writeln!(
            md,
            "| clusters | {} |\n| largest cluster | {} |\n| too short to shingle | {} |",
            d.clusters, d.largest_cluster, d.unshingled
        );
    }
    if !stats.languages.is_empty() {
        let max = stats.languages.values().copied().max().unwrap_or(0);
        let _ = writeln!(md, "\n## Languages\n\n```");
        for (l, n) in &stats.languages {
            let _ = writeln!(md, "{l:<6} {n:>9} {}", bar(*n, max, 40));
        }
        let _ = writeln!(md, "```");
    }
    if !stats.length_histogram.is_empty() {
        let max = stats.length_histogram.values().copied().max().unwrap_or(0);
        let _ = writeln!(md, "\n## Output length (characters)\n\n```");
        for (k, n) in &stats.length_histogram {
            let range = format!("{}–{}", 1u64 << k, (1u64 << (k + 1)) - 1);
            let _ = writeln!(md, "{range:>15} {n:>9} {}", bar(*n, max, 40));
        }
        let _ = writeln!(md, "```");
    }
    if !stats.bad_records.is_empty() {
        let _ = writeln!(md, "\n## Bad input records\n\n| kind | count |\n|---|---:|");
        for (k, n) in &stats.bad_records {
            let _ = writeln!(md, "| {k} | {n} |");
        }
        let _ = writeln!(md, "\nFirst examples:\n");
        for b in &stats.bad_examples {
            let _ = writeln!(
                md,
                "- `{}` {}: {} — {}",
                b.path.display(),
                b.position,
                b.kind,
                b.message
            );
        }
    }
    md
}

pub fn write(dir: &Path, name: &str, stats: &Stats, dedup: Option<&DedupStats>) -> Result<()> {
    let json = serde_json::json!({ "name": name, "stats": stats, "dedup": dedup });
    let text = serde_json::to_vec_pretty(&json).map_err(|e| Error::Invalid(e.to_string()))?;
    flagcore::fsutil::write_atomic(&dir.join("stats.json"), &text)?;
    flagcore::fsutil::write_atomic(
        &dir.join("report.md"),
        markdown(name, stats, dedup).as_bytes(),
    )?;
    Ok(())
}
