//! The leaderboard as one self-contained HTML page: no external scripts, styles or fonts.
//! A table per board (base, chat, then any other) with a column per capability and per task, sortable by
//! clicking a header; each row's title carries the model's provenance and its task hashes;
//! an SVG bar chart of the averages; the board's JSON embedded for scripts.

use super::{Board, Column, Entry};
use std::fmt::Write;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The first 12 characters of a hash (any text: a results file may hold anything).
fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn cell(value: Option<f64>, extra: &str, title: &str) -> String {
    match value {
        Some(v) => format!(
            "<td data-value=\"{v}\" class=\"num{extra}\" title=\"{}\">{:.4}</td>",
            esc(title),
            v
        ),
        None => "<td data-value=\"\" class=\"num missing\">–</td>".into(),
    }
}

fn row(caps: &[&String], cols: &[&Column], e: &Entry) -> String {
    let mut tip = format!("{}\n", e.id);
    if let Some(p) = e.provenance.as_object() {
        for (k, v) in p.iter().filter(|(_, v)| !v.is_null()) {
            let _ = writeln!(
                tip,
                "{k}: {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            );
        }
    }
    for (t, s) in &e.tasks {
        let _ = writeln!(tip, "{t}: task hash {}", short(&s.hash));
    }
    let mut r = format!(
        "<tr data-id=\"{}\"><td class=\"model\" data-value=\"{}\" title=\"{}\">{}</td>",
        esc(&e.id),
        esc(&e.model),
        esc(&tip),
        esc(&e.model)
    );
    r.push_str(&cell(e.average, "", "mean of comparable scores"));
    for c in caps {
        r.push_str(&cell(e.capabilities.get(*c).copied(), "", c));
    }
    for col in cols {
        match e.tasks.get(&col.task) {
            Some(s) => {
                let se = s.stderr.map(|x| format!(" ± {x:.4}")).unwrap_or_default();
                let (class, note) = if s.comparable {
                    ("", String::new())
                } else {
                    (
                        " mismatch",
                        format!(" — task hash {} differs from the column's", short(&s.hash)),
                    )
                };
                r.push_str(&cell(
                    Some(s.value),
                    class,
                    &format!("{}{se}{note}", s.metric),
                ));
            }
            None => r.push_str(&cell(None, "", "")),
        }
    }
    r.push_str("</tr>\n");
    r
}

fn chart(entries: &[&Entry]) -> String {
    let scored: Vec<(&str, f64)> = entries
        .iter()
        .filter_map(|e| Some((e.model.as_str(), e.average?)))
        .collect();
    if scored.is_empty() {
        return String::new();
    }
    let top = scored.iter().map(|s| s.1).fold(1e-9, f64::max);
    let (bar_h, label_w, width) = (22.0, 220.0, 420.0);
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"average score per model\" width=\"{}\" height=\"{}\">",
        label_w + width + 70.0,
        bar_h * scored.len() as f64 + 4.0
    );
    for (i, (m, v)) in scored.iter().enumerate() {
        let y = i as f64 * bar_h;
        let w = (v / top * width).max(1.0);
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\"></rect><text x=\"{}\" y=\"{}\">{v:.4}</text>",
            label_w - 6.0,
            y + 15.0,
            esc(m),
            y + 3.0,
            bar_h - 6.0,
            label_w + w + 6.0,
            y + 15.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn table(board: &Board, name: &str) -> String {
    let entries: Vec<&Entry> = board.entries.iter().filter(|e| e.board == name).collect();
    if entries.is_empty() {
        return String::new();
    }
    // Only what this board's rows have: an embedding board shows no LLM task columns.
    let cols: Vec<&Column> = board
        .columns
        .iter()
        .filter(|c| entries.iter().any(|e| e.tasks.contains_key(&c.task)))
        .collect();
    let caps: Vec<&String> = board
        .capabilities
        .iter()
        .filter(|c| entries.iter().any(|e| e.capabilities.contains_key(*c)))
        .collect();
    let id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut h = format!(
        "<section><h2>{} models</h2>{}<table class=\"board\" id=\"board-{id}\"><thead><tr>\
         <th data-type=\"text\">Model</th><th>Average</th>",
        esc(name),
        chart(&entries)
    );
    for c in &caps {
        let _ = write!(h, "<th class=\"capability\">{}</th>", esc(c));
    }
    for col in &cols {
        let arrow = if col.higher_is_better { "↑" } else { "↓" };
        let _ = write!(
            h,
            "<th title=\"{} · task hash {}\">{}<br><small>{} {arrow}</small></th>",
            esc(&col.metric),
            esc(&col.hash),
            esc(&col.task),
            esc(col.metric.split(',').next().unwrap_or(""))
        );
    }
    h.push_str("</tr></thead><tbody>\n");
    for e in entries {
        h.push_str(&row(&caps, &cols, e));
    }
    h.push_str("</tbody></table></section>\n");
    h
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px}\
th{background:#f3f3f3;cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:' ▲'}\
th[aria-sort=descending]::after{content:' ▼'}td.num{text-align:right;font-variant-numeric:tabular-nums}\
td.mismatch{background:#fde2e2;text-decoration:line-through}td.missing{color:#999}\
th.capability{background:#e8eefc}.chart rect{fill:#4a78c2}.chart text{font-size:12px}";

/// Sorting: a header click sorts its table by that column (numbers descending first, text
/// ascending), a second click reverses.
const SCRIPT: &str = r#"
for (const table of document.querySelectorAll('table.board')) {
  const heads = table.tHead.rows[0].cells;
  for (let i = 0; i < heads.length; i++) {
    heads[i].addEventListener('click', () => {
      const text = heads[i].dataset.type === 'text';
      const first = text ? 'ascending' : 'descending';
      const dir = heads[i].getAttribute('aria-sort') === first
        ? (first === 'ascending' ? 'descending' : 'ascending') : first;
      for (const h of heads) h.removeAttribute('aria-sort');
      heads[i].setAttribute('aria-sort', dir);
      const rows = Array.from(table.tBodies[0].rows);
      const key = r => r.cells[i].dataset.value;
      rows.sort((a, b) => {
        let x = key(a), y = key(b), c;
        if (text) c = x.localeCompare(y);
        else {
          x = x === '' ? -Infinity : Number(x); y = y === '' ? -Infinity : Number(y);
          c = x === y ? 0 : (x < y ? -1 : 1);
        }
        return dir === 'ascending' ? c : -c;
      });
      for (const r of rows) table.tBodies[0].appendChild(r);
    });
  }
}
"#;

/// The page for `board`, titled `title`.
pub fn render(board: &Board, title: &str) -> String {
    let data = serde_json::to_string(board)
        .unwrap_or_default()
        .replace("</", "<\\/");
    let mut h = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body><h1>{}</h1>\
         <p>One row per results file; hover a row for its provenance and task hashes. \
         A struck-out cell ran a different task config or data than its column (task hash) \
         and is left out of averages.</p>\n",
        esc(title),
        esc(title)
    );
    // base and chat first, then any other board (embedding models, …) by name.
    let mut names: Vec<&str> = vec!["base", "chat"];
    let mut others: Vec<&str> = board
        .entries
        .iter()
        .map(|e| e.board.as_str())
        .filter(|b| !names.contains(b))
        .collect();
    others.sort_unstable();
    others.dedup();
    names.extend(others);
    for name in names {
        h.push_str(&table(board, name));
    }
    let _ = writeln!(
        h,
        "<script type=\"application/json\" id=\"board-data\">{data}</script><script>{SCRIPT}</script></body></html>"
    );
    h
}
