import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_FORMAT_UNSPECIFIED: _ClassVar[AudioFormat]
    AUDIO_FORMAT_WAV: _ClassVar[AudioFormat]
    AUDIO_FORMAT_AIFF: _ClassVar[AudioFormat]
    AUDIO_FORMAT_FLAC: _ClassVar[AudioFormat]
    AUDIO_FORMAT_MP3: _ClassVar[AudioFormat]
    AUDIO_FORMAT_OGG: _ClassVar[AudioFormat]
    AUDIO_FORMAT_M4A: _ClassVar[AudioFormat]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]

class JobStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STAGE_UNSPECIFIED: _ClassVar[JobStage]
    JOB_STAGE_STORE: _ClassVar[JobStage]
    JOB_STAGE_PROBE: _ClassVar[JobStage]
    JOB_STAGE_DECODE: _ClassVar[JobStage]
    JOB_STAGE_ANALYSE: _ClassVar[JobStage]
    JOB_STAGE_EMBED: _ClassVar[JobStage]

class FileState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_STATE_UNSPECIFIED: _ClassVar[FileState]
    FILE_STATE_PROCESSING: _ClassVar[FileState]
    FILE_STATE_READY: _ClassVar[FileState]
    FILE_STATE_FAILED: _ClassVar[FileState]

class KeyMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_MODE_UNSPECIFIED: _ClassVar[KeyMode]
    KEY_MODE_MAJOR: _ClassVar[KeyMode]
    KEY_MODE_MINOR: _ClassVar[KeyMode]

class TagVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TAG_VERDICT_UNSPECIFIED: _ClassVar[TagVerdict]
    TAG_VERDICT_ACCEPT: _ClassVar[TagVerdict]
    TAG_VERDICT_REJECT: _ClassVar[TagVerdict]

class FileOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_ORDER_UNSPECIFIED: _ClassVar[FileOrder]
    FILE_ORDER_CREATED_AT: _ClassVar[FileOrder]
    FILE_ORDER_FILENAME: _ClassVar[FileOrder]
    FILE_ORDER_SIZE: _ClassVar[FileOrder]
    FILE_ORDER_DURATION: _ClassVar[FileOrder]
AUDIO_FORMAT_UNSPECIFIED: AudioFormat
AUDIO_FORMAT_WAV: AudioFormat
AUDIO_FORMAT_AIFF: AudioFormat
AUDIO_FORMAT_FLAC: AudioFormat
AUDIO_FORMAT_MP3: AudioFormat
AUDIO_FORMAT_OGG: AudioFormat
AUDIO_FORMAT_M4A: AudioFormat
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STAGE_UNSPECIFIED: JobStage
JOB_STAGE_STORE: JobStage
JOB_STAGE_PROBE: JobStage
JOB_STAGE_DECODE: JobStage
JOB_STAGE_ANALYSE: JobStage
JOB_STAGE_EMBED: JobStage
FILE_STATE_UNSPECIFIED: FileState
FILE_STATE_PROCESSING: FileState
FILE_STATE_READY: FileState
FILE_STATE_FAILED: FileState
KEY_MODE_UNSPECIFIED: KeyMode
KEY_MODE_MAJOR: KeyMode
KEY_MODE_MINOR: KeyMode
TAG_VERDICT_UNSPECIFIED: TagVerdict
TAG_VERDICT_ACCEPT: TagVerdict
TAG_VERDICT_REJECT: TagVerdict
FILE_ORDER_UNSPECIFIED: FileOrder
FILE_ORDER_CREATED_AT: FileOrder
FILE_ORDER_FILENAME: FileOrder
FILE_ORDER_SIZE: FileOrder
FILE_ORDER_DURATION: FileOrder

class UploadHeader(_message.Message):
    __slots__ = ("filename", "tags", "size_bytes", "sha256", "always_create_file")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ALWAYS_CREATE_FILE_FIELD_NUMBER: _ClassVar[int]
    filename: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    size_bytes: int
    sha256: str
    always_create_file: bool
    def __init__(self, filename: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., always_create_file: _Optional[bool] = ...) -> None: ...

class UploadAudioRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadResult(_message.Message):
    __slots__ = ("file_id", "job_id", "duplicate", "size_bytes", "sha256", "format")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    job_id: str
    duplicate: bool
    size_bytes: int
    sha256: str
    format: AudioFormat
    def __init__(self, file_id: _Optional[str] = ..., job_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., format: _Optional[_Union[AudioFormat, str]] = ...) -> None: ...

class StartUploadRequest(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ...) -> None: ...

class PutUploadChunkRequest(_message.Message):
    __slots__ = ("upload_id", "offset", "data")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    offset: int
    data: bytes
    def __init__(self, upload_id: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class GetUploadRequest(_message.Message):
    __slots__ = ("upload_id",)
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    def __init__(self, upload_id: _Optional[str] = ...) -> None: ...

class FinishUploadRequest(_message.Message):
    __slots__ = ("upload_id",)
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    def __init__(self, upload_id: _Optional[str] = ...) -> None: ...

class UploadSession(_message.Message):
    __slots__ = ("upload_id", "filename", "tags", "received_bytes", "size_bytes", "max_chunk_bytes", "expires_at")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    filename: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    received_bytes: int
    size_bytes: int
    max_chunk_bytes: int
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, upload_id: _Optional[str] = ..., filename: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., received_bytes: _Optional[int] = ..., size_bytes: _Optional[int] = ..., max_chunk_bytes: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "file_id", "state", "stage", "progress", "stage_progress", "message", "error", "attempts", "warnings", "created_at", "updated_at", "started_at", "finished_at", "replica")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STAGE_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    file_id: str
    state: JobState
    stage: JobStage
    progress: float
    stage_progress: float
    message: str
    error: str
    attempts: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    replica: str
    def __init__(self, job_id: _Optional[str] = ..., file_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., stage: _Optional[_Union[JobStage, str]] = ..., progress: _Optional[float] = ..., stage_progress: _Optional[float] = ..., message: _Optional[str] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replica: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job", "terminal")
    JOB_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    job: Job
    terminal: bool
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., terminal: _Optional[bool] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state", "file_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: JobState
    file_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., file_id: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token", "total_count")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    total_count: int
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ...) -> None: ...

class AudioProperties(_message.Message):
    __slots__ = ("duration_seconds", "sample_rate_hz", "channels", "bits_per_sample", "codec", "bitrate_bps", "frames")
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    BITS_PER_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    BITRATE_BPS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: float
    sample_rate_hz: int
    channels: int
    bits_per_sample: int
    codec: str
    bitrate_bps: int
    frames: int
    def __init__(self, duration_seconds: _Optional[float] = ..., sample_rate_hz: _Optional[int] = ..., channels: _Optional[int] = ..., bits_per_sample: _Optional[int] = ..., codec: _Optional[str] = ..., bitrate_bps: _Optional[int] = ..., frames: _Optional[int] = ...) -> None: ...

class MusicalKey(_message.Message):
    __slots__ = ("pitch_class", "mode")
    PITCH_CLASS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    pitch_class: int
    mode: KeyMode
    def __init__(self, pitch_class: _Optional[int] = ..., mode: _Optional[_Union[KeyMode, str]] = ...) -> None: ...

class AudioDescriptors(_message.Message):
    __slots__ = ("peak_dbfs", "loudness_lufs", "rms_dbfs", "spectral_centroid_hz", "zero_crossing_rate_hz", "silence_ratio", "bpm", "bpm_confidence", "key", "key_confidence", "bpm_alternatives")
    PEAK_DBFS_FIELD_NUMBER: _ClassVar[int]
    LOUDNESS_LUFS_FIELD_NUMBER: _ClassVar[int]
    RMS_DBFS_FIELD_NUMBER: _ClassVar[int]
    SPECTRAL_CENTROID_HZ_FIELD_NUMBER: _ClassVar[int]
    ZERO_CROSSING_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    SILENCE_RATIO_FIELD_NUMBER: _ClassVar[int]
    BPM_FIELD_NUMBER: _ClassVar[int]
    BPM_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BPM_ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    peak_dbfs: float
    loudness_lufs: float
    rms_dbfs: float
    spectral_centroid_hz: float
    zero_crossing_rate_hz: float
    silence_ratio: float
    bpm: float
    bpm_confidence: float
    key: MusicalKey
    key_confidence: float
    bpm_alternatives: _containers.RepeatedCompositeFieldContainer[TempoReading]
    def __init__(self, peak_dbfs: _Optional[float] = ..., loudness_lufs: _Optional[float] = ..., rms_dbfs: _Optional[float] = ..., spectral_centroid_hz: _Optional[float] = ..., zero_crossing_rate_hz: _Optional[float] = ..., silence_ratio: _Optional[float] = ..., bpm: _Optional[float] = ..., bpm_confidence: _Optional[float] = ..., key: _Optional[_Union[MusicalKey, _Mapping]] = ..., key_confidence: _Optional[float] = ..., bpm_alternatives: _Optional[_Iterable[_Union[TempoReading, _Mapping]]] = ...) -> None: ...

class TempoReading(_message.Message):
    __slots__ = ("bpm", "score")
    BPM_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    bpm: float
    score: float
    def __init__(self, bpm: _Optional[float] = ..., score: _Optional[float] = ...) -> None: ...

class File(_message.Message):
    __slots__ = ("file_id", "filename", "tags", "format", "size_bytes", "sha256", "state", "latest_job_id", "error", "properties", "created_at", "updated_at", "descriptors", "suggested_tags", "duplicate_group")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LATEST_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTORS_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_TAGS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_GROUP_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    filename: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    format: AudioFormat
    size_bytes: int
    sha256: str
    state: FileState
    latest_job_id: str
    error: str
    properties: AudioProperties
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    descriptors: AudioDescriptors
    suggested_tags: _containers.RepeatedCompositeFieldContainer[SuggestedTag]
    duplicate_group: DuplicateGroup
    def __init__(self, file_id: _Optional[str] = ..., filename: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., format: _Optional[_Union[AudioFormat, str]] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., state: _Optional[_Union[FileState, str]] = ..., latest_job_id: _Optional[str] = ..., error: _Optional[str] = ..., properties: _Optional[_Union[AudioProperties, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., descriptors: _Optional[_Union[AudioDescriptors, _Mapping]] = ..., suggested_tags: _Optional[_Iterable[_Union[SuggestedTag, _Mapping]]] = ..., duplicate_group: _Optional[_Union[DuplicateGroup, _Mapping]] = ...) -> None: ...

class DuplicateGroup(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[DuplicateMember]
    def __init__(self, members: _Optional[_Iterable[_Union[DuplicateMember, _Mapping]]] = ...) -> None: ...

class DuplicateMember(_message.Message):
    __slots__ = ("file_id", "filename", "format", "duration_seconds", "score", "offset_seconds", "same_bytes")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAME_BYTES_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    filename: str
    format: AudioFormat
    duration_seconds: float
    score: float
    offset_seconds: float
    same_bytes: bool
    def __init__(self, file_id: _Optional[str] = ..., filename: _Optional[str] = ..., format: _Optional[_Union[AudioFormat, str]] = ..., duration_seconds: _Optional[float] = ..., score: _Optional[float] = ..., offset_seconds: _Optional[float] = ..., same_bytes: _Optional[bool] = ...) -> None: ...

class ListDuplicatesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDuplicatesResponse(_message.Message):
    __slots__ = ("groups", "next_page_token", "total_count")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[DuplicateGroup]
    next_page_token: str
    total_count: int
    def __init__(self, groups: _Optional[_Iterable[_Union[DuplicateGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ...) -> None: ...

class SuggestedTag(_message.Message):
    __slots__ = ("vocabulary", "label", "probability", "model_id")
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    vocabulary: str
    label: str
    probability: float
    model_id: str
    def __init__(self, vocabulary: _Optional[str] = ..., label: _Optional[str] = ..., probability: _Optional[float] = ..., model_id: _Optional[str] = ...) -> None: ...

class SuggestedTagFilter(_message.Message):
    __slots__ = ("vocabulary", "labels")
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    vocabulary: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, vocabulary: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class ReviewSuggestedTagRequest(_message.Message):
    __slots__ = ("file_id", "vocabulary", "label", "verdict")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    vocabulary: str
    label: str
    verdict: TagVerdict
    def __init__(self, file_id: _Optional[str] = ..., vocabulary: _Optional[str] = ..., label: _Optional[str] = ..., verdict: _Optional[_Union[TagVerdict, str]] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "tags", "state", "formats", "order_by", "ascending", "filename_contains", "collection_id", "suggested")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    ASCENDING_FIELD_NUMBER: _ClassVar[int]
    FILENAME_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    state: FileState
    formats: _containers.RepeatedScalarFieldContainer[AudioFormat]
    order_by: FileOrder
    ascending: bool
    filename_contains: str
    collection_id: str
    suggested: _containers.RepeatedCompositeFieldContainer[SuggestedTagFilter]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[FileState, str]] = ..., formats: _Optional[_Iterable[_Union[AudioFormat, str]]] = ..., order_by: _Optional[_Union[FileOrder, str]] = ..., ascending: _Optional[bool] = ..., filename_contains: _Optional[str] = ..., collection_id: _Optional[str] = ..., suggested: _Optional[_Iterable[_Union[SuggestedTagFilter, _Mapping]]] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("files", "next_page_token", "total_count")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[File]
    next_page_token: str
    total_count: int
    def __init__(self, files: _Optional[_Iterable[_Union[File, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ...) -> None: ...

class GetFileRequest(_message.Message):
    __slots__ = ("file_id",)
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    def __init__(self, file_id: _Optional[str] = ...) -> None: ...

class TagList(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateFileRequest(_message.Message):
    __slots__ = ("file_id", "filename", "replace_tags", "add_tags", "remove_tags")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    REPLACE_TAGS_FIELD_NUMBER: _ClassVar[int]
    ADD_TAGS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_TAGS_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    filename: str
    replace_tags: TagList
    add_tags: _containers.RepeatedScalarFieldContainer[str]
    remove_tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, file_id: _Optional[str] = ..., filename: _Optional[str] = ..., replace_tags: _Optional[_Union[TagList, _Mapping]] = ..., add_tags: _Optional[_Iterable[str]] = ..., remove_tags: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteFileRequest(_message.Message):
    __slots__ = ("file_id",)
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    def __init__(self, file_id: _Optional[str] = ...) -> None: ...

class DeleteFileResponse(_message.Message):
    __slots__ = ("blob_deleted",)
    BLOB_DELETED_FIELD_NUMBER: _ClassVar[int]
    blob_deleted: bool
    def __init__(self, blob_deleted: _Optional[bool] = ...) -> None: ...

class DownloadAudioRequest(_message.Message):
    __slots__ = ("file_id", "start_offset")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    START_OFFSET_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    start_offset: int
    def __init__(self, file_id: _Optional[str] = ..., start_offset: _Optional[int] = ...) -> None: ...

class DownloadAudioResponse(_message.Message):
    __slots__ = ("offset", "data", "total_size_bytes")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    total_size_bytes: int
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ..., total_size_bytes: _Optional[int] = ...) -> None: ...

class ReprocessFileRequest(_message.Message):
    __slots__ = ("file_id",)
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    def __init__(self, file_id: _Optional[str] = ...) -> None: ...

class GetWaveformRequest(_message.Message):
    __slots__ = ("file_id",)
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    def __init__(self, file_id: _Optional[str] = ...) -> None: ...

class WaveformLevel(_message.Message):
    __slots__ = ("samples_per_pair", "pair_count", "peaks")
    SAMPLES_PER_PAIR_FIELD_NUMBER: _ClassVar[int]
    PAIR_COUNT_FIELD_NUMBER: _ClassVar[int]
    PEAKS_FIELD_NUMBER: _ClassVar[int]
    samples_per_pair: int
    pair_count: int
    peaks: bytes
    def __init__(self, samples_per_pair: _Optional[int] = ..., pair_count: _Optional[int] = ..., peaks: _Optional[bytes] = ...) -> None: ...

class Waveform(_message.Message):
    __slots__ = ("file_id", "sample_rate_hz", "duration_seconds", "overview", "detail")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OVERVIEW_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    sample_rate_hz: int
    duration_seconds: float
    overview: WaveformLevel
    detail: WaveformLevel
    def __init__(self, file_id: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., overview: _Optional[_Union[WaveformLevel, _Mapping]] = ..., detail: _Optional[_Union[WaveformLevel, _Mapping]] = ...) -> None: ...

class WatchLibraryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LibraryEvent(_message.Message):
    __slots__ = ("job", "file", "deleted_file_id", "resync")
    JOB_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    DELETED_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    RESYNC_FIELD_NUMBER: _ClassVar[int]
    job: Job
    file: File
    deleted_file_id: str
    resync: bool
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., file: _Optional[_Union[File, _Mapping]] = ..., deleted_file_id: _Optional[str] = ..., resync: _Optional[bool] = ...) -> None: ...

class Collection(_message.Message):
    __slots__ = ("collection_id", "name", "file_count", "files", "created_at", "updated_at")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    name: str
    file_count: int
    files: _containers.RepeatedCompositeFieldContainer[File]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, collection_id: _Optional[str] = ..., name: _Optional[str] = ..., file_count: _Optional[int] = ..., files: _Optional[_Iterable[_Union[File, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "file_ids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_IDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    file_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., file_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ("file_id",)
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    def __init__(self, file_id: _Optional[str] = ...) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    def __init__(self, collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("collection_id",)
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    def __init__(self, collection_id: _Optional[str] = ...) -> None: ...

class FileIdList(_message.Message):
    __slots__ = ("file_ids",)
    FILE_IDS_FIELD_NUMBER: _ClassVar[int]
    file_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, file_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateCollectionRequest(_message.Message):
    __slots__ = ("collection_id", "name", "replace_file_ids", "add_file_ids", "remove_file_ids")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FILE_IDS_FIELD_NUMBER: _ClassVar[int]
    ADD_FILE_IDS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FILE_IDS_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    name: str
    replace_file_ids: FileIdList
    add_file_ids: _containers.RepeatedScalarFieldContainer[str]
    remove_file_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection_id: _Optional[str] = ..., name: _Optional[str] = ..., replace_file_ids: _Optional[_Union[FileIdList, _Mapping]] = ..., add_file_ids: _Optional[_Iterable[str]] = ..., remove_file_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteCollectionRequest(_message.Message):
    __slots__ = ("collection_id",)
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    def __init__(self, collection_id: _Optional[str] = ...) -> None: ...

class DeleteCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
