"""The degree-5 polynomial behind `src/vexp.rs`'s EXP_POLY: least maximum relative error
for e^r on |r| <= ln(2)/2 with p(0) = 1 kept exact (so e^0 is exactly 1: softmax's largest
term), by Lawson's iteration of weighted least squares on Chebyshev nodes; printed as f32
with its error evaluated in f32 Horner steps.

    python exp_poly.py        (numpy)
"""
import numpy as np

HALF_LN2 = np.log(2) / 2
NODES = 4000


def fit():
    r = np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES) * HALF_LN2
    f = np.exp(r)
    v = np.vander(r, 6, increasing=True)[:, 1:]
    w = np.full(NODES, 1.0 / NODES)
    for _ in range(300):
        scale = np.sqrt(w) / f
        c, *_ = np.linalg.lstsq(v * scale[:, None], (f - 1) * scale, rcond=None)
        err = np.abs(1 + v @ c - f) / f
        w = w * err
        w /= w.sum()
    return np.concatenate([[1.0], c]), err.max()


def main():
    c, err = fit()
    c32 = c.astype(np.float32)
    x = np.linspace(-HALF_LN2, HALF_LN2, 400001).astype(np.float32)
    p = np.full(x.shape, c32[5], dtype=np.float32)
    for k in range(4, -1, -1):
        p = (p.astype(np.float64) * x + np.float64(c32[k])).astype(np.float32)
    exact = np.exp(x.astype(np.float64))
    print("coefficients (r^0 .. r^5):", [repr(float(v)) for v in c32])
    print(f"max relative error: {err:.3g} exact arithmetic, "
          f"{np.max(np.abs(p - exact) / exact):.3g} in f32")


if __name__ == "__main__":
    main()
