"""sentence-transformers' side of `bge bench`: embeds the sentences with
SentenceTransformer(MODEL_DIR) on the CPU at a batch size and dtype, after one warm-up
batch, and reports the fastest of REPEATS timed runs (model loading excluded, tokenisation
included, as on our side).

    python st_bench.py MODEL_DIR SENTENCES.json BATCH_SIZE DTYPE REPEATS OUT.json

DTYPE is float32 or bfloat16 (the model's weights are cast, as `model.to(dtype)` does).
Writes {"seconds", "threads", "embeddings"} to OUT.json.
"""
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def main():
    model_dir, sentences_path, batch, dtype, repeats, out = sys.argv[1:7]
    with open(sentences_path, encoding="utf-8") as f:
        sentences = json.load(f)
    model = SentenceTransformer(model_dir, device="cpu").to(getattr(torch, dtype))
    batch = int(batch)
    model.encode(sentences[:batch], batch_size=batch)
    seconds = float("inf")
    for _ in range(int(repeats)):
        start = time.perf_counter()
        emb = model.encode(sentences, batch_size=batch, convert_to_tensor=True)
        seconds = min(seconds, time.perf_counter() - start)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"seconds": seconds, "threads": torch.get_num_threads(),
                   "embeddings": emb.float().tolist()}, f)


if __name__ == "__main__":
    main()
