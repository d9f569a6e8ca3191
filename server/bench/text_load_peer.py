#!/usr/bin/env python3
"""PyTorch peer of `traum-bench text-load`: `transformers`' ClapModel text tower behind the same
batching policy as Traum's engine, driven by the Rust side one JSON line per command.

    python3 server/bench/text_load_peer.py DIR THREADS BATCH WAIT_MS

How it batches (the best we found for a CPU server in Python): one thread owns the model and takes
the oldest waiting query, everything already queued up to BATCH, then whatever arrives until the
oldest has waited WAIT_MS; the batch is tokenised padded to its longest text and run as one
`get_text_features` call under `torch.inference_mode()` with THREADS intra-op threads (torch
releases the GIL inside its kernels, so the thread offering the load keeps its schedule). Queries
whose caller has already given up are left out, as the engine does. Repeats of known texts are
answered from a dict, as the engine's cache answers them.

Commands on stdin, one reply line each on stdout:
    {"warm": [texts]}                      encode them (and cache them); reply {"ok": true}
    {"new": [...], "known": [...], "rate": R, "repeats": K, "deadline_ms": D}
        offer the new texts at R per second, each followed by K cached repeats of known texts;
        reply {"new_ms": [...], "repeat_ms": [...], "timed_out": n, "passes": p, "elapsed": s}
"""

import json
import queue
import sys
import threading
import time

import torch
from transformers import AutoTokenizer, ClapModel
from transformers.utils import logging

logging.set_verbosity_error()

directory, threads, batch_size, wait_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
torch.set_num_threads(threads)
model = ClapModel.from_pretrained(directory).eval()
tokenizer = AutoTokenizer.from_pretrained(directory)
cache: dict[str, torch.Tensor] = {}


def encode(texts: list[str]) -> torch.Tensor:
    ids = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        output = model.get_text_features(**ids)
    # transformers 5 returns a model output; 4.x returned the tensor itself.
    output = getattr(output, "pooler_output", output)
    return torch.nn.functional.normalize(output, dim=-1)


class Query:
    __slots__ = ("text", "arrived", "deadline", "answered")

    def __init__(self, text: str, arrived: float, deadline: float) -> None:
        self.text = text
        self.arrived = arrived
        self.deadline = deadline
        self.answered: float | None = None


class Batcher:
    def __init__(self) -> None:
        self.pending: queue.Queue[Query] = queue.Queue()
        self.passes = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            batch = [self.pending.get()]
            while len(batch) < batch_size:
                try:
                    batch.append(self.pending.get_nowait())
                except queue.Empty:
                    break
            gather_until = batch[0].arrived + wait_ms / 1000.0
            while len(batch) < batch_size:
                left = gather_until - time.perf_counter()
                if left <= 0:
                    break
                try:
                    batch.append(self.pending.get(timeout=left))
                except queue.Empty:
                    break
            now = time.perf_counter()
            live = [q for q in batch if q.deadline > now]
            if not live:
                continue
            vectors = encode([q.text for q in live])
            self.passes += 1
            done = time.perf_counter()
            for q, vector in zip(live, vectors):
                cache[q.text] = vector
                q.answered = done


batcher = Batcher()


def offer(command: dict) -> dict:
    new, known = command["new"], command["known"]
    rate, repeats, deadline = command["rate"], command["repeats"], command["deadline_ms"] / 1000.0
    passes_before = batcher.passes
    queries: list[Query] = []
    repeat_ms: list[float] = []
    owed = 0.0
    start = time.perf_counter()
    for i, text in enumerate(new):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now = time.perf_counter()
        query = Query(text, now, now + deadline)
        queries.append(query)
        batcher.pending.put(query)
        owed += repeats
        while owed >= 1.0:
            owed -= 1.0
            at = time.perf_counter()
            if known[i % len(known)] in cache:
                repeat_ms.append((time.perf_counter() - at) * 1000.0)
    last_deadline = queries[-1].deadline if queries else start
    while any(q.answered is None for q in queries) and time.perf_counter() < last_deadline:
        time.sleep(0.005)
    new_ms = [
        (q.answered - q.arrived) * 1000.0
        for q in queries
        if q.answered is not None and q.answered <= q.deadline
    ]
    ends = [q.answered if q.answered is not None else q.deadline for q in queries]
    return {
        "new_ms": new_ms,
        "repeat_ms": repeat_ms,
        "timed_out": len(queries) - len(new_ms),
        "passes": batcher.passes - passes_before,
        "elapsed": (max(ends, default=start) - start),
    }


for line in sys.stdin:
    command = json.loads(line)
    if "warm" in command:
        for text in command["warm"]:
            cache[text] = encode([text])[0]
        encode(command["warm"][:batch_size])
        reply: dict = {"ok": True}
    else:
        reply = offer(command)
    print(json.dumps(reply), flush=True)
