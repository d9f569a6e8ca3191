import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATUS_UNSPECIFIED: _ClassVar[ModelStatus]
    MODEL_STATUS_NOT_CONFIGURED: _ClassVar[ModelStatus]
    MODEL_STATUS_LOADING: _ClassVar[ModelStatus]
    MODEL_STATUS_READY: _ClassVar[ModelStatus]
    MODEL_STATUS_UNAVAILABLE: _ClassVar[ModelStatus]
MODEL_STATUS_UNSPECIFIED: ModelStatus
MODEL_STATUS_NOT_CONFIGURED: ModelStatus
MODEL_STATUS_LOADING: ModelStatus
MODEL_STATUS_READY: ModelStatus
MODEL_STATUS_UNAVAILABLE: ModelStatus

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NamedCount(_message.Message):
    __slots__ = ("name", "count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class IndexStats(_message.Message):
    __slots__ = ("name", "entries", "size_bytes", "ready", "search_mode")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    SEARCH_MODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    entries: int
    size_bytes: int
    ready: bool
    search_mode: str
    def __init__(self, name: _Optional[str] = ..., entries: _Optional[int] = ..., size_bytes: _Optional[int] = ..., ready: _Optional[bool] = ..., search_mode: _Optional[str] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("file_count", "total_duration_seconds", "stored_bytes", "files_by_format", "jobs_by_state", "indexes", "model_name", "model_status", "model_message", "uptime", "version", "blob_count")
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_BY_FORMAT_FIELD_NUMBER: _ClassVar[int]
    JOBS_BY_STATE_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_STATUS_FIELD_NUMBER: _ClassVar[int]
    MODEL_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BLOB_COUNT_FIELD_NUMBER: _ClassVar[int]
    file_count: int
    total_duration_seconds: float
    stored_bytes: int
    files_by_format: _containers.RepeatedCompositeFieldContainer[NamedCount]
    jobs_by_state: _containers.RepeatedCompositeFieldContainer[NamedCount]
    indexes: _containers.RepeatedCompositeFieldContainer[IndexStats]
    model_name: str
    model_status: ModelStatus
    model_message: str
    uptime: _duration_pb2.Duration
    version: str
    blob_count: int
    def __init__(self, file_count: _Optional[int] = ..., total_duration_seconds: _Optional[float] = ..., stored_bytes: _Optional[int] = ..., files_by_format: _Optional[_Iterable[_Union[NamedCount, _Mapping]]] = ..., jobs_by_state: _Optional[_Iterable[_Union[NamedCount, _Mapping]]] = ..., indexes: _Optional[_Iterable[_Union[IndexStats, _Mapping]]] = ..., model_name: _Optional[str] = ..., model_status: _Optional[_Union[ModelStatus, str]] = ..., model_message: _Optional[str] = ..., uptime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., version: _Optional[str] = ..., blob_count: _Optional[int] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("window", "bucket")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    window: _duration_pb2.Duration
    bucket: _duration_pb2.Duration
    def __init__(self, window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., bucket: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RpcUsage(_message.Message):
    __slots__ = ("method", "calls", "errors", "p50_ms", "p95_ms")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    method: str
    calls: int
    errors: int
    p50_ms: float
    p95_ms: float
    def __init__(self, method: _Optional[str] = ..., calls: _Optional[int] = ..., errors: _Optional[int] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ...) -> None: ...

class QueryCount(_message.Message):
    __slots__ = ("query", "count")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    query: str
    count: int
    def __init__(self, query: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class UsageBucket(_message.Message):
    __slots__ = ("start", "calls", "errors", "uploads", "uploaded_bytes")
    START_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_BYTES_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    calls: int
    errors: int
    uploads: int
    uploaded_bytes: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., calls: _Optional[int] = ..., errors: _Optional[int] = ..., uploads: _Optional[int] = ..., uploaded_bytes: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("window_start", "window_end", "rpcs", "search_count", "search_p50_ms", "search_p95_ms", "search_p99_ms", "top_queries", "buckets", "uploads")
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    RPCS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    SEARCH_P50_MS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_P95_MS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_P99_MS_FIELD_NUMBER: _ClassVar[int]
    TOP_QUERIES_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    rpcs: _containers.RepeatedCompositeFieldContainer[RpcUsage]
    search_count: int
    search_p50_ms: float
    search_p95_ms: float
    search_p99_ms: float
    top_queries: _containers.RepeatedCompositeFieldContainer[QueryCount]
    buckets: _containers.RepeatedCompositeFieldContainer[UsageBucket]
    uploads: int
    def __init__(self, window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rpcs: _Optional[_Iterable[_Union[RpcUsage, _Mapping]]] = ..., search_count: _Optional[int] = ..., search_p50_ms: _Optional[float] = ..., search_p95_ms: _Optional[float] = ..., search_p99_ms: _Optional[float] = ..., top_queries: _Optional[_Iterable[_Union[QueryCount, _Mapping]]] = ..., buckets: _Optional[_Iterable[_Union[UsageBucket, _Mapping]]] = ..., uploads: _Optional[int] = ...) -> None: ...
