//! `flagscale convert` on the real SmolLM2 GGUF: the Hugging Face folder it writes gives
//! `transformers` our logits (the interleaved query/key rows reordered for its rotary layout)
//! and the same chat prompt; the tokenizer comes along; bad input leaves nothing behind.

mod common;

use std::path::Path;
use std::process::Command;

fn convert(args: &[&Path], extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flagscale"))
        .arg("convert")
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn gguf_converts_to_a_folder_transformers_agrees_with() {
    let Some(gguf) = common::smollm2() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("smollm2-hf");
    let out = convert(&[&gguf, &out_dir], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(out_dir.join(f).is_file(), "{f}");
    }
    // A second run refuses to overwrite without --force.
    let again = convert(&[&gguf, &out_dir], &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // Ours from the folder equals ours from the GGUF (the row reordering changes no output).
    let from_gguf = flagscale::gguf::load(&gguf, flagcore::DType::F32, tch::Device::Cpu).unwrap();
    let from_dir =
        flagscale::model::Llama::load(&out_dir, flagcore::DType::F32, tch::Device::Cpu).unwrap();
    assert!(!from_dir.config.rope_interleaved);
    let tok = flagdata::tokenize::load(&out_dir.join("tokenizer.json")).unwrap();
    let text = "The capital of France is Paris, and the capital of Italy is";
    let ids: Vec<i64> = tok
        .encode(text, false)
        .unwrap()
        .get_ids()
        .iter()
        .map(|&i| i as i64)
        .collect();
    let ids = tch::Tensor::from_slice(&ids).view([1, -1]);
    let want = from_gguf.forward(&ids).unwrap();
    let got = from_dir.forward(&ids).unwrap();
    let diff = (&got - &want).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "{diff}");

    let Some(pythonpath) = common::pycheck() else {
        return;
    };
    flagcore::torch::save_safetensors(
        &out_dir.join("reference.safetensors"),
        &[("ids", &ids), ("logits", &want)],
        None,
        None,
    )
    .unwrap();
    let out = common::python(
        &pythonpath,
        "hf_reference.py",
        &["check", out_dir.to_str().unwrap()],
    );
    let back: f64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    eprintln!("SmolLM2 converted: transformers vs flagscale max abs logit diff {back:.2e}");
    assert!(back < 1e-4, "{back}");

    // The chat template renders as transformers (jinja2) renders it, to the same tokens.
    let messages = serde_json::json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "  Name a colour.  "},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
    ]);
    let theirs: serde_json::Value = serde_json::from_str(&common::python(
        &pythonpath,
        "hf_reference.py",
        &["chat", out_dir.to_str().unwrap(), &messages.to_string()],
    ))
    .unwrap();
    let template = flagscale::serve::ChatTemplate::from_hf_dir(&out_dir)
        .unwrap()
        .unwrap();
    let ours = template.render(messages.as_array().unwrap(), true).unwrap();
    assert_eq!(ours, theirs["prompt"].as_str().unwrap());
    let our_ids: Vec<u32> = tok.encode(ours.as_str(), false).unwrap().get_ids().to_vec();
    let their_ids: Vec<u32> = serde_json::from_value(theirs["ids"].clone()).unwrap();
    assert_eq!(our_ids, their_ids);
}

#[test]
fn bad_input_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("cut.gguf");
    std::fs::write(&truncated, b"GGUF\x03\x00\x00\x00\x05").unwrap();
    let out_dir = dir.path().join("out");
    let out = convert(&[&truncated, &out_dir], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.gguf"), "{err}");
    assert!(!out_dir.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let missing = convert(&[&dir.path().join("nope"), &out_dir], &[]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file"));
}
