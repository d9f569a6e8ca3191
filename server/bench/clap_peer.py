#!/usr/bin/env python3
"""PyTorch peer of `traum-bench clap`: times `transformers`' ClapModel on a checkpoint directory
with the same inputs as the Rust side and prints one JSON object.

    python3 server/bench/clap_peer.py DIR THREADS BATCH REPS
"""

import json
import sys
import time

import torch
from transformers import AutoTokenizer, ClapModel

QUERY = "upbeat electronic music with heavy bass"

directory, threads, batch, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
model = ClapModel.from_pretrained(directory).eval()
tokenizer = AutoTokenizer.from_pretrained(directory)
bins = model.config.audio_config.num_mel_bins
# The same deterministic dB-like window the Rust side feeds.
index = torch.arange(1001 * bins, dtype=torch.float32)
window = (-40.0 + 10.0 * torch.sin(index * 0.013)).reshape(1, 1, 1001, bins)
result = {"threads": threads, "torch": torch.__version__}
with torch.inference_mode():
    model.get_audio_features(input_features=window)
    for b in (1, batch):
        x = window.repeat(b, 1, 1, 1)
        start = time.perf_counter()
        for _ in range(reps):
            model.get_audio_features(input_features=x)
        result[f"audio_windows_per_s_batch{b}"] = reps * b / (time.perf_counter() - start)
    ids = tokenizer(QUERY, return_tensors="pt")
    model.get_text_features(**ids)
    start = time.perf_counter()
    for _ in range(20):
        model.get_text_features(**ids)
    result["text_ms_per_query"] = (time.perf_counter() - start) * 1000 / 20
print(json.dumps(result))
