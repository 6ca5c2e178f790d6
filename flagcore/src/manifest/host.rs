//! What machine a run happened on, read from `/proc` (Linux) with portable fallbacks.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: Option<String>,
    pub os: String,
    pub kernel: Option<String>,
    pub arch: String,
    pub cpu_model: Option<String>,
    pub cpu_cores: usize,
    pub memory_bytes: Option<u64>,
    /// GPU model names, one per device, as the NVIDIA driver reports them.
    pub gpus: Vec<String>,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

impl HostInfo {
    pub fn detect() -> Self {
        let os_release = read("/etc/os-release").unwrap_or_default();
        let pretty = os_release.lines().find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        });
        HostInfo {
            hostname: read("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()),
            os: pretty.unwrap_or_else(|| std::env::consts::OS.to_string()),
            kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
            arch: std::env::consts::ARCH.to_string(),
            cpu_model: read("/proc/cpuinfo")
                .and_then(|t| field(&t, "model name").map(str::to_string)),
            cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: read("/proc/meminfo").and_then(|t| {
                let kb = field(&t, "MemTotal")?.trim_end_matches("kB").trim();
                kb.parse::<u64>().ok().map(|k| k * 1024)
            }),
            gpus: nvidia_gpus(),
        }
    }
}

/// The driver lists each GPU under `/proc/driver/nvidia/gpus/<bus id>/information`.
fn nvidia_gpus() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc/driver/nvidia/gpus") else {
        return Vec::new();
    };
    let mut gpus: Vec<(String, String)> = entries
        .flatten()
        .filter_map(|e| {
            let info = std::fs::read_to_string(e.path().join("information")).ok()?;
            let model = field(&info, "Model")?.to_string();
            Some((e.file_name().to_string_lossy().to_string(), model))
        })
        .collect();
    gpus.sort();
    gpus.into_iter().map(|(_, m)| m).collect()
}
