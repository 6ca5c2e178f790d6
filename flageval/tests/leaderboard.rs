//! The leaderboard: rows from results files (averages, capabilities, task-hash mismatches),
//! the read-only server (no path outside its folder), and the page in a real headless
//! Chromium driven through ChromeDriver (WebDriver): it loads, sorting works, and a
//! screenshot is saved under the target folder (`target/tmp/flageval-leaderboard.png`).

use flageval::evaluate::{results_json, run_task, Options};
use flageval::model::Dummy;
use flageval::task::Task;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn toy_task(dir: &Path, name: &str, capability: &str, salt: &str) -> Task {
    let mut csv = String::from("question,a,b,c,answer\n");
    for i in 0..40 {
        csv.push_str(&format!("{salt}{name} {i}?,x{i},y{i},z{i},{}\n", i % 3));
    }
    std::fs::write(dir.join(format!("{name}.csv")), csv).unwrap();
    let yaml = format!(
        "task: {name}\ndataset_path: csv\ndataset_kwargs: {{data_files: {name}.csv}}\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: \"{{{{question}}}}\"\ndoc_to_choice: \"['{{{{a}}}}', '{{{{b}}}}', '{{{{c}}}}']\"\ndoc_to_target: answer\ncapability: {capability}\n"
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, yaml).unwrap();
    Task::load(&p).unwrap()
}

/// Results folders for four runs: three base models, one chat model; `odd` ran `trivia`
/// on other data (another task hash).
fn results(root: &Path) -> PathBuf {
    let out = root.join("results");
    for (model, board, salt) in [
        ("alpha-7b", "base", ""),
        ("beta-1b", "base", ""),
        ("odd-3b", "base", "changed "),
        ("gamma-chat", "chat", ""),
    ] {
        let tasks_dir = root.join(format!("tasks-{model}"));
        std::fs::create_dir_all(&tasks_dir).unwrap();
        let trivia = toy_task(&tasks_dir, "trivia", "knowledge", salt);
        let logic = toy_task(&tasks_dir, "logic", "reasoning", "");
        // Each "model" answers differently: the dummy sees the model's name in the context.
        let opts = Options {
            bootstrap_iters: 0,
            ..Default::default()
        };
        let mut dummy = Dummy::default();
        let tr = run_task(
            &trivia,
            &mut dummy,
            &Options {
                limit: Some(40 - model.len()),
                ..opts.clone()
            },
        )
        .unwrap();
        let lr = run_task(
            &logic,
            &mut dummy,
            &Options {
                limit: Some(20 + model.len()),
                ..opts.clone()
            },
        )
        .unwrap();
        let mut v = results_json(&[&trivia, &logic], &[tr, lr], &[], model, &opts);
        v["config"]["board"] = json!(board);
        v["config"]["model_source"] = json!(format!("/models/{model}.gguf"));
        let dir = out.join(model);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_vec_pretty(&v).unwrap(),
        )
        .unwrap();
    }
    out
}

#[test]
fn rows_columns_and_hash_mismatches() {
    let tmp = tempfile::tempdir().unwrap();
    let out = results(tmp.path());
    let board = flageval::leaderboard::build(std::slice::from_ref(&out), Some(&out)).unwrap();
    assert_eq!(board.entries.len(), 4);
    assert_eq!(board.capabilities, ["knowledge", "reasoning"]);
    assert_eq!(board.columns.len(), 2);
    let odd = board.entries.iter().find(|e| e.model == "odd-3b").unwrap();
    assert!(!odd.tasks["trivia"].comparable, "another task hash");
    assert!(odd.tasks["logic"].comparable);
    assert_eq!(odd.average, Some(odd.tasks["logic"].value));
    assert!(!odd.capabilities.contains_key("knowledge"));
    let alpha = board
        .entries
        .iter()
        .find(|e| e.model == "alpha-7b")
        .unwrap();
    let mean = (alpha.tasks["trivia"].value + alpha.tasks["logic"].value) / 2.0;
    assert!((alpha.average.unwrap() - mean).abs() < 1e-12);
    assert_eq!(alpha.provenance["source"], "/models/alpha-7b.gguf");
    let html = flageval::leaderboard::render(&board, "Test <board>");
    assert!(html.contains("Test &lt;board&gt;") && !html.contains("<board>"));
    assert!(html.contains("id=\"board-chat\"") && html.contains("class=\"num mismatch\""));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained"
    );
}

fn get(url: &str) -> (u16, String) {
    match ureq::get(url).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// A ChromeDriver session, closed (and the driver stopped) on drop.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
}

impl Browser {
    fn start(profile: &Path) -> Option<Browser> {
        let (chromium, driver) = (
            Path::new("/usr/bin/chromium"),
            Path::new("/usr/bin/chromedriver"),
        );
        if !chromium.is_file() || !driver.is_file() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        // Ready when /status answers (bounded: 100 tries).
        for _ in 0..100 {
            if ureq::get(&format!("{base}/status")).call().is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,900", format!("--user-data-dir={}", profile.display())]}}}});
        let mut b = Browser {
            driver: child,
            base,
            session: String::new(),
        };
        let v = b.post("/session", caps);
        b.session = v["value"]["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        Some(b)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        match ureq::post(&url).send_json(body) {
            Ok(r) => r.into_json().unwrap(),
            Err(ureq::Error::Status(c, r)) => {
                panic!("{path}: {c} {}", r.into_string().unwrap_or_default())
            }
            Err(e) => panic!("{path}: {e}"),
        }
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        ureq::get(&url).call().unwrap().into_json().unwrap()
    }

    fn element(&self, css: &str) -> String {
        let v = self.post("/element", json!({"using": "css selector", "value": css}));
        v["value"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect(css)
            .to_string()
    }

    fn text(&self, css: &str) -> String {
        let e = self.element(css);
        self.get(&format!("/element/{e}/text"))["value"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.post(&format!("/element/{e}/click"), json!({}));
    }

    fn models(&self, table: &str) -> Vec<String> {
        let v = self.post(
            "/execute/sync",
            json!({"script": format!("return Array.from(document.querySelectorAll('#{table} tbody tr td.model')).map(td => td.textContent)"), "args": []}),
        );
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn the_server_and_the_page_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let out = results(tmp.path());
    // A file beside the results folder that no request may reach.
    std::fs::write(tmp.path().join("secret.json"), "{\"secret\": 1}").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = flageval::serve::router(out.clone(), "flageval test board");
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    let base = format!("http://{addr}");

    let (code, list) = get(&format!("{base}/api/results"));
    assert_eq!(code, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);
    let id = list[0]["id"].as_str().unwrap();
    let (code, one) = get(&format!("{base}/api/results/{id}"));
    assert_eq!(code, 200);
    assert!(serde_json::from_str::<Value>(&one).unwrap()["results"].is_object());
    for bad in [
        "../secret.json",
        "..%2Fsecret.json",
        "%2E%2E/secret.json",
        "/etc/passwd",
        "alpha-7b/../../secret.json",
    ] {
        let (code, body) = get(&format!("{base}/api/results/{bad}"));
        assert!(code == 404 || code == 400, "{bad}: {code}");
        assert!(!body.contains("secret\": 1"), "{bad}: {body}");
    }
    assert_eq!(get(&format!("{base}/nothing/here")).0, 404);
    let (code, board) = get(&format!("{base}/api/board"));
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&board).unwrap()["entries"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    let profile = tmp.path().join("chromium-profile");
    let Some(browser) = Browser::start(&profile) else {
        eprintln!("skipped the browser part: /usr/bin/chromium or /usr/bin/chromedriver missing (cargo xtask setup installs them)");
        return;
    };
    browser.post("/url", json!({"url": format!("{base}/")}));
    assert_eq!(browser.text("h1"), "flageval test board");
    let server_order = browser.models("board-base");
    assert_eq!(server_order.len(), 3);
    assert_eq!(browser.models("board-chat"), ["gamma-chat"]);
    // Model column: text, ascending first, then descending.
    browser.click("#board-base thead th:nth-child(1)");
    assert_eq!(
        browser.models("board-base"),
        ["alpha-7b", "beta-1b", "odd-3b"]
    );
    browser.click("#board-base thead th:nth-child(1)");
    assert_eq!(
        browser.models("board-base"),
        ["odd-3b", "beta-1b", "alpha-7b"]
    );
    // A task column: numbers, highest first, then lowest first.
    let board: Value = serde_json::from_str(&board).unwrap();
    let score = |m: &str, t: &str| {
        board["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["model"] == m)
            .unwrap()["tasks"][t]["value"]
            .as_f64()
            .unwrap()
    };
    let mut want: Vec<&str> = vec!["alpha-7b", "beta-1b", "odd-3b"];
    let col = 1
        + 1
        + 2
        + 1
        + board["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c["task"] == "logic")
            .unwrap();
    want.sort_by(|a, b| score(b, "logic").total_cmp(&score(a, "logic")));
    browser.click(&format!("#board-base thead th:nth-child({col})"));
    assert_eq!(browser.models("board-base"), want);
    browser.click(&format!("#board-base thead th:nth-child({col})"));
    want.reverse();
    assert_eq!(browser.models("board-base"), want);
    let header = browser.element(&format!("#board-base thead th:nth-child({col})"));
    let sort = browser.get(&format!("/element/{header}/attribute/aria-sort"));
    assert_eq!(sort["value"], "ascending");

    let png = browser.get("/screenshot")["value"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png)
        .unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let artifact = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flageval-leaderboard.png");
    std::fs::write(&artifact, &bytes).unwrap();
    eprintln!("screenshot: {} ({} bytes)", artifact.display(), bytes.len());
}
