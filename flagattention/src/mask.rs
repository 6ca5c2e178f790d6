//! The causal mask, aligned bottom-right: query row i (of M) sees key j (of N) when
//! i + (N − M) ≥ j, so a row may see no key at all when M > N.

/// The last key row `i` (of `m`) may see among `n` keys; `None` when it sees none. Without
/// the causal mask every row sees all keys.
#[inline]
pub(crate) fn last_visible(i: usize, m: usize, n: usize, causal: bool) -> Option<usize> {
    if !causal {
        return n.checked_sub(1);
    }
    let lim = i as i64 + n as i64 - m as i64;
    (lim >= 0).then(|| (lim as usize).min(n.saturating_sub(1)))
}

/// How many of the keys `c0..c0 + c` row `i` sees (they are a prefix).
#[inline]
pub(crate) fn visible(i: usize, c0: usize, c: usize, m: usize, n: usize, causal: bool) -> usize {
    match last_visible(i, m, n, causal) {
        Some(lim) if lim >= c0 => (lim + 1 - c0).min(c),
        _ => 0,
    }
}

/// The first of rows `r0..r0 + r` that sees key `j`, relative to `r0` (`r` when none does;
/// the rows that see a key are a suffix).
#[inline]
pub(crate) fn first_seeing(
    j: usize,
    r0: usize,
    r: usize,
    m: usize,
    n: usize,
    causal: bool,
) -> usize {
    if !causal {
        return 0;
    }
    let first = j as i64 + m as i64 - n as i64 - r0 as i64;
    first.clamp(0, r as i64) as usize
}

/// Keys rows `r0..r0 + r` see at most: one past the last visible key of the block's last
/// row (the latest under the bottom-right mask); 0 when none sees any.
#[inline]
pub(crate) fn reach(r0: usize, r: usize, m: usize, n: usize, causal: bool) -> usize {
    match r {
        0 => 0,
        _ => last_visible(r0 + r - 1, m, n, causal).map_or(0, |l| l + 1),
    }
}

/// Piecewise attention's switch (Aquila2's long-context position encoding): query i takes
/// its score from the second pair (q2·k2) for key j when the bottom-right aligned signed
/// distance i + (N − M) − j reaches `threshold`, else from the first (q1·k1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Band {
    threshold: i64,
}

impl Band {
    /// The band for `threshold` between `m` query rows and `n` keys (both checked to be
    /// addressable, so they fit an i64). Distances i + (N − M) − j lie in 1 − M ..= N − 1,
    /// so clamping the threshold to −M ..= N keeps its meaning and keeps the arithmetic
    /// below from overflowing.
    pub fn new(threshold: i64, m: usize, n: usize) -> Band {
        Band {
            threshold: threshold.clamp(-(m as i64), n as i64),
        }
    }

    /// For key `j`, the first of rows `r0..r0 + r` (relative to `r0`) that takes the second
    /// pair; the rows after it do too.
    pub fn first_far_row(&self, j: usize, r0: usize, r: usize, m: usize, n: usize) -> usize {
        let first = self.threshold + j as i64 + m as i64 - n as i64 - r0 as i64;
        first.clamp(0, r as i64) as usize
    }

    /// For row `i`, how many of keys `c0..c0 + c` take the second pair (they are a prefix).
    pub fn far_keys(&self, i: usize, c0: usize, c: usize, m: usize, n: usize) -> usize {
        let count = i as i64 + n as i64 - m as i64 - self.threshold + 1 - c0 as i64;
        count.clamp(0, c as i64) as usize
    }
}
