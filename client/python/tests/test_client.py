"""The Python client against a real traum-server (see conftest.py)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from traum import JobStreamEnded, Resource, TraumClient, TraumError
from traum.v1 import audio_pb2, search_pb2

from .conftest import FIXTURES, Server, sine_wav

# Unique to the files of this module, so filtered searches see only them.
TAG = "py-client-test"


@dataclass
class Uploaded:
    path: Path
    data: bytes
    result: audio_pb2.UploadResult
    progress: list[tuple[int, int]]
    job: audio_pb2.Job


@pytest.fixture(scope="module")
def tone(client: TraumClient, tmp_path_factory: pytest.TempPathFactory) -> Uploaded:
    """A generated 3 s WAV uploaded in small chunks and processed."""
    path = tmp_path_factory.mktemp("audio") / "python sine 330.wav"
    data = sine_wav(330.0, 3.0)
    path.write_bytes(data)
    calls: list[tuple[int, int]] = []
    result = client.upload_file(
        path,
        tags=[f"  {TAG.upper()} ", "Sine"],
        chunk_size=32 * 1024,
        progress=lambda sent, total: calls.append((sent, total)),
    )
    job = client.follow_job(result.job_id)
    return Uploaded(path, data, result, calls, job)


def test_upload_reports_progress_up_to_the_total(tone: Uploaded) -> None:
    total = len(tone.data)
    assert total > 4 * 32 * 1024, "the WAV must span several chunks"
    assert tone.progress[-1] == (total, total)
    sent = [s for s, _ in tone.progress]
    assert sent == sorted(sent) and len(set(sent)) == len(sent)
    assert {t for _, t in tone.progress} == {total}
    # Every chunk but the last is full.
    assert all(b - a == 32 * 1024 for a, b in zip([0, *sent[:-2]], sent[:-1]))


def test_upload_result_describes_the_stored_bytes(tone: Uploaded) -> None:
    assert tone.result.size_bytes == len(tone.data)
    assert tone.result.sha256 == hashlib.sha256(tone.data).hexdigest()
    assert tone.result.format == audio_pb2.AUDIO_FORMAT_WAV
    assert not tone.result.duplicate
    uuid.UUID(tone.result.file_id)
    uuid.UUID(tone.result.job_id)


def test_follow_job_returns_the_succeeded_job(client: TraumClient, tone: Uploaded) -> None:
    assert tone.job.state == audio_pb2.JOB_STATE_SUCCEEDED, tone.job.error
    assert tone.job.job_id == tone.result.job_id
    assert tone.job.file_id == tone.result.file_id
    assert tone.job.progress == pytest.approx(1.0)
    # Following a finished job answers its final state at once.
    states: list[int] = []
    again = client.follow_job(tone.result.job_id, on_event=lambda job: states.append(job.state))
    assert again.state == audio_pb2.JOB_STATE_SUCCEEDED
    assert states == [audio_pb2.JOB_STATE_SUCCEEDED]


def test_processed_file_has_its_metadata(client: TraumClient, tone: Uploaded) -> None:
    file = client.get_file(tone.result.file_id)
    assert file.state == audio_pb2.FILE_STATE_READY
    assert file.filename == "python sine 330.wav"
    assert sorted(file.tags) == [TAG, "sine"]
    assert file.properties.sample_rate_hz == 48_000
    assert file.properties.channels == 1
    assert file.properties.duration_seconds == pytest.approx(3.0, abs=0.01)


def test_list_files_sees_the_upload(client: TraumClient, tone: Uploaded) -> None:
    page = client.list_files(filename_contains="python sine 330")
    assert [f.file_id for f in page.files] == [tone.result.file_id]
    assert page.total_count == 1
    by_tag = client.list_files(tags=[TAG])
    assert tone.result.file_id in [f.file_id for f in by_tag.files]


def test_same_bytes_again_is_a_duplicate(client: TraumClient, tone: Uploaded) -> None:
    again = client.upload_bytes(tone.data, "copy.wav")
    assert again.duplicate
    assert again.file_id == tone.result.file_id


def test_search_by_text_returns_the_file(client: TraumClient, tone: Uploaded) -> None:
    response = client.search_text("a pure sine tone", limit=50)
    assert tone.result.file_id in [h.file.file_id for h in response.hits]
    only_ours = client.search_text(
        "a pure sine tone", filters=search_pb2.SearchFilters(tags_all=[TAG, "sine"])
    )
    assert [h.file.file_id for h in only_ours.hits] == [tone.result.file_id]
    hit = only_ours.hits[0]
    assert hit.file.filename == "python sine 330.wav"
    assert -1.0 <= hit.cosine <= 1.0
    assert 0.0 <= hit.segment_start_seconds < hit.segment_end_seconds


def test_search_by_clip_returns_the_file(client: TraumClient, tone: Uploaded) -> None:
    clip = sine_wav(330.0, 1.0)
    response = client.search_clip(clip, limit=50)
    assert tone.result.file_id in [h.file.file_id for h in response.hits]
    only_ours = client.search_clip(clip, filters=search_pb2.SearchFilters(tags_all=[TAG]))
    assert tone.result.file_id in [h.file.file_id for h in only_ours.hits]


def test_upload_fixture_file(client: TraumClient) -> None:
    path = FIXTURES / "tone.flac"
    calls: list[tuple[int, int]] = []
    result = client.upload_file(path, tags=[TAG], progress=lambda s, t: calls.append((s, t)))
    size = path.stat().st_size
    assert calls[-1] == (size, size)
    assert result.format == audio_pb2.AUDIO_FORMAT_FLAC
    job = client.follow_job(result.job_id)
    assert job.state == audio_pb2.JOB_STATE_SUCCEEDED, job.error
    assert client.get_file(result.file_id).filename == "tone.flac"


def test_delete_then_get_is_not_found(client: TraumClient) -> None:
    result = client.upload_bytes(sine_wav(523.25, 1.5), "to delete.wav", tags=[TAG])
    assert client.follow_job(result.job_id).state == audio_pb2.JOB_STATE_SUCCEEDED
    deleted = client.delete_file(result.file_id)
    assert deleted.blob_deleted
    with pytest.raises(TraumError) as caught:
        client.get_file(result.file_id)
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert caught.value.resource == Resource("traum.v1.File", result.file_id)
    assert result.file_id not in [f.file_id for f in client.list_files(tags=[TAG]).files]


# ---------------------------------------------------------------- errors


def test_unknown_file_is_not_found_with_resource_info(client: TraumClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(TraumError) as caught:
        client.get_file(missing)
    err = caught.value
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert missing in err.message
    assert err.resource == Resource("traum.v1.File", missing)
    assert err.resource.type == "traum.v1.File"
    assert [type(d) for d in err.details] == [error_details_pb2.ResourceInfo]
    assert err.field_violations == []
    assert err.retry_delay is None
    assert "NOT_FOUND" in str(err) and missing in str(err)


def test_unknown_job_is_not_found(client: TraumClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(TraumError) as caught:
        client.follow_job(missing)
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert caught.value.resource == Resource("traum.v1.Job", missing)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "kick", "limit": 500}, "options.limit"),
        ({"query": "kick", "keyword_weight": 2.0}, "options.keyword_weight"),
    ],
)
def test_invalid_search_names_the_field(client: TraumClient, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(TraumError) as caught:
        client.search_text(**kwargs)  # type: ignore[arg-type]
    err = caught.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.field_names == [field]
    assert err.field_violations[0].description
    assert err.resource is None


def test_malformed_id_names_the_field(client: TraumClient) -> None:
    with pytest.raises(TraumError) as caught:
        client.get_file("not-a-uuid")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field_names == ["file_id"]
    assert str(caught.value).endswith("(field file_id)")


def test_bad_upload_header_names_the_field(client: TraumClient) -> None:
    with pytest.raises(TraumError) as caught:
        client.upload_bytes(sine_wav(440.0, 0.5), "drums/kick.wav")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field_names == ["header.filename"]


def test_non_audio_upload_is_invalid_argument(client: TraumClient) -> None:
    text = b"these are meeting notes, not audio\n" * 200
    with pytest.raises(TraumError) as caught:
        client.upload_bytes(text, "notes.wav", tags=[TAG])
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert client.list_files(filename_contains="notes.wav").total_count == 0


def test_raw_stub_errors_decode_with_from_rpc_error(client: TraumClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(grpc.RpcError) as caught:
        client.audio.GetFile(audio_pb2.GetFileRequest(file_id=missing))
    err = TraumError.from_rpc_error(caught.value)
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.rpc_error is caught.value
    assert err.resource == Resource("traum.v1.File", missing)

    with pytest.raises(grpc.RpcError) as bad:
        client.search.SearchByText(
            search_pb2.SearchByTextRequest(query="kick", options=search_pb2.SearchOptions(limit=500))
        )
    decoded = TraumError.from_rpc_error(bad.value)
    assert decoded.code == grpc.StatusCode.INVALID_ARGUMENT
    assert decoded.field_names == ["options.limit"]


def test_rate_limit_gives_a_retry_delay(limited_server: Server) -> None:
    with TraumClient(limited_server.address) as c:
        # The one search of the burst: no model is loaded, so it fails, but
        # it was admitted.
        with pytest.raises(TraumError) as first:
            c.search_text("kick")
        assert first.value.code != grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(TraumError) as caught:
            c.search_text("kick")
    err = caught.value
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_info = [d for d in err.details if isinstance(d, error_details_pb2.RetryInfo)]
    assert len(retry_info) == 1, err.details
    assert err.retry_delay is not None and err.retry_delay > 0
    assert err.retry_delay == pytest.approx(retry_info[0].retry_delay.ToTimedelta().total_seconds())


# ---------------------------------------------------------------- auth


def test_calls_without_a_key_are_unauthenticated(traum_server: Server) -> None:
    with TraumClient(traum_server.address) as anonymous:
        with pytest.raises(TraumError) as caught:
            anonymous.list_files()
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_the_key_is_sent_on_streams_too(traum_server: Server) -> None:
    # A read key may search and list, but not upload: PERMISSION_DENIED
    # (not UNAUTHENTICATED) shows the client-streaming call carried it.
    with TraumClient(traum_server.address, api_key=traum_server.keys["read"]) as reader:
        assert reader.list_files(page_size=1).total_count >= 0
        with pytest.raises(TraumError) as caught:
            reader.upload_bytes(sine_wav(440.0, 0.5), "refused.wav")
    assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_explicit_authorization_metadata_wins(client: TraumClient) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        client.audio.ListFiles(
            audio_pb2.ListFilesRequest(),
            metadata=(("authorization", "Bearer traum_not-a-real-key"),),
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


# ---------------------------------------------------------------- local checks


def test_progress_callback_can_abort_the_upload(client: TraumClient, tmp_path: Path) -> None:
    path = tmp_path / "aborted upload.wav"
    path.write_bytes(sine_wav(610.0, 2.0))

    class Stop(Exception):
        pass

    def stop_after_first_chunk(sent: int, total: int) -> None:
        raise Stop(f"{sent} of {total}")

    with pytest.raises(Stop):
        client.upload_file(path, chunk_size=16 * 1024, progress=stop_after_first_chunk)
    assert client.list_files(filename_contains="aborted upload").total_count == 0


def test_upload_file_refuses_what_is_not_a_file(client: TraumClient, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        client.upload_file(tmp_path / "missing.wav")
    with pytest.raises(IsADirectoryError):
        client.upload_file(tmp_path)
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match="chunk_size"):
        client.upload_file(tmp_path / "x.wav", chunk_size=0)
    with pytest.raises(TypeError, match="tags"):
        client.upload_file(tmp_path / "x.wav", tags="drums")


@pytest.mark.parametrize(
    ("address", "kwargs", "message"),
    [
        ("", {}, "empty"),
        ("http://localhost:1/path", {}, "without a path"),
        ("http://localhost:1", {"root_certificates": b"pem"}, "http://"),
        ("localhost:1", {"tls": False, "root_certificates": b"pem"}, "tls=False"),
        ("localhost:1", {"private_key": b"pem"}, "go together"),
        ("localhost:1", {"api_key": ""}, "empty"),
        ("localhost:1", {"api_key": "traum_x\n"}, "whitespace"),
    ],
)
def test_client_options_are_checked(address: str, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TraumClient(address, **kwargs)  # type: ignore[arg-type]


def test_job_stream_ended_names_the_job() -> None:
    job = audio_pb2.Job(job_id="j1", state=audio_pb2.JOB_STATE_RUNNING)
    err = JobStreamEnded("j1", job)
    assert err.last_job is job
    assert "j1" in str(err) and "JOB_STATE_RUNNING" in str(err)
