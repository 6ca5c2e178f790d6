"""libtorch's CPU scaled_dot_product_attention and the naive formula (matmul, softmax,
matmul) for `flagattention bench`, interleaved with its own runs so that both sides see the
same machine load.

    python sdpa_bench.py        (a line protocol on stdin / stdout)

Each input line is a JSON shape {"b", "h", "n", "d", "causal", "naive", "runs"} (M = N,
f32); the answer line gives, in seconds, the fastest of `runs` back-to-back forwards (no
autograd) and of as many backwards (`out.backward(do)` after a forward with autograd; the
backward alone is timed) of SDPA, and of the naive formula when "naive" is true, after
one untimed warm-up run of each the first time a shape is seen. The caller keeps the
fastest of its rounds.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def naive(q, k, v, causal):
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if causal:
        n = q.shape[-2]
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def sdpa(q, k, v, causal):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def forward(fn, q, k, v, causal):
    with torch.no_grad():
        start = time.perf_counter()
        fn(q, k, v, causal)
        return time.perf_counter() - start


def backward(fn, q, k, v, do, causal):
    qg, kg, vg = (x.clone().requires_grad_() for x in (q, k, v))
    o = fn(qg, kg, vg, causal)
    start = time.perf_counter()
    o.backward(do)
    return time.perf_counter() - start


def main():
    seen = {}
    for line in sys.stdin:
        s = json.loads(line)
        key = (s["b"], s["h"], s["n"], s["d"], s["causal"])
        if key not in seen:
            g = torch.Generator().manual_seed(0)
            seen.clear()
            seen[key] = [torch.randn(s["b"], s["h"], s["n"], s["d"], generator=g) for _ in range(4)]
            warm = True
        else:
            warm = False
        q, k, v, do = seen[key]
        fns = [("", sdpa)] + ([("naive_", naive)] if s["naive"] else [])
        out = {"threads": torch.get_num_threads()}
        for prefix, fn in fns:
            if warm:
                forward(fn, q, k, v, s["causal"])
                backward(fn, q, k, v, do, s["causal"])
            runs = range(max(1, s["runs"]))
            out[prefix + "forward"] = min(forward(fn, q, k, v, s["causal"]) for _ in runs)
            out[prefix + "backward"] = min(backward(fn, q, k, v, do, s["causal"]) for _ in runs)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
