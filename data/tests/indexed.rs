//! Megatron indexed datasets: byte layout as megatron-core writes it, round trips, and
//! errors on damaged files. `scripts/check_megatron.py` reads our files with megatron-core.

use flagdata::indexed::{bin_path, idx_path, IndexedDataset, IndexedWriter, TokenDType};

fn le64(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

#[test]
fn idx_bytes_follow_megatron_layout() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("ds");
    let mut w = IndexedWriter::create(&prefix, TokenDType::U16).unwrap();
    w.add_document(&[5, 6, 7]).unwrap();
    w.add_document(&[]).unwrap();
    w.add_document(&[65535, 1]).unwrap();
    assert!(
        !idx_path(&prefix).exists(),
        "nothing under the final names before finish"
    );
    w.finish().unwrap();

    let mut want = b"MMIDIDX\x00\x00".to_vec();
    want.extend(le64(1));
    want.push(8); // u16
    want.extend(le64(3)); // sequences
    want.extend(le64(4)); // document indices: documents + 1
    for l in [3i32, 0, 2] {
        want.extend(l.to_le_bytes());
    }
    for p in [0i64, 6, 6] {
        want.extend(p.to_le_bytes());
    }
    for d in [0i64, 1, 2, 3] {
        want.extend(d.to_le_bytes());
    }
    assert_eq!(std::fs::read(idx_path(&prefix)).unwrap(), want);
    let bin: Vec<u8> = [5u16, 6, 7, 65535, 1]
        .iter()
        .flat_map(|t| t.to_le_bytes())
        .collect();
    assert_eq!(std::fs::read(bin_path(&prefix)).unwrap(), bin);
}

#[test]
fn round_trip_with_int32_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("sub/ds");
    assert_eq!(TokenDType::for_vocab(65_499), TokenDType::U16);
    assert_eq!(TokenDType::for_vocab(100_008), TokenDType::I32);
    let docs: Vec<Vec<u32>> = (0..50)
        .map(|i| (0..i * 3).map(|t| t * 997 % 100_008).collect())
        .collect();
    let mut w = IndexedWriter::create(&prefix, TokenDType::I32).unwrap();
    for d in &docs {
        w.add_document(d).unwrap();
    }
    w.finish().unwrap();
    let ds = IndexedDataset::open(&prefix).unwrap();
    assert_eq!(
        (ds.len(), ds.num_documents(), ds.dtype()),
        (50, 50, TokenDType::I32)
    );
    for (i, d) in docs.iter().enumerate() {
        let got: Vec<u32> = ds.get(i).unwrap().into_iter().map(|t| t as u32).collect();
        assert_eq!(&got, d);
    }
    let mut part = Vec::new();
    ds.read_into(10, 2, 5, &mut part).unwrap();
    assert_eq!(
        part,
        docs[10][2..7].iter().map(|&t| t as i64).collect::<Vec<_>>()
    );
    assert!(ds.read_into(10, 28, 5, &mut part).is_err());
    assert!(ds.get(50).is_err());
}

#[test]
fn token_out_of_range_and_damaged_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("ds");
    let mut w = IndexedWriter::create(&prefix, TokenDType::U16).unwrap();
    assert!(w
        .add_document(&[70_000])
        .unwrap_err()
        .to_string()
        .contains("does not fit"));
    w.add_document(&[1, 2, 3, 4]).unwrap();
    w.finish().unwrap();

    let idx = std::fs::read(idx_path(&prefix)).unwrap();
    std::fs::write(idx_path(&prefix), &idx[..idx.len() - 3]).unwrap();
    let err = IndexedDataset::open(&prefix).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");

    std::fs::write(idx_path(&prefix), &idx).unwrap();
    std::fs::write(bin_path(&prefix), [0u8; 4]).unwrap();
    let err = IndexedDataset::open(&prefix).unwrap_err().to_string();
    assert!(err.contains("outside the .bin"), "{err}");

    let mut bad = idx.clone();
    bad[0] = b'X';
    std::fs::write(idx_path(&prefix), &bad).unwrap();
    assert!(IndexedDataset::open(&prefix)
        .unwrap_err()
        .to_string()
        .contains("magic"));
}
