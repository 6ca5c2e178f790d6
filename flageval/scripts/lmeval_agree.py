"""lm-eval's own numbers for a flageval task, to check that flageval agrees with it item by item.

    python lmeval_agree.py --task-yaml T.yaml --data-file DATA.csv --model-dir HF_DIR \
        --limit N [--num-fewshot K] --out OUT.json

Runs lm-eval 0.4.13's `hf` backend (transformers, fp32, CPU) on the task as lm-eval reads the
same YAML (flageval's own keys removed; the data file given explicitly, other dataset_kwargs
such as `field` kept), and writes {"acc", "acc_norm", "seconds" (simple_evaluate's wall time,
model loading included), "items": [{"doc_id", "lls": [...], "greedy": [...]}]}.
Needs lm-eval, transformers and torch on PYTHONPATH; no network.
"""
import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import yaml  # noqa: E402

# flageval's additions to lm-eval's task keys.
OURS = ("capability", "task_type", "metric_category", "circular_fields")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--task-yaml", required=True)
    p.add_argument("--data-file", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-fewshot", type=int, default=None)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    with open(a.task_yaml, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    for k in OURS:
        cfg.pop(k, None)
    split = cfg.get("test_split") or cfg.get("validation_split") or cfg.get("training_split")
    kwargs = dict(cfg.get("dataset_kwargs") or {})
    kwargs["data_files"] = {split: os.path.abspath(a.data_file)}
    cfg["dataset_kwargs"] = kwargs
    if a.num_fewshot is not None:
        cfg["num_fewshot"] = a.num_fewshot
    name = cfg["task"]

    import lm_eval
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, f"{name}.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f, allow_unicode=True)
        start = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model="hf",
            model_args={"pretrained": a.model_dir, "dtype": "float32", "device": "cpu"},
            tasks=[name],
            task_manager=TaskManager(include_path=tmp, include_defaults=False),
            limit=a.limit,
            batch_size=a.batch_size,
            log_samples=True,
        )
        seconds = time.perf_counter() - start
    res = out["results"][name]
    items = []
    for s in sorted(out["samples"][name], key=lambda s: s["doc_id"]):
        items.append({
            "doc_id": s["doc_id"],
            "lls": [float(r[0]) for r in s["filtered_resps"]],
            "greedy": [bool(r[1]) for r in s["filtered_resps"]],
        })
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump({"acc": res["acc,none"], "acc_norm": res["acc_norm,none"],
                   "seconds": seconds, "items": items}, f)


if __name__ == "__main__":
    main()
