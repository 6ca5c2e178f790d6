"""Reads a flagdata-written Megatron dataset with megatron-core's own reader and checks it
holds exactly the documents' tokens, as Hugging Face `tokenizers` encodes them, each followed
by the end-of-document token, one sequence per document.

    python3 check_megatron.py --prefix PREFIX --docs DOCS.jsonl.zst --tokenizer tokenizer.json --eod ID

Needs megatron-core==0.16.1, numpy, tokenizers and zstandard on the path (and torch, which
megatron-core imports); `cargo xtask test` provides them.
"""
import argparse, io, json, sys, warnings

import numpy
import zstandard
from tokenizers import Tokenizer

warnings.filterwarnings("ignore")
from megatron.core.datasets.indexed_dataset import IndexedDataset  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--eod", type=int, required=True)
    a = ap.parse_args()

    with open(a.docs, "rb") as f:
        lines = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8").read().splitlines()
    texts = [json.loads(l)["text"] for l in lines if l.strip()]
    tok = Tokenizer.from_file(a.tokenizer)
    want = [enc.ids + [a.eod] for enc in tok.encode_batch(texts, add_special_tokens=False)]

    ds = IndexedDataset(a.prefix)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    dtype = numpy.uint16 if vocab < 65500 else numpy.int32
    problems = []
    if ds.index.dtype != dtype:
        problems.append(f"dtype {ds.index.dtype}, expected {dtype}")
    if len(ds) != len(want):
        problems.append(f"{len(ds)} sequences, expected {len(want)}")
    if not numpy.array_equal(ds.document_indices, numpy.arange(len(want) + 1)):
        problems.append("document indices are not 0..n")
    for i, ids in enumerate(want[: len(ds)]):
        got = ds[i]
        if got.tolist() != ids:
            problems.append(f"sequence {i} differs: {got.tolist()[:12]} vs {ids[:12]}")
            break
    tokens = int(sum(len(w) for w in want))
    if problems:
        print("MISMATCH: " + "; ".join(problems))
        sys.exit(1)
    print(f"megatron-core read {len(ds)} documents, {tokens} tokens ({dtype.__name__}): identical")


if __name__ == "__main__":
    main()
