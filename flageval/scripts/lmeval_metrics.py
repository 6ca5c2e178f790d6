"""lm-eval 0.4.13's own aggregations on fixed inputs, for flageval's metric test.

    python lmeval_metrics.py   (lm-eval and numpy on PYTHONPATH)

Prints one JSON object: the aggregation of each input under lm-eval's function, its
its word count rule and its rolling windows.
"""
import json
import re

from lm_eval.api import metrics as m
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

scores = [1, 0, 1, 1, 0, 1, 1]
lls = [-12.5, -30.25, -7.0, -19.75]
words = [3, 9, 2, 6]
texts = ["  leading and trailing  ", "one", "多 个\t词\n"]
print(json.dumps({
    "mean": m.mean(scores),
    "mean_stderr": m.mean_stderr(scores),
    "perplexity": m.perplexity(lls),
    "weighted_perplexity": m.weighted_perplexity(list(zip(lls, words))),
    "bits_per_byte": m.bits_per_byte(list(zip(lls, words))),
    "pooled_stderr": m.pooled_sample_stderr([0.05, 0.02, 0.1], [70, 300, 12]),
    "word_counts": [len(re.split(r"\s+", t)) for t in texts],
    "windows": [make_disjoint_window(w) for w in get_rolling_token_windows(
        list(range(23)), prefix_token=-1, max_seq_len=8, context_len=1)],
}))
