#!/usr/bin/env python3
"""PyTorch peer of `traum-bench clap`: times `transformers`' ClapModel on a checkpoint directory
with the same inputs as the Rust side and prints one JSON object.

    python3 server/bench/clap_peer.py DIR THREADS BATCH REPS [cpu|cuda]

On `cuda` the model and inputs live on the GPU and every embedding is copied back to the host,
as the Rust side reads its embeddings back, so both timings include the transfer.
"""

import json
import sys
import time

import torch
from transformers import AutoTokenizer, ClapModel

QUERY = "upbeat electronic music with heavy bass"

directory, threads, batch, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
torch.set_num_threads(threads)
model = ClapModel.from_pretrained(directory).eval().to(device)
tokenizer = AutoTokenizer.from_pretrained(directory)
bins = model.config.audio_config.num_mel_bins
# The same deterministic dB-like window the Rust side feeds.
index = torch.arange(1001 * bins, dtype=torch.float32)
window = (-40.0 + 10.0 * torch.sin(index * 0.013)).reshape(1, 1, 1001, bins).to(device)
result = {"threads": threads, "torch": torch.__version__, "device": device}
if device == "cuda":
    result["gpu"] = torch.cuda.get_device_name()


def embeddings(output):
    # transformers 5 returns a model output holding the normalised projection as `pooler_output`;
    # 4.x returned that tensor itself.
    return getattr(output, "pooler_output", output)


def embed_audio(x):
    return embeddings(model.get_audio_features(input_features=x)).cpu()


def embed_text(ids):
    return embeddings(model.get_text_features(**ids)).cpu()


with torch.inference_mode():
    embed_audio(window)
    for b in (1, batch):
        x = window.repeat(b, 1, 1, 1)
        embed_audio(x)
        start = time.perf_counter()
        for _ in range(reps):
            embed_audio(x)
        result[f"audio_windows_per_s_batch{b}"] = reps * b / (time.perf_counter() - start)
    ids = tokenizer(QUERY, return_tensors="pt").to(device)
    embed_text(ids)
    start = time.perf_counter()
    for _ in range(20):
        embed_text(ids)
    result["text_ms_per_query"] = (time.perf_counter() - start) * 1000 / 20
print(json.dumps(result))
