#!/usr/bin/env python3
"""Uploads an audio file to a Traum server, waits until it is processed,
then searches by text and prints the hits.

    python3 examples/search.py kick.wav "punchy kick drum"
    python3 examples/search.py --address https://traum.example.com --api-key traum_... loop.flac "warm pad"

The key may also come from $TRAUM_API_KEY.
"""

from __future__ import annotations

import argparse
import os
import sys

from traum import TraumClient, TraumError
from traum.v1 import audio_pb2


def main() -> int:
    parser = argparse.ArgumentParser(description="Upload a file, wait for it, search by text.")
    parser.add_argument("file", help="audio file to upload")
    parser.add_argument("query", help="text to search for")
    parser.add_argument("--address", default="localhost:50051", help="HOST:PORT, http:// or https:// URL")
    parser.add_argument("--api-key", default=os.environ.get("TRAUM_API_KEY"), help="API key (or $TRAUM_API_KEY)")
    parser.add_argument("--tag", action="append", default=[], help="tag to attach (repeatable)")
    parser.add_argument("--limit", type=int, default=10, help="hits to show")
    args = parser.parse_args()

    status_line = [False]

    def status(text: str) -> None:
        # One line, rewritten in place.
        print(f"\r{text:<40}", end="", file=sys.stderr, flush=True)
        status_line[0] = True

    def end_status() -> None:
        if status_line[0]:
            print(file=sys.stderr)
            status_line[0] = False

    try:
        with TraumClient(args.address, api_key=args.api_key) as client:
            result = client.upload_file(
                args.file,
                tags=args.tag,
                progress=lambda sent, total: status(f"uploading {sent}/{total} bytes"),
            )
            end_status()
            if result.duplicate:
                print(f"already stored as {result.file_id}", file=sys.stderr)
            job = client.follow_job(
                result.job_id,
                on_event=lambda j: status(f"{audio_pb2.JobStage.Name(j.stage)} {j.progress:.0%}"),
            )
            end_status()
            if job.state != audio_pb2.JOB_STATE_SUCCEEDED:
                print(f"processing failed: {job.error}", file=sys.stderr)
                return 1
            response = client.search_text(args.query, limit=args.limit)
    except (TraumError, OSError) as err:
        end_status()
        print(f"error: {err}", file=sys.stderr)
        return 1

    for rank, hit in enumerate(response.hits, start=1):
        marker = "  <- uploaded" if hit.file.file_id == result.file_id else ""
        print(
            f"{rank:2}. {hit.score:.3f}  {hit.file.filename}"
            f"  [{hit.segment_start_seconds:.1f}-{hit.segment_end_seconds:.1f} s]{marker}"
        )
    print(f"{len(response.hits)} hits in {response.took_ms:.1f} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
