from traum.v1 import audio_pb2 as _audio_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SuggestionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUGGESTION_SOURCE_UNSPECIFIED: _ClassVar[SuggestionSource]
    SUGGESTION_SOURCE_TAG: _ClassVar[SuggestionSource]
    SUGGESTION_SOURCE_FILENAME: _ClassVar[SuggestionSource]
    SUGGESTION_SOURCE_QUERY: _ClassVar[SuggestionSource]
SUGGESTION_SOURCE_UNSPECIFIED: SuggestionSource
SUGGESTION_SOURCE_TAG: SuggestionSource
SUGGESTION_SOURCE_FILENAME: SuggestionSource
SUGGESTION_SOURCE_QUERY: SuggestionSource

class SearchFilters(_message.Message):
    __slots__ = ("min_duration_seconds", "max_duration_seconds", "min_bpm", "max_bpm", "keys", "tags_all", "tags_any", "tags_none", "formats", "keywords", "min_score", "suggested", "bpm_half_or_double")
    MIN_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MIN_BPM_FIELD_NUMBER: _ClassVar[int]
    MAX_BPM_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    TAGS_ALL_FIELD_NUMBER: _ClassVar[int]
    TAGS_ANY_FIELD_NUMBER: _ClassVar[int]
    TAGS_NONE_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_FIELD_NUMBER: _ClassVar[int]
    BPM_HALF_OR_DOUBLE_FIELD_NUMBER: _ClassVar[int]
    min_duration_seconds: float
    max_duration_seconds: float
    min_bpm: float
    max_bpm: float
    keys: _containers.RepeatedCompositeFieldContainer[_audio_pb2.MusicalKey]
    tags_all: _containers.RepeatedScalarFieldContainer[str]
    tags_any: _containers.RepeatedScalarFieldContainer[str]
    tags_none: _containers.RepeatedScalarFieldContainer[str]
    formats: _containers.RepeatedScalarFieldContainer[_audio_pb2.AudioFormat]
    keywords: str
    min_score: float
    suggested: _containers.RepeatedCompositeFieldContainer[_audio_pb2.SuggestedTagFilter]
    bpm_half_or_double: bool
    def __init__(self, min_duration_seconds: _Optional[float] = ..., max_duration_seconds: _Optional[float] = ..., min_bpm: _Optional[float] = ..., max_bpm: _Optional[float] = ..., keys: _Optional[_Iterable[_Union[_audio_pb2.MusicalKey, _Mapping]]] = ..., tags_all: _Optional[_Iterable[str]] = ..., tags_any: _Optional[_Iterable[str]] = ..., tags_none: _Optional[_Iterable[str]] = ..., formats: _Optional[_Iterable[_Union[_audio_pb2.AudioFormat, str]]] = ..., keywords: _Optional[str] = ..., min_score: _Optional[float] = ..., suggested: _Optional[_Iterable[_Union[_audio_pb2.SuggestedTagFilter, _Mapping]]] = ..., bpm_half_or_double: _Optional[bool] = ...) -> None: ...

class SearchOptions(_message.Message):
    __slots__ = ("limit", "page_token", "keyword_weight", "refine", "facet_vocabularies")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    REFINE_FIELD_NUMBER: _ClassVar[int]
    FACET_VOCABULARIES_FIELD_NUMBER: _ClassVar[int]
    limit: int
    page_token: str
    keyword_weight: float
    refine: Refinement
    facet_vocabularies: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, limit: _Optional[int] = ..., page_token: _Optional[str] = ..., keyword_weight: _Optional[float] = ..., refine: _Optional[_Union[Refinement, _Mapping]] = ..., facet_vocabularies: _Optional[_Iterable[str]] = ...) -> None: ...

class Refinement(_message.Message):
    __slots__ = ("good_file_ids", "bad_file_ids")
    GOOD_FILE_IDS_FIELD_NUMBER: _ClassVar[int]
    BAD_FILE_IDS_FIELD_NUMBER: _ClassVar[int]
    good_file_ids: _containers.RepeatedScalarFieldContainer[str]
    bad_file_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, good_file_ids: _Optional[_Iterable[str]] = ..., bad_file_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchByTextRequest(_message.Message):
    __slots__ = ("query", "filters", "options")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    query: str
    filters: SearchFilters
    options: SearchOptions
    def __init__(self, query: _Optional[str] = ..., filters: _Optional[_Union[SearchFilters, _Mapping]] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class SearchByAudioHeader(_message.Message):
    __slots__ = ("filters", "options")
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    filters: SearchFilters
    options: SearchOptions
    def __init__(self, filters: _Optional[_Union[SearchFilters, _Mapping]] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class SearchByAudioRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SearchByAudioHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SearchByAudioHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class SearchByAudioClipRequest(_message.Message):
    __slots__ = ("audio", "filters", "options")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    filters: SearchFilters
    options: SearchOptions
    def __init__(self, audio: _Optional[bytes] = ..., filters: _Optional[_Union[SearchFilters, _Mapping]] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class SearchSimilarRequest(_message.Message):
    __slots__ = ("file_id", "start_seconds", "end_seconds", "filters", "options")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    start_seconds: float
    end_seconds: float
    filters: SearchFilters
    options: SearchOptions
    def __init__(self, file_id: _Optional[str] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., filters: _Optional[_Union[SearchFilters, _Mapping]] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class FileSummary(_message.Message):
    __slots__ = ("file_id", "filename", "duration_seconds", "bpm", "key", "tags", "format", "suggested_tags")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BPM_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_TAGS_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    filename: str
    duration_seconds: float
    bpm: float
    key: _audio_pb2.MusicalKey
    tags: _containers.RepeatedScalarFieldContainer[str]
    format: _audio_pb2.AudioFormat
    suggested_tags: _containers.RepeatedCompositeFieldContainer[_audio_pb2.SuggestedTag]
    def __init__(self, file_id: _Optional[str] = ..., filename: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., bpm: _Optional[float] = ..., key: _Optional[_Union[_audio_pb2.MusicalKey, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., format: _Optional[_Union[_audio_pb2.AudioFormat, str]] = ..., suggested_tags: _Optional[_Iterable[_Union[_audio_pb2.SuggestedTag, _Mapping]]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("file", "score", "cosine", "segment_start_seconds", "segment_end_seconds", "window_scores", "window_start_seconds")
    FILE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COSINE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SCORES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    file: FileSummary
    score: float
    cosine: float
    segment_start_seconds: float
    segment_end_seconds: float
    window_scores: _containers.RepeatedScalarFieldContainer[float]
    window_start_seconds: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, file: _Optional[_Union[FileSummary, _Mapping]] = ..., score: _Optional[float] = ..., cosine: _Optional[float] = ..., segment_start_seconds: _Optional[float] = ..., segment_end_seconds: _Optional[float] = ..., window_scores: _Optional[_Iterable[float]] = ..., window_start_seconds: _Optional[_Iterable[float]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "next_page_token", "took_ms", "facets")
    HITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    FACETS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    next_page_token: str
    took_ms: float
    facets: _containers.RepeatedCompositeFieldContainer[Facet]
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., took_ms: _Optional[float] = ..., facets: _Optional[_Iterable[_Union[Facet, _Mapping]]] = ...) -> None: ...

class Facet(_message.Message):
    __slots__ = ("vocabulary", "counts")
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    vocabulary: str
    counts: _containers.RepeatedCompositeFieldContainer[FacetCount]
    def __init__(self, vocabulary: _Optional[str] = ..., counts: _Optional[_Iterable[_Union[FacetCount, _Mapping]]] = ...) -> None: ...

class FacetCount(_message.Message):
    __slots__ = ("label", "files")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    label: str
    files: int
    def __init__(self, label: _Optional[str] = ..., files: _Optional[int] = ...) -> None: ...

class SuggestRequest(_message.Message):
    __slots__ = ("prefix", "limit")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    limit: int
    def __init__(self, prefix: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class Suggestion(_message.Message):
    __slots__ = ("text", "source", "count")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    text: str
    source: SuggestionSource
    count: int
    def __init__(self, text: _Optional[str] = ..., source: _Optional[_Union[SuggestionSource, str]] = ..., count: _Optional[int] = ...) -> None: ...

class SuggestResponse(_message.Message):
    __slots__ = ("suggestions",)
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    suggestions: _containers.RepeatedCompositeFieldContainer[Suggestion]
    def __init__(self, suggestions: _Optional[_Iterable[_Union[Suggestion, _Mapping]]] = ...) -> None: ...
