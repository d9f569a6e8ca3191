"""Errors of the Traum client, with the server's `google.rpc` details decoded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from traum.v1 import audio_pb2

# The trailer grpc-status carries the serialized google.rpc.Status in.
_DETAILS_KEY = "grpc-status-details-bin"


class FieldViolation(NamedTuple):
    """One invalid request field, from `google.rpc.BadRequest`."""

    field: str
    """Path of the field in proto names, e.g. `options.limit`."""
    description: str


class Resource(NamedTuple):
    """The missing resource, from `google.rpc.ResourceInfo`."""

    type: str
    """Full name of its proto message, e.g. `traum.v1.File`."""
    name: str
    """The identifier that was asked for."""


class TraumError(Exception):
    """A call to the server failed.

    `code` and `message` are the gRPC status; the other attributes are the
    `google.rpc` details the server attached (empty or None when it sent
    none). The original `grpc.RpcError`, when there was one, is `rpc_error`
    and the exception's `__cause__`.
    """

    code: grpc.StatusCode
    message: str
    field_violations: list[FieldViolation]
    retry_delay: float | None
    resource: Resource | None
    details: list[Message]
    rpc_error: grpc.RpcError | None

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        field_violations: Sequence[FieldViolation] = (),
        retry_delay: float | None = None,
        resource: Resource | None = None,
        details: Sequence[Message] = (),
        rpc_error: grpc.RpcError | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.field_violations = list(field_violations)
        self.retry_delay = retry_delay
        self.resource = resource
        self.details = list(details)
        self.rpc_error = rpc_error
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        # The server often repeats the message as the description.
        extra = [
            f"field {v.field}" if v.description in ("", self.message) else f"{v.field}: {v.description}"
            for v in self.field_violations
        ]
        if self.resource is not None:
            extra.append(f"resource {self.resource.type} {self.resource.name!r}")
        if self.retry_delay is not None:
            extra.append(f"retry after {self.retry_delay:g} s")
        return f"{text} ({'; '.join(extra)})" if extra else text

    @property
    def field_names(self) -> list[str]:
        """The `field` of every violation, for quick membership checks."""
        return [v.field for v in self.field_violations]

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> TraumError:
        """Decodes a failed call of the raw stubs.

        Reads the `grpc-status-details-bin` trailer: `BadRequest` gives
        `field_violations`, `ResourceInfo` gives `resource`, `RetryInfo` gives
        `retry_delay` (when absent, the whole seconds of a `retry-after`
        trailer do). Every decoded detail is in `details`, unknown ones as
        `google.protobuf.Any`.
        """
        if not isinstance(err, grpc.Call):
            # Only a call carries a status; anything else grpc raises as
            # RpcError is a local failure without one.
            return cls(grpc.StatusCode.UNKNOWN, str(err) or type(err).__name__, rpc_error=err)
        code = err.code()
        message = err.details() or ""
        trailers = tuple(err.trailing_metadata() or ())
        status = _rich_status(err, trailers)

        violations: list[FieldViolation] = []
        resource: Resource | None = None
        retry_delay: float | None = None
        details: list[Message] = []
        for any_detail in status.details if status is not None else ():
            if any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                any_detail.Unpack(bad_request)
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                )
                details.append(bad_request)
            elif any_detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
                info = error_details_pb2.ResourceInfo()
                any_detail.Unpack(info)
                if resource is None:
                    resource = Resource(info.resource_type, info.resource_name)
                details.append(info)
            elif any_detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                any_detail.Unpack(retry)
                if retry_delay is None and retry.HasField("retry_delay"):
                    retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
                details.append(retry)
            else:
                details.append(any_detail)
        if retry_delay is None:
            retry_delay = _retry_after(trailers)
        return cls(
            code,
            message,
            field_violations=violations,
            retry_delay=retry_delay,
            resource=resource,
            details=details,
            rpc_error=err,
        )


class JobStreamEnded(RuntimeError):
    """`WatchJob` ended without a terminal event (the server stopped, or a
    proxy closed the stream). `last_job` is the last snapshot received."""

    job_id: str
    last_job: audio_pb2.Job | None

    def __init__(self, job_id: str, last_job: audio_pb2.Job | None) -> None:
        self.job_id = job_id
        self.last_job = last_job
        state = (
            audio_pb2.JobState.Name(last_job.state) if last_job is not None else "no event received"
        )
        super().__init__(
            f"the WatchJob stream of job {job_id} ended before the job finished "
            f"(last state: {state}); call follow_job again to resume"
        )


def _rich_status(call: grpc.Call, trailers: tuple[tuple[str, str | bytes], ...]) -> status_pb2.Status | None:
    try:
        status: status_pb2.Status | None = rpc_status.from_call(call)
        return status
    except ValueError:
        # from_call refuses a Status whose code or message differs from the
        # call's (a proxy may rewrite the message); its details still hold.
        for key, value in trailers:
            if key == _DETAILS_KEY and isinstance(value, bytes):
                return status_pb2.Status.FromString(value)
        return None


def _retry_after(trailers: tuple[tuple[str, str | bytes], ...]) -> float | None:
    for key, value in trailers:
        if key == "retry-after":
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            try:
                seconds = int(text.strip())
            except ValueError:
                return None
            return float(seconds) if seconds >= 0 else None
    return None
