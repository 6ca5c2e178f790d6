"""Worst cosine and largest difference of `bge encode` outputs (JSON lines, OUT/NAME.jsonl)
against the f64 reference of prepare.py.

usage: python3 compare.py OUT REF_PT NAME...
"""
import json
import sys

import torch

out, ref = sys.argv[1], torch.load(sys.argv[2])
for name in sys.argv[3:]:
    rows = [json.loads(line) for line in open(f"{out}/{name}.jsonl")]
    e = torch.tensor(rows, dtype=torch.float64)
    cos = (e * ref).sum(1) / e.norm(dim=1) / ref.norm(dim=1)
    print(
        f"{name}: {len(e)} embeddings, worst cosine vs transformers f64 "
        f"{cos.min().item():.7f}, max |diff| {(e - ref).abs().max().item():.2e}"
    )
