//! Tidiness rules, checked as `#[test]`s so `cargo test` enforces them (rust-analyzer's habit).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    crate::workspace_root()
}

/// Every file under `dir` with extension `ext`, skipping build output and hidden folders.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

fn rust_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    files(&root(), "rs", &mut out);
    assert!(
        !out.is_empty(),
        "tidy found no .rs files under {}",
        root().display()
    );
    out
}

/// Member crates: folders beside the root manifest that hold a Cargo.toml.
fn member_manifests() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root()).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if manifest.is_file() {
            out.push(manifest);
        }
    }
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let offenders: Vec<String> = rust_files()
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| rel(&p))
        .collect();
    assert!(
        offenders.is_empty(),
        "these files do not start with a `//!` doc saying what they hold: {offenders:?}"
    );
}

#[test]
fn no_todo_or_unimplemented_outside_tests() {
    let needles = [concat!("todo", "!("), concat!("unimplemented", "!(")];
    let mut offenders = Vec::new();
    for path in rust_files() {
        if path.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // Code after a `#[cfg(test)]` line is test code.
        let shipped = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (i, line) in shipped.lines().enumerate() {
            if needles.iter().any(|n| line.contains(n)) {
                offenders.push(format!("{}:{}", rel(&path), i + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "stubs in shipped code: {offenders:?}");
}

#[test]
fn members_take_versions_and_lints_from_the_workspace() {
    let mut problems = Vec::new();
    for manifest in member_manifests() {
        let text = std::fs::read_to_string(&manifest).unwrap();
        if !text.contains("[lints]\nworkspace = true") {
            problems.push(format!(
                "{}: lacks `[lints] workspace = true`",
                rel(&manifest)
            ));
        }
        let mut in_deps = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_deps = line.ends_with("dependencies]");
                continue;
            }
            if in_deps
                && !line.is_empty()
                && !line.starts_with('#')
                && !line.contains("workspace = true")
            {
                problems.push(format!(
                    "{}: `{line}` pins a version outside [workspace.dependencies]",
                    rel(&manifest)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Binaries that link libtorch need its rpath and `libtorch_cuda.so` kept (`--no-as-needed`);
/// cargo only applies link args from a package's own build script, so each package that may
/// link libtorch needs one: users of `tch`, and users of `flagcore` (feature unification can
/// turn `flagcore/torch` on for them).
#[test]
fn crates_linking_libtorch_wire_it_in_their_build_script() {
    let mut problems = Vec::new();
    for manifest in member_manifests() {
        let text = std::fs::read_to_string(&manifest).unwrap();
        let links_torch = text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("tch") || l.starts_with("flagcore")
        });
        if !links_torch {
            continue;
        }
        let build = manifest.with_file_name("build.rs");
        let wired = std::fs::read_to_string(&build)
            .map(|t| t.contains("libtorch_link::emit") && t.contains("libtorch_link.rs"))
            .unwrap_or(false);
        if !wired {
            problems.push(format!(
                "{} links libtorch but {} does not call libtorch_link::emit()",
                rel(&manifest),
                rel(&build)
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn architecture_doc_maps_every_crate() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md is missing");
    let missing: Vec<String> = member_manifests()
        .iter()
        .filter_map(|m| {
            let folder = m.parent()?.file_name()?.to_string_lossy().to_string();
            (!doc.contains(&format!("`{folder}/`"))).then_some(folder)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md's code map does not name these folders: {missing:?}"
    );
}
