"""libtorch's CPU scaled_dot_product_attention on the shapes `flagattention bench` runs, in the
same invocation, for the ratio.

    python sdpa_bench.py SHAPES.json OUT.json

SHAPES.json: [{"b", "h", "n", "d", "causal", "repeats"}], M = N, f32. For each shape the
fastest forward (no autograd) and the fastest backward (`out.backward(do)` after a forward
with autograd, the backward alone timed), in seconds, written as a list in the same order.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def best(fn, repeats):
    repeats = max(1, repeats)
    fn()
    t = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - start)
    return t


def main():
    with open(sys.argv[1]) as f:
        shapes = json.load(f)
    out = []
    for s in shapes:
        g = torch.Generator().manual_seed(0)
        q, k, v, do = (torch.randn(s["b"], s["h"], s["n"], s["d"], generator=g) for _ in range(4))
        with torch.no_grad():
            fwd = best(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=s["causal"]),
                       s["repeats"])
        qg, kg, vg = (x.clone().requires_grad_() for x in (q, k, v))

        def backward():
            o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=s["causal"])
            start = time.perf_counter()
            o.backward(do)
            return time.perf_counter() - start

        backward()
        bwd = min(backward() for _ in range(max(1, s["repeats"])))
        out.append({"forward": fwd, "backward": bwd, "threads": torch.get_num_threads()})
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
