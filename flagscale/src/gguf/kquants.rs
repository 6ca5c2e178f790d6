//! GGML's "K" quantisations: super-blocks of 256 values in 16 or 8 sub-blocks, each sub-block
//! with its own quantised scale (and minimum) under one f16 super-scale. Layouts and
//! arithmetic follow ggml's reference dequantisers; values come out in GGML order.

/// Values per super-block.
pub const QK_K: usize = 256;

fn f16(b: &[u8]) -> f32 {
    flagcore::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Bytes per super-block of a K type (Q2_K..Q6_K are 10..14), or `None`.
pub fn block_bytes(ggml_type: u32) -> Option<usize> {
    Some(match ggml_type {
        10 => 84,
        11 => 110,
        12 => 144,
        13 => 176,
        14 => 210,
        _ => return None,
    })
}

/// Q4_K / Q5_K pack eight 6-bit scales and eight 6-bit minimums into 12 bytes.
fn scale_min(j: usize, s: &[u8]) -> (f32, f32) {
    if j < 4 {
        ((s[j] & 63) as f32, (s[j + 4] & 63) as f32)
    } else {
        (
            ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4)) as f32,
            ((s[j + 4] >> 4) | ((s[j] >> 6) << 4)) as f32,
        )
    }
}

fn q2_k(b: &[u8], out: &mut Vec<f32>) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16(&b[80..82]), f16(&b[82..84]));
    let mut is = 0;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0, 2, 4, 6] {
            for part in 0..2 {
                let sc = scales[is];
                is += 1;
                let (dl, ml) = (d * (sc & 0x0F) as f32, dmin * (sc >> 4) as f32);
                for &v in &q[part * 16..part * 16 + 16] {
                    out.push(dl * ((v >> shift) & 3) as f32 - ml);
                }
            }
        }
    }
}

fn q3_k(b: &[u8], out: &mut Vec<f32>) {
    let (hmask, qs, packed) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = f16(&b[108..110]);
    // Sixteen 6-bit scales: low 4 bits in bytes 0..8 (two per byte), high 2 bits in 8..12.
    let scales: Vec<i32> = (0..16)
        .map(|i| {
            let low = if i < 8 {
                packed[i] & 0x0F
            } else {
                packed[i - 8] >> 4
            };
            let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
            (low | (high << 4)) as i32 - 32
        })
        .collect();
    let mut is = 0;
    let mut m = 1u8;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0, 2, 4, 6] {
            for part in 0..2 {
                let dl = d * scales[is] as f32;
                is += 1;
                for l in part * 16..part * 16 + 16 {
                    let low = ((q[l] >> shift) & 3) as i32;
                    let sub = if hmask[l] & m != 0 { 0 } else { 4 };
                    out.push(dl * (low - sub) as f32);
                }
            }
            m <<= 1;
        }
    }
}

fn q4_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16(&b[0..2]), f16(&b[2..4]));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for j in 0..4 {
        let q = &qs[j * 32..j * 32 + 32];
        let (s1, m1) = scale_min(2 * j, scales);
        let (s2, m2) = scale_min(2 * j + 1, scales);
        out.extend(q.iter().map(|v| d * s1 * (v & 0x0F) as f32 - dmin * m1));
        out.extend(q.iter().map(|v| d * s2 * (v >> 4) as f32 - dmin * m2));
    }
}

fn q5_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16(&b[0..2]), f16(&b[2..4]));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for j in 0..4 {
        let q = &qs[j * 32..j * 32 + 32];
        let (s1, m1) = scale_min(2 * j, scales);
        let (s2, m2) = scale_min(2 * j + 1, scales);
        let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
        let hi = |l: usize, u: u8| if qh[l] & u != 0 { 16 } else { 0 };
        out.extend((0..32).map(|l| d * s1 * ((q[l] & 0x0F) + hi(l, u1)) as f32 - dmin * m1));
        out.extend((0..32).map(|l| d * s2 * ((q[l] >> 4) + hi(l, u2)) as f32 - dmin * m2));
    }
}

fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16(&b[208..210]);
    for half in 0..2 {
        let (ql, qh, sc) = (&ql[half * 64..], &qh[half * 32..], &sc[half * 8..]);
        let mut y = [0f32; 128];
        for l in 0..32 {
            let is = l / 16;
            let q =
                |low: u8, shift: u32| ((low | (((qh[l] >> shift) & 3) << 4)) as i32 - 32) as f32;
            y[l] = d * (sc[is] as i8) as f32 * q(ql[l] & 0x0F, 0);
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q(ql[l + 32] & 0x0F, 2);
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q(ql[l] >> 4, 4);
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q(ql[l + 32] >> 4, 6);
        }
        out.extend_from_slice(&y);
    }
}

/// Appends the values of whole super-blocks of `ggml_type` (which [`block_bytes`] accepts).
pub fn dequantize(ggml_type: u32, bytes: &[u8], out: &mut Vec<f32>) {
    let Some(size) = block_bytes(ggml_type) else {
        return;
    };
    let f = match ggml_type {
        10 => q2_k,
        11 => q3_k,
        12 => q4_k,
        13 => q5_k,
        _ => q6_k,
    };
    for blk in bytes.chunks_exact(size) {
        f(blk, out);
    }
}
