"""pytrec_eval's (trec_eval's) retrieval metrics on a run, for bge's tests.

    python trec_reference.py IN.json OUT.json

IN.json: {"qrels": {qid: {docid: relevance}}, "run": {qid: [docid, ...best first]}}.
Scores 1/(rank+1) make the order strict (no ties for trec_eval to break). MRR@10 is
`recip_rank` on the run cut to 10, as MTEB cuts it. Writes the means over queries of
ndcg_at_10, map_at_10, mrr_at_10, recall_at_1, recall_at_10, recall_at_100.
"""
import json
import sys

import pytrec_eval


def mean(per_query, key):
    return sum(v[key] for v in per_query.values()) / len(per_query)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    qrels = data["qrels"]
    run = {q: {d: 1.0 / (i + 1) for i, d in enumerate(docs)} for q, docs in data["run"].items()}
    top10 = {q: {d: 1.0 / (i + 1) for i, d in enumerate(docs[:10])}
             for q, docs in data["run"].items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map_cut.10", "recall.1,10,100"})
    per = full.evaluate(run)
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    out = {
        "ndcg_at_10": mean(per, "ndcg_cut_10"),
        "map_at_10": mean(per, "map_cut_10"),
        "mrr_at_10": mean(rr, "recip_rank"),
        "recall_at_1": mean(per, "recall_1"),
        "recall_at_10": mean(per, "recall_10"),
        "recall_at_100": mean(per, "recall_100"),
    }
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
