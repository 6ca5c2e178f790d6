"""sentence-transformers' own embeddings and the Hugging Face tokenizer's ids, for bge's tests.

    python st_reference.py MODEL_DIR SENTENCES.json OUT.json

Writes {"max_seq_length", "ids": [[...]], "embeddings": [[...]]} for the sentences (a JSON
list of strings), computed by SentenceTransformer(MODEL_DIR) on the CPU in float32.
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402


def main():
    model_dir, sentences_path, out_path = sys.argv[1:4]
    with open(sentences_path, encoding="utf-8") as f:
        sentences = json.load(f)
    model = SentenceTransformer(model_dir, device="cpu")
    tok = model.tokenizer
    ids = [tok(s, truncation=True, max_length=model.max_seq_length)["input_ids"] for s in sentences]
    emb = model.encode(sentences, batch_size=4, convert_to_numpy=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"max_seq_length": model.max_seq_length, "ids": ids,
                   "embeddings": emb.astype(float).tolist()}, f)


if __name__ == "__main__":
    main()
