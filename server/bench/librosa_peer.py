#!/usr/bin/env python3
"""Peer timing for `traum-bench audio`: what the Python stack does per file.

Loads the file at 48 kHz mono, tracks beats and computes the CLAP-shaped
mel spectrogram, single-threaded, and prints JSON timings (seconds, best of
--runs). Run by traum-bench; needs `pip install librosa soundfile`.
"""
import argparse
import json
import os
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import librosa  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    # Warm-up: numba compiles beat_track's kernels on first use; a server
    # would pay that once, not per file.
    y, sr = librosa.load(args.file, sr=48000, mono=True, duration=5.0)
    librosa.beat.beat_track(y=y, sr=sr)
    librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=480, n_mels=64, fmin=50, fmax=14000)
    best = None
    for _ in range(args.runs):
        t0 = time.perf_counter()
        y, sr = librosa.load(args.file, sr=48000, mono=True)
        t1 = time.perf_counter()
        tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
        t2 = time.perf_counter()
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=480, n_mels=64, fmin=50, fmax=14000)
        librosa.power_to_db(mel)
        t3 = time.perf_counter()
        run = {"load_s": t1 - t0, "beat_s": t2 - t1, "mel_s": t3 - t2, "total_s": t3 - t0,
               "bpm": float(tempo.item() if hasattr(tempo, "item") else tempo), "librosa": librosa.__version__}
        if best is None or run["total_s"] < best["total_s"]:
            best = run
    print(json.dumps(best))


if __name__ == "__main__":
    main()
