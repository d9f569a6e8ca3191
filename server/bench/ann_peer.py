#!/usr/bin/env python3
"""hnswlib peer of `traum-bench ann`: the same vectors and queries (raw little-endian f32, base
vectors first, then queries), the same M / ef_construction, single-threaded queries. Prints one
JSON object with build time and, per ef, QPS, p50/p99 latency and recall@10 against exact search.

    python3 server/bench/ann_peer.py FILE N DIM QUERIES BUILD_THREADS M EF_CONSTRUCTION EF...
"""

import json
import sys
import time

import hnswlib
import numpy as np

path, n, dim, nq, threads, m, efc = sys.argv[1], *map(int, sys.argv[2:8])
efs = [int(e) for e in sys.argv[8:]]
data = np.fromfile(path, dtype=np.float32).reshape(-1, dim)
base, queries = data[:n], data[n : n + nq]
truth = np.empty((nq, 10), dtype=np.int64)
for start in range(0, nq, 100):
    scores = queries[start : start + 100] @ base.T
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    truth[start : start + 100] = np.take_along_axis(top, order, axis=1)
index = hnswlib.Index(space="ip", dim=dim)
index.init_index(max_elements=n, ef_construction=efc, M=m)
index.set_num_threads(threads)
started = time.perf_counter()
index.add_items(base, np.arange(n))
result = {"build_s": time.perf_counter() - started, "runs": []}
index.set_num_threads(1)
index.set_ef(max(efs + [10]))
index.knn_query(queries, k=10)  # untimed warm-up, as Traum's side does
for ef in efs:
    index.set_ef(max(ef, 10))
    latencies, found = [], 0
    for i in range(nq):
        t0 = time.perf_counter()
        labels, _ = index.knn_query(queries[i : i + 1], k=10)
        latencies.append(time.perf_counter() - t0)
        found += len(set(labels[0].tolist()) & set(truth[i].tolist()))
    latencies.sort()
    total = sum(latencies)
    result["runs"].append(
        {
            "ef": ef,
            "qps": nq / total,
            "p50_ms": latencies[nq // 2] * 1000,
            "p99_ms": latencies[min(nq - 1, int(nq * 0.99))] * 1000,
            "recall": found / (10 * nq),
        }
    )
print(json.dumps(result))
