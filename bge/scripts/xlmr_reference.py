"""A random-weight XLM-RoBERTa (the architecture of bge-m3 and BGE's rerankers) saved by
transformers, with its last hidden states on a padded batch, for bge's tests.

    python xlmr_reference.py OUT_DIR

Writes OUT_DIR/model (config.json + model.safetensors) and OUT_DIR/reference.json
{"ids": [[...]], "mask": [[...]], "hidden": [[[...]]]} (float32, CPU, seed 0).
"""
import json
import os
import sys

import torch
from transformers import XLMRobertaConfig, XLMRobertaModel


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=128,
                           max_position_embeddings=40, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2)
    model = XLMRobertaModel(cfg).eval()
    model.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
    ids = [[0, 17, 250, 999, 42, 7, 2], [0, 5, 6, 2, 1, 1, 1], [0, 300, 2, 1, 1, 1, 1]]
    mask = [[int(t != 1) for t in row] for row in ids]
    with torch.no_grad():
        h = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"ids": ids, "mask": mask, "hidden": h.tolist()}, f)


if __name__ == "__main__":
    main()
