"""A thin synchronous client for the Traum gRPC API.

`TraumClient` owns one channel and exposes the generated stubs (`audio`,
`search`, `analytics`, `admin`) for every RPC, plus helpers for the calls
that need more than one message: streaming an upload, following a job.
The helpers raise `TraumError` with the server's error details decoded.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.message import Message

from traum.errors import JobStreamEnded, TraumError
from traum.v1 import (
    admin_pb2_grpc,
    analytics_pb2_grpc,
    audio_pb2,
    audio_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

__all__ = ["TraumClient", "UPLOAD_CHUNK_BYTES", "Progress"]

UPLOAD_CHUNK_BYTES = 1024 * 1024
"""Default size of the chunks `upload_file` sends (the proto suggests
64 KiB to 1 MiB; the server's message limit is larger)."""

Progress = Callable[[int, int], None]
"""Called as `progress(sent_bytes, total_bytes)` after each chunk."""

TERMINAL_JOB_STATES = frozenset({audio_pb2.JOB_STATE_SUCCEEDED, audio_pb2.JOB_STATE_FAILED})

_M = TypeVar("_M", bound=Message)
_Metadata = tuple[tuple[str, "str | bytes"], ...]

if TYPE_CHECKING:
    # grpc-stubs makes the interceptor bases generic; the runtime classes
    # are not subscriptable.
    _UnaryUnary = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = grpc.UnaryStreamClientInterceptor[Any, Any]
    _StreamUnary = grpc.StreamUnaryClientInterceptor[Any, Any]
    _StreamStream = grpc.StreamStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = grpc.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.UnaryStreamClientInterceptor
    _StreamUnary = grpc.StreamUnaryClientInterceptor
    _StreamStream = grpc.StreamStreamClientInterceptor


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, base: grpc.ClientCallDetails, metadata: _Metadata) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class _BearerAuth(_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream):
    """Adds `authorization: Bearer <key>` to every call.

    An interceptor rather than call credentials because gRPC refuses call
    credentials on plaintext channels, and a server behind a TLS-terminating
    proxy is reached in plaintext.
    """

    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = tuple(details.metadata or ())
        # A caller that sets its own credential on one call keeps it.
        if any(key.lower() == "authorization" for key, _ in metadata):
            return details
        return _CallDetails(details, (*metadata, self._header))

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


def _split_address(address: str) -> tuple[str, bool | None]:
    """Returns the gRPC target and whether the scheme asked for TLS (None
    when the address has no scheme)."""
    for scheme, tls in (("https://", True), ("http://", False)):
        if address.startswith(scheme):
            target = address[len(scheme) :].rstrip("/")
            if not target or "/" in target:
                raise ValueError(
                    f"address {address!r}: expected {scheme}HOST:PORT without a path"
                )
            return target, tls
    if not address:
        raise ValueError("address is empty: expected HOST:PORT, http://HOST:PORT or https://HOST:PORT")
    return address, None


def _expect(response: object, kind: type[_M]) -> _M:
    if not isinstance(response, kind):
        raise TypeError(f"expected {kind.__name__} from the server, got {type(response).__name__}")
    return response


class TraumClient:
    """A connection to a Traum server.

    `address` is `HOST:PORT` (plaintext unless TLS options are given),
    `http://HOST:PORT` or `https://HOST:PORT`. With `api_key`, every call
    carries `authorization: Bearer <api_key>`. `root_certificates` (PEM)
    verifies the server instead of the system roots; `private_key` and
    `certificate_chain` (PEM) present a client certificate (mutual TLS).
    `options` are extra gRPC channel arguments.

    Use it as a context manager, or call `close()`.
    """

    audio: audio_pb2_grpc.AudioServiceStub
    search: search_pb2_grpc.SearchServiceStub
    analytics: analytics_pb2_grpc.AnalyticsServiceStub
    admin: admin_pb2_grpc.AdminServiceStub

    def __init__(
        self,
        address: str,
        api_key: str | None = None,
        *,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        tls: bool | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        target, scheme_tls = _split_address(address)
        wants_certs = root_certificates is not None or private_key is not None or certificate_chain is not None
        if scheme_tls is False and (tls or wants_certs):
            raise ValueError(f"address {address!r} is http://, but TLS options were given")
        if tls is False and (scheme_tls or wants_certs):
            raise ValueError("tls=False contradicts the https:// address or the certificates given")
        if (private_key is None) != (certificate_chain is None):
            raise ValueError("private_key and certificate_chain go together (mutual TLS)")
        if api_key is not None:
            if not api_key:
                raise ValueError("api_key is empty; pass None to call without a credential")
            if any(c.isspace() or not c.isprintable() for c in api_key):
                raise ValueError("api_key contains whitespace or control characters")

        channel_options = list(options)
        use_tls = bool(scheme_tls or tls or wants_certs)
        if use_tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=root_certificates,
                private_key=private_key,
                certificate_chain=certificate_chain,
            )
            self._raw_channel = grpc.secure_channel(target, credentials, options=channel_options)
        else:
            self._raw_channel = grpc.insecure_channel(target, options=channel_options)
        self.channel: grpc.Channel = (
            grpc.intercept_channel(self._raw_channel, _BearerAuth(api_key))
            if api_key is not None
            else self._raw_channel
        )
        self.address = address
        self.audio = audio_pb2_grpc.AudioServiceStub(self.channel)
        self.search = search_pb2_grpc.SearchServiceStub(self.channel)
        self.analytics = analytics_pb2_grpc.AnalyticsServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._raw_channel.close()

    def __enter__(self) -> TraumClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ uploads

    def upload_file(
        self,
        path: str | os.PathLike[str],
        *,
        tags: Iterable[str] = (),
        chunk_size: int = UPLOAD_CHUNK_BYTES,
        progress: Progress | None = None,
        always_create_file: bool = False,
        timeout: float | None = None,
    ) -> audio_pb2.UploadResult:
        """Uploads a file with `UploadAudio` and returns the server's result.

        The header declares the file's size and SHA-256, so the server
        refuses an oversize file before any byte is sent and a file that
        changes while being read (DATA_LOSS or INVALID_ARGUMENT). `progress`
        is called from a gRPC thread as `progress(sent, total)` after each
        chunk is handed to the transport; an exception it raises cancels the
        upload (the server stores nothing) and is re-raised here.
        """
        file_path = Path(path)
        if not file_path.is_file():
            if file_path.exists():
                raise IsADirectoryError(f"{file_path}: not a regular file")
            raise FileNotFoundError(f"{file_path}: no such file")
        size = file_path.stat().st_size
        digest = hashlib.sha256()
        with file_path.open("rb") as f:
            for block in iter(lambda: f.read(UPLOAD_CHUNK_BYTES), b""):
                digest.update(block)

        def chunks() -> Iterator[bytes]:
            with file_path.open("rb") as f:
                yield from iter(lambda: f.read(chunk_size), b"")

        return self._upload(
            file_path.name,
            tags,
            size,
            digest.hexdigest(),
            chunks,
            chunk_size=chunk_size,
            progress=progress,
            always_create_file=always_create_file,
            timeout=timeout,
        )

    def upload_bytes(
        self,
        data: bytes,
        filename: str,
        *,
        tags: Iterable[str] = (),
        chunk_size: int = UPLOAD_CHUNK_BYTES,
        progress: Progress | None = None,
        always_create_file: bool = False,
        timeout: float | None = None,
    ) -> audio_pb2.UploadResult:
        """Uploads bytes held in memory under `filename`; see `upload_file`."""

        def chunks() -> Iterator[bytes]:
            view = memoryview(data)
            for start in range(0, len(data), chunk_size):
                yield bytes(view[start : start + chunk_size])

        return self._upload(
            filename,
            tags,
            len(data),
            hashlib.sha256(data).hexdigest(),
            chunks,
            chunk_size=chunk_size,
            progress=progress,
            always_create_file=always_create_file,
            timeout=timeout,
        )

    def _upload(
        self,
        filename: str,
        tags: Iterable[str],
        size: int,
        sha256: str,
        chunks: Callable[[], Iterator[bytes]],
        *,
        chunk_size: int,
        progress: Progress | None,
        always_create_file: bool,
        timeout: float | None,
    ) -> audio_pb2.UploadResult:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        if isinstance(tags, str):
            raise TypeError("tags must be an iterable of strings, not one string")
        header = audio_pb2.UploadHeader(
            filename=filename,
            tags=list(tags),
            size_bytes=size,
            sha256=sha256,
            always_create_file=always_create_file,
        )
        # gRPC reads the requests on its own thread; a failure there (a read
        # error, the callback raising) is kept here and the call cancelled,
        # so the server sees a reset stream and never a complete short file.
        failure: list[BaseException] = []
        started = threading.Event()
        call: list[Any] = []

        def requests() -> Iterator[audio_pb2.UploadAudioRequest]:
            started.wait()
            yield audio_pb2.UploadAudioRequest(header=header)
            sent = 0
            try:
                for chunk in chunks():
                    yield audio_pb2.UploadAudioRequest(chunk=chunk)
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent, size)
            except GeneratorExit:
                # gRPC dropped the iterator: the call is over already.
                raise
            except BaseException as err:  # noqa: BLE001 - re-raised on the caller's thread
                failure.append(err)
                call[0].cancel()

        future = self.audio.UploadAudio.future(requests(), timeout=timeout)
        call.append(future)
        started.set()
        try:
            response = future.result()
        except grpc.FutureCancelledError:
            if failure:
                raise failure[0] from None
            raise
        except grpc.RpcError as err:
            if failure:
                raise failure[0] from err
            raise TraumError.from_rpc_error(err) from err
        except BaseException:
            future.cancel()
            raise
        return _expect(response, audio_pb2.UploadResult)

    # ------------------------------------------------------------ jobs

    def follow_job(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_event: Callable[[audio_pb2.Job], None] | None = None,
    ) -> audio_pb2.Job:
        """Follows `WatchJob` until the job succeeds or fails, and returns its
        final snapshot (check `state`; a failed job's `error` says why).

        `on_event` sees every snapshot, the current one first. `timeout`
        bounds the whole wait (DEADLINE_EXCEEDED). Raises `JobStreamEnded`
        when the stream closes before a terminal event.
        """
        stream = self.audio.WatchJob(audio_pb2.WatchJobRequest(job_id=job_id), timeout=timeout)
        last: audio_pb2.Job | None = None
        try:
            for event in stream:
                job = _expect(event, audio_pb2.JobEvent).job
                last = job
                if on_event is not None:
                    on_event(job)
                if event.terminal or job.state in TERMINAL_JOB_STATES:
                    return job
        except grpc.RpcError as err:
            raise TraumError.from_rpc_error(err) from err
        finally:
            # Ends the stream when the caller stops early (or on_event raised).
            stream.cancel()
        raise JobStreamEnded(job_id, last)

    def get_job(self, job_id: str, *, timeout: float | None = None) -> audio_pb2.Job:
        return self._unary(self.audio.GetJob, audio_pb2.GetJobRequest(job_id=job_id), audio_pb2.Job, timeout)

    # ------------------------------------------------------------ files

    def get_file(self, file_id: str, *, timeout: float | None = None) -> audio_pb2.File:
        return self._unary(
            self.audio.GetFile, audio_pb2.GetFileRequest(file_id=file_id), audio_pb2.File, timeout
        )

    def list_files(
        self,
        *,
        tags: Iterable[str] = (),
        filename_contains: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> audio_pb2.ListFilesResponse:
        """One page of files, newest first; see `ListFilesRequest` (via
        `client.audio.ListFiles`) for every filter."""
        request = audio_pb2.ListFilesRequest(
            tags=list(tags),
            filename_contains=filename_contains,
            page_size=page_size,
            page_token=page_token,
        )
        return self._unary(self.audio.ListFiles, request, audio_pb2.ListFilesResponse, timeout)

    def delete_file(self, file_id: str, *, timeout: float | None = None) -> audio_pb2.DeleteFileResponse:
        return self._unary(
            self.audio.DeleteFile,
            audio_pb2.DeleteFileRequest(file_id=file_id),
            audio_pb2.DeleteFileResponse,
            timeout,
        )

    # ------------------------------------------------------------ search

    def search_text(
        self,
        query: str,
        *,
        limit: int = 0,
        filters: search_pb2.SearchFilters | None = None,
        keyword_weight: float = 0.0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> search_pb2.SearchResponse:
        """Files whose sound matches `query`, best first (`limit` 0 means 20)."""
        request = search_pb2.SearchByTextRequest(
            query=query,
            filters=filters,
            options=search_pb2.SearchOptions(
                limit=limit, keyword_weight=keyword_weight, page_token=page_token
            ),
        )
        return self._unary(self.search.SearchByText, request, search_pb2.SearchResponse, timeout)

    def search_clip(
        self,
        audio: bytes | str | os.PathLike[str],
        *,
        limit: int = 0,
        filters: search_pb2.SearchFilters | None = None,
        timeout: float | None = None,
    ) -> search_pb2.SearchResponse:
        """Files that sound like a short clip (its bytes, or a path to it),
        sent in one `SearchByAudioClip` message."""
        data = audio if isinstance(audio, bytes) else Path(audio).read_bytes()
        request = search_pb2.SearchByAudioClipRequest(
            audio=data, filters=filters, options=search_pb2.SearchOptions(limit=limit)
        )
        return self._unary(self.search.SearchByAudioClip, request, search_pb2.SearchResponse, timeout)

    def _unary(
        self,
        method: Callable[..., object],
        request: Message,
        response_type: type[_M],
        timeout: float | None,
    ) -> _M:
        try:
            response = method(request, timeout=timeout)
        except grpc.RpcError as err:
            raise TraumError.from_rpc_error(err) from err
        return _expect(response, response_type)
