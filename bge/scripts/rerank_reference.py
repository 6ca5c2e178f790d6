"""Cross-encoder reranker scores on random-weight models saved by transformers: an
XLMRobertaForSequenceClassification (bge-reranker-base/-large/-v2-m3's architecture) and a
BertForSequenceClassification, for bge's tests.

    python rerank_reference.py OUT_DIR TOKENIZER_DIR

Both models get TOKENIZER_DIR's tokenizer (a BERT WordPiece one: its ids fit the random
vocabularies) and are saved as OUT_DIR/xlmr and OUT_DIR/bert; OUT_DIR/reference.json holds,
per model, each pair's token ids, token types and logit, every pair run alone (no padding),
tokenised with truncation=True (longest first) at MAX_LENGTH tokens.
"""
import json
import os
import shutil
import sys

import torch
from transformers import (AutoTokenizer, BertConfig, BertForSequenceClassification,
                          XLMRobertaConfig, XLMRobertaForSequenceClassification)

MAX_LENGTH = 32
PAIRS = [
    ["what is dense retrieval?", "Dense retrieval embeds queries and passages as vectors."],
    ["where is Beijing", "北京是中华人民共和国的首都。"],
    ["a long passage", " ".join(["retrieval augmented generation with rerankers"] * 12)],
    [" ".join(["a very long query about embeddings"] * 8), "short passage"],
]


def main():
    out, tok_dir = sys.argv[1:3]
    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(3)
    common = dict(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, num_labels=1)
    models = {
        "xlmr": XLMRobertaForSequenceClassification(XLMRobertaConfig(
            max_position_embeddings=MAX_LENGTH + 2, type_vocab_size=1, pad_token_id=1,
            bos_token_id=0, eos_token_id=2, **common)),
        "bert": BertForSequenceClassification(BertConfig(
            max_position_embeddings=64, type_vocab_size=2, pad_token_id=0, **common)),
    }
    ref = {"max_length": MAX_LENGTH, "pairs": PAIRS}
    for name, model in models.items():
        model.eval()
        d = os.path.join(out, name)
        model.save_pretrained(d, safe_serialization=True)
        shutil.copy(os.path.join(tok_dir, "tokenizer.json"), d)
        rows = []
        for q, p in PAIRS:
            e = tok(q, p, truncation=True, max_length=MAX_LENGTH)
            types = e["token_type_ids"] if name == "bert" else [0] * len(e["input_ids"])
            with torch.no_grad():
                logit = model(input_ids=torch.tensor([e["input_ids"]]),
                              token_type_ids=torch.tensor([types]),
                              attention_mask=torch.tensor([e["attention_mask"]])).logits
            rows.append({"ids": e["input_ids"], "types": e["token_type_ids"],
                         "logit": float(logit[0, 0])})
        ref[name] = rows
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
