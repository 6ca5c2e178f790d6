"""sentence-transformers' side of `bge bench-rerank`.

    python rerank_bench.py make ENCODER_DIR OUT_DIR
    python rerank_bench.py run MODEL_DIR PAIRS.json BATCH_SIZE MAX_LENGTH DTYPE REPEATS OUT.json

`make` turns a BERT encoder folder into a cross-encoder of the architecture of
cross-encoder/ms-marco-MiniLM-L-6-v2 (BertForSequenceClassification, one label): the
encoder's weights and pooler as they are, the classifier drawn with torch's seed 0 (no
public package carries a reranker's trained weights; the speed does not depend on them).
Saved with transformers' save_pretrained (safetensors) beside the encoder's tokenizer files.

`run` scores the (query, passage) pairs with CrossEncoder(MODEL_DIR) on the CPU at a batch
size, a length in tokens a pair (longest first truncation) and dtype (the weights cast, as `model.to(dtype)` does), raw logits (no sigmoid), after
one warm-up batch, and reports the fastest of REPEATS timed runs (loading excluded,
tokenisation included, as on our side). Writes {"seconds", "threads", "scores"} to OUT.json.
"""
import json
import os
import shutil
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json"]


def make(encoder_dir, out):
    from transformers import BertForSequenceClassification
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(encoder_dir, num_labels=1)
    model.save_pretrained(out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        src = os.path.join(encoder_dir, name)
        if os.path.exists(src):
            shutil.copy(src, out)


def run(model_dir, pairs_path, batch, max_length, dtype, repeats, out):
    from sentence_transformers import CrossEncoder
    with open(pairs_path, encoding="utf-8") as f:
        pairs = [tuple(p) for p in json.load(f)]
    model = CrossEncoder(model_dir, device="cpu", max_length=int(max_length))
    model.model.to(getattr(torch, dtype))
    batch = int(batch)
    identity = torch.nn.Identity()
    model.predict(pairs[:batch], batch_size=batch, activation_fn=identity)
    seconds = float("inf")
    for _ in range(int(repeats)):
        start = time.perf_counter()
        scores = model.predict(pairs, batch_size=batch, activation_fn=identity,
                               convert_to_numpy=True)
        seconds = min(seconds, time.perf_counter() - start)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"seconds": seconds, "threads": torch.get_num_threads(),
                   "scores": [float(s) for s in scores]}, f)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "make":
        make(*args)
    elif mode == "run":
        run(*args)
    else:
        sys.exit(f"unknown mode {mode!r}: make or run")


if __name__ == "__main__":
    main()
