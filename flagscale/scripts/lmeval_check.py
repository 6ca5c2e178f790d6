"""End-to-end check that EleutherAI lm-eval can score a model served by `flagscale serve`.

    python lmeval_check.py --base-url http://127.0.0.1:18231/v1/completions --gguf MODEL.gguf

lm-eval's `local-completions` model scores a multiple-choice answer by POSTing the prompt
plus the answer to /v1/completions with `echo: true, logprobs: 1, max_tokens: 1` and summing
the echoed `token_logprobs` of the answer's tokens. So a score clearly above chance on an
easy task (lmeval_task/) shows that echo and per-token logprobs line up with the prompt.

Prints the task's results as JSON and exits 1 when acc <= chance + margin.
Needs lm-eval==0.4.13 and its dependencies on PYTHONPATH; makes no network access except
to --base-url.
"""
import argparse
import json
import os
import sys
import tempfile

# Everything is local: the dataset is a JSONL file and the tokenizer comes from the GGUF.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

TASK = "flagscale_easy_mc"
TASK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lmeval_task")


def tokenizer_dir(args, tmp):
    """lm-eval needs a local tokenizer even with tokenized_requests=False: it counts the
    context's tokens to know where the answer starts in the echoed logprobs (the server
    tokenizes the text itself, and the two must agree). The server has no /tokenizer_info
    or /detokenize, so lm-eval's `remote` backend is out; build a Hugging Face tokenizer
    from the GGUF's own vocabulary instead."""
    if args.tokenizer:
        return args.tokenizer
    from transformers import AutoTokenizer

    d, f = os.path.split(os.path.abspath(args.gguf))
    AutoTokenizer.from_pretrained(d, gguf_file=f).save_pretrained(tmp)
    return tmp


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True, help=".../v1/completions")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--gguf", help="the served GGUF, to build the tokenizer from")
    src.add_argument("--tokenizer", help="a local Hugging Face tokenizer folder instead")
    p.add_argument("--model-name", default="flagscale", help="`model` field sent to the server")
    p.add_argument("--batch-size", type=int, default=1,
                   help=">1 sends a list of prompts per request")
    p.add_argument("--chance", type=float, default=0.25, help="1 / number of choices")
    p.add_argument("--margin", type=float, default=0.2, help="acc must exceed chance + margin")
    p.add_argument("--limit", type=int, default=None, help="score only the first N questions")
    args = p.parse_args()

    import lm_eval
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        model_args = {
            "base_url": args.base_url,
            "model": args.model_name,
            "tokenizer_backend": "huggingface",
            "tokenizer": tokenizer_dir(args, tmp),
            "tokenized_requests": False,  # send text; the server tokenizes
            "num_concurrent": 1,
            "max_retries": 3,
            "batch_size": args.batch_size,
        }
        # `data_files` in the YAML is relative, and `datasets` resolves it against the cwd.
        os.chdir(TASK_DIR)
        out = lm_eval.simple_evaluate(
            model="local-completions",
            model_args=model_args,
            tasks=[TASK],
            task_manager=TaskManager(include_path=TASK_DIR, include_defaults=False),
            limit=args.limit,
            log_samples=False,
        )

    res = {k: v for k, v in out["results"][TASK].items() if k != "alias"}
    print(json.dumps({TASK: res}, indent=2, sort_keys=True))
    acc, floor = res["acc,none"], args.chance + args.margin
    if acc <= floor:
        print(f"FAIL: acc {acc:.3f} <= chance {args.chance} + margin {args.margin}", file=sys.stderr)
        sys.exit(1)
    print(f"OK: acc {acc:.3f} > {floor:.3f}")


if __name__ == "__main__":
    main()
