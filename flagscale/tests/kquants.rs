//! The K quantisations (Q2_K to Q6_K) dequantise as llama.cpp's `gguf` Python package does
//! (`scripts/gguf_dequant.py`), on random super-blocks with every bit pattern in play. Runs
//! where `cargo xtask test` prepared Python (FLAGOPEN_PYCHECK).

use std::path::Path;

/// (GGML type id, name, block bytes, offsets of its f16 scale fields)
const TYPES: &[(u32, &str, usize, &[usize])] = &[
    (10, "Q2_K", 84, &[80, 82]),
    (11, "Q3_K", 110, &[108]),
    (12, "Q4_K", 144, &[0, 2]),
    (13, "Q5_K", 176, &[0, 2]),
    (14, "Q6_K", 210, &[208]),
];

#[test]
fn k_quants_match_gguf_py() {
    let Ok(pythonpath) = std::env::var("FLAGOPEN_PYCHECK") else {
        eprintln!("skipped: FLAGOPEN_PYCHECK is not set (cargo xtask test sets it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gguf_dequant.py");
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for &(id, name, size, scales) in TYPES {
        let blocks = 16;
        let mut bytes: Vec<u8> = (0..blocks * size).map(|_| next() as u8).collect();
        for b in 0..blocks {
            for &off in scales {
                // Finite scales in ±[2^-8, 2): random sign, exponent and mantissa.
                let v = flagcore::f16::from_f32(
                    (next() % 2000) as f32 / 1000.0 * if next() % 2 == 0 { 1.0 } else { -1.0 },
                );
                bytes[b * size + off..b * size + off + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
        let ours = flagscale::gguf::dequantize_bytes(id, &bytes).unwrap();
        assert_eq!(ours.len(), blocks * 256);
        let (inp, out) = (dir.path().join("in.bin"), dir.path().join("out.bin"));
        std::fs::write(&inp, &bytes).unwrap();
        flagcore::python::run_ok(
            flagcore::python::test_script(&script)
                .args([name, inp.to_str().unwrap(), out.to_str().unwrap()])
                .env("PYTHONPATH", &pythonpath),
        );
        let theirs: Vec<f32> = std::fs::read(&out)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(theirs.len(), ours.len(), "{name}");
        let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{name}: max |diff| {worst:.2e} of values up to {scale:.2}");
        assert!(worst <= 1e-6 * scale, "{name}: {worst}");
    }
}
