# `bge rerank` on the CPU and on CUDA (f32) against transformers' logits, on the random-weight
# cross-encoders of ../rerank_reference.py (XLM-R and BERT, max length 32): on CUDA a batch is
# padded to a multiple of 16 tokens, and the masked padding must leave every logit unchanged.
# DIR holds the `bge` binary and DIR/rr the output of
#   python3 ../rerank_reference.py DIR/rr MINILM_DIR
# usage: OUT=... bash rerank.sh DIR
set -u
DIR=$1
TL=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
export LD_LIBRARY_PATH=$TL/lib:$(ls -d "$TL"/../nvidia/*/lib | tr '\n' ':')/usr/local/cuda/lib64
python3 - "$DIR/rr/reference.json" "$OUT/pairs.jsonl" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for q, p in ref["pairs"]:
        f.write(json.dumps({"query": q, "passages": [p]}) + "\n")
PY
for model in xlmr bert; do
  for dev in cpu cuda; do
    "$DIR/bge" --device "$dev" rerank --model "$DIR/rr/$model" --input "$OUT/pairs.jsonl" \
      --output "$OUT/rr-$model-$dev.jsonl" --max-length 32 --batch-size 4 2>&1 | tail -1
  done
done
python3 - "$DIR/rr/reference.json" "$OUT" <<'PY'
import json, sys
ref, out = json.load(open(sys.argv[1])), sys.argv[2]
for model in ("xlmr", "bert"):
    want = [r["logit"] for r in ref[model]]
    for dev in ("cpu", "cuda"):
        got = [json.loads(l)["scores"][0] for l in open(f"{out}/rr-{model}-{dev}.jsonl")]
        worst = max(abs(g - w) for g, w in zip(got, want))
        print(f"{model} {dev}: {len(got)} pairs, max |logit - transformers| {worst:.2e}")
PY
