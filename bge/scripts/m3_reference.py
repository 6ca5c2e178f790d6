"""bge-m3's three outputs on a random-weight XLM-R with random heads, computed with
transformers and FlagEmbedding's formulas (BGEM3 `_dense_embedding`, `_sparse_embedding`,
`_colbert_embedding`, `compute_score`), for bge's tests.

    python m3_reference.py OUT_DIR

Writes OUT_DIR/model (config.json, model.safetensors, sparse_linear.safetensors,
colbert_linear.safetensors), the same heads as FlagEmbedding saves them (torch.save of the
state dicts) in OUT_DIR/pt/{sparse_linear,colbert_linear}.pt, OUT_DIR/pt/awkward.pt (tensors
a state dict may hold: transposed, offset into a shared storage, f16, bf16, int64) with
their values in OUT_DIR/awkward.json, and OUT_DIR/reference.json.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import XLMRobertaConfig, XLMRobertaModel

SPECIAL = [0, 1, 2, 3]  # cls (bos), pad, eos, unk of XLM-R


def main():
    out = sys.argv[1]
    torch.manual_seed(1)
    cfg = XLMRobertaConfig(vocab_size=500, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64,
                           max_position_embeddings=40, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2)
    model = XLMRobertaModel(cfg, add_pooling_layer=False).eval()
    sparse = torch.nn.Linear(32, 1)
    colbert = torch.nn.Linear(32, 32)
    d = os.path.join(out, "model")
    model.save_pretrained(d, safe_serialization=True)
    save_file({"weight": sparse.weight.contiguous(), "bias": sparse.bias.contiguous()},
              os.path.join(d, "sparse_linear.safetensors"))
    save_file({"weight": colbert.weight.contiguous(), "bias": colbert.bias.contiguous()},
              os.path.join(d, "colbert_linear.safetensors"))
    pt = os.path.join(out, "pt")
    os.makedirs(pt)
    torch.save(sparse.state_dict(), os.path.join(pt, "sparse_linear.pt"))
    torch.save(colbert.state_dict(), os.path.join(pt, "colbert_linear.pt"))
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    awkward = {
        "transposed": base.t(),
        "offset": base[1:3, 2:5],
        "shared": base,
        "half": (base * 3).half(),
        "bf16": (base - 1).bfloat16(),
        "ints": torch.tensor([[-3, 7], [2**40, 0]], dtype=torch.int64),
    }
    torch.save(awkward, os.path.join(pt, "awkward.pt"))
    with open(os.path.join(out, "awkward.json"), "w") as f:
        json.dump({k: {"shape": list(v.shape), "values": v.double().flatten().tolist()}
                   for k, v in awkward.items()}, f)
    # A query and a passage sharing tokens 17 and 250 (17 twice in the passage).
    ids = [[0, 17, 250, 3, 42, 2, 1, 1], [0, 250, 17, 9, 17, 300, 77, 2]]
    mask = [[int(t != 1) for t in row] for row in ids]
    with torch.no_grad():
        h = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state
        dense = torch.nn.functional.normalize(h[:, 0], dim=-1)
        tw = torch.relu(sparse(h)).squeeze(-1)
        col = colbert(h[:, 1:]) * torch.tensor(mask)[:, 1:][:, :, None]
        col = torch.nn.functional.normalize(col, dim=-1)
    outs = []
    for r in range(2):
        lex = {}
        for w, i in zip(tw[r].tolist(), ids[r]):
            if i in SPECIAL or w <= 0:
                continue
            lex[str(i)] = max(lex.get(str(i), 0.0), w)
        n = sum(mask[r])
        outs.append({"dense": dense[r].tolist(), "sparse": lex, "colbert": col[r][: n - 1].tolist()})
    q, p = outs
    dense_s = float(torch.tensor(q["dense"]) @ torch.tensor(p["dense"]))
    sparse_s = sum(w * p["sparse"][k] for k, w in q["sparse"].items() if k in p["sparse"])
    qv, pv = torch.tensor(q["colbert"]), torch.tensor(p["colbert"])
    colbert_s = float((qv @ pv.T).max(dim=1).values.sum() / qv.shape[0])
    hybrid = (0.4 * dense_s + 0.2 * sparse_s + 0.4 * colbert_s) / 1.0
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"ids": ids, "mask": mask, "outputs": outs,
                   "scores": {"dense": dense_s, "sparse": sparse_s, "colbert": colbert_s,
                              "hybrid": hybrid}}, f)


if __name__ == "__main__":
    main()
