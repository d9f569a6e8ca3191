"""Python client of the Traum audio search server.

    from traum import TraumClient

    with TraumClient("localhost:50051", api_key="traum_...") as client:
        result = client.upload_file("kick.wav", tags=["drums"])
        job = client.follow_job(result.job_id)
        for hit in client.search_text("punchy kick").hits:
            print(hit.score, hit.file.filename)

The generated messages and stubs are in `traum.v1` (`audio_pb2`,
`search_pb2`, `analytics_pb2`, `admin_pb2` and their `*_pb2_grpc`).
"""

from traum.client import UPLOAD_CHUNK_BYTES, Progress, TraumClient
from traum.errors import FieldViolation, JobStreamEnded, Resource, TraumError

__all__ = [
    "UPLOAD_CHUNK_BYTES",
    "FieldViolation",
    "JobStreamEnded",
    "Progress",
    "Resource",
    "TraumClient",
    "TraumError",
]
