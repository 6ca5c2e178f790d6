"""datatrove 0.10.1's MinHash deduplication (signatures, buckets, clusters, filter) on a folder of
JSON Lines, single task and single worker, timed: the peer `flagdata bench` compares with.

    python datatrove_minhash.py INPUT_DIR WORK_DIR --n-grams 5 --buckets 14 --hashes 8

Prints one JSON line: {"seconds": ..., "documents_in": ..., "documents_out": ...}.
"""
import argparse, glob, gzip, json, os, shutil, sys, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("work")
    ap.add_argument("--n-grams", type=int, default=5)
    ap.add_argument("--buckets", type=int, default=14)
    ap.add_argument("--hashes", type=int, default=8)
    a = ap.parse_args()

    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    shutil.rmtree(a.work, ignore_errors=True)
    cfg = MinhashConfig(hash_config=HashConfig(precision=64, hash_fc="xxhash"), n_grams=a.n_grams, num_buckets=a.buckets, hashes_per_bucket=a.hashes)
    w = a.work
    reader = lambda: JsonlReader(a.input, glob_pattern="*.jsonl")
    s1 = LocalPipelineExecutor(pipeline=[reader(), MinhashDedupSignature(output_folder=f"{w}/signatures", config=cfg)], tasks=1, workers=1, logging_dir=f"{w}/logs/sig")
    s2 = LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=f"{w}/signatures", output_folder=f"{w}/buckets", config=cfg)], tasks=cfg.num_buckets, workers=1, logging_dir=f"{w}/logs/buckets", depends=s1)
    s3 = LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=f"{w}/buckets", output_folder=f"{w}/remove_ids", config=cfg)], tasks=1, workers=1, logging_dir=f"{w}/logs/clusters", depends=s2)
    s4 = LocalPipelineExecutor(pipeline=[reader(), MinhashDedupFilter(input_folder=f"{w}/remove_ids"), JsonlWriter(f"{w}/deduplicated")], tasks=1, workers=1, logging_dir=f"{w}/logs/filter", depends=s3)
    start = time.perf_counter()
    s4.run()
    seconds = time.perf_counter() - start
    docs_in = sum(1 for f in glob.glob(os.path.join(a.input, "*.jsonl")) for _ in open(f, encoding="utf-8"))
    docs_out = sum(1 for f in glob.glob(f"{w}/deduplicated/*.jsonl.gz") for _ in gzip.open(f, "rt", encoding="utf-8"))
    print(json.dumps({"seconds": seconds, "documents_in": docs_in, "documents_out": docs_out}))


if __name__ == "__main__":
    sys.exit(main())
