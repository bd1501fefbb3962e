from ostinato.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("request_id", "tenant", "program_id", "call_id", "priority", "prompt", "sampling", "cache_salt", "shared_prefix_bytes", "input_ids", "shared_prefix_tokens", "json_schema", "return_logprob", "top_logprobs_num", "attempt", "whole", "keep_special_tokens", "structural_tag", "require_reasoning")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    CACHE_SALT_FIELD_NUMBER: _ClassVar[int]
    SHARED_PREFIX_BYTES_FIELD_NUMBER: _ClassVar[int]
    INPUT_IDS_FIELD_NUMBER: _ClassVar[int]
    SHARED_PREFIX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    RETURN_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    TOP_LOGPROBS_NUM_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WHOLE_FIELD_NUMBER: _ClassVar[int]
    KEEP_SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STRUCTURAL_TAG_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_REASONING_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant: str
    program_id: str
    call_id: str
    priority: int
    prompt: str
    sampling: _common_pb2.SamplingParams
    cache_salt: str
    shared_prefix_bytes: int
    input_ids: _containers.RepeatedScalarFieldContainer[int]
    shared_prefix_tokens: int
    json_schema: str
    return_logprob: bool
    top_logprobs_num: int
    attempt: int
    whole: bool
    keep_special_tokens: bool
    structural_tag: str
    require_reasoning: bool
    def __init__(self, request_id: _Optional[str] = ..., tenant: _Optional[str] = ..., program_id: _Optional[str] = ..., call_id: _Optional[str] = ..., priority: _Optional[int] = ..., prompt: _Optional[str] = ..., sampling: _Optional[_Union[_common_pb2.SamplingParams, _Mapping]] = ..., cache_salt: _Optional[str] = ..., shared_prefix_bytes: _Optional[int] = ..., input_ids: _Optional[_Iterable[int]] = ..., shared_prefix_tokens: _Optional[int] = ..., json_schema: _Optional[str] = ..., return_logprob: _Optional[bool] = ..., top_logprobs_num: _Optional[int] = ..., attempt: _Optional[int] = ..., whole: _Optional[bool] = ..., keep_special_tokens: _Optional[bool] = ..., structural_tag: _Optional[str] = ..., require_reasoning: _Optional[bool] = ...) -> None: ...

class GenerateChunk(_message.Message):
    __slots__ = ("delta", "result")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    delta: str
    result: GenerateResult
    def __init__(self, delta: _Optional[str] = ..., result: _Optional[_Union[GenerateResult, _Mapping]] = ...) -> None: ...

class GenerateStreamRequest(_message.Message):
    __slots__ = ("id", "request", "timeout_s", "cancel", "trace_context", "batch")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    id: int
    request: GenerateRequest
    timeout_s: float
    cancel: bool
    trace_context: _containers.ScalarMap[str, str]
    batch: _containers.RepeatedCompositeFieldContainer[GenerateStreamRequest]
    def __init__(self, id: _Optional[int] = ..., request: _Optional[_Union[GenerateRequest, _Mapping]] = ..., timeout_s: _Optional[float] = ..., cancel: _Optional[bool] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., batch: _Optional[_Iterable[_Union[GenerateStreamRequest, _Mapping]]] = ...) -> None: ...

class GenerateStreamChunk(_message.Message):
    __slots__ = ("id", "chunk", "end", "status", "details", "batch")
    ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    id: int
    chunk: GenerateChunk
    end: bool
    status: int
    details: str
    batch: _containers.RepeatedCompositeFieldContainer[GenerateStreamChunk]
    def __init__(self, id: _Optional[int] = ..., chunk: _Optional[_Union[GenerateChunk, _Mapping]] = ..., end: _Optional[bool] = ..., status: _Optional[int] = ..., details: _Optional[str] = ..., batch: _Optional[_Iterable[_Union[GenerateStreamChunk, _Mapping]]] = ...) -> None: ...

class GenerateResult(_message.Message):
    __slots__ = ("finish_reason", "usage", "service_s", "worker_id", "simulated", "logprobs", "stop_string")
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_S_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    STOP_STRING_FIELD_NUMBER: _ClassVar[int]
    finish_reason: str
    usage: _common_pb2.Usage
    service_s: float
    worker_id: str
    simulated: bool
    logprobs: _containers.RepeatedCompositeFieldContainer[_common_pb2.TokenLogprob]
    stop_string: bool
    def __init__(self, finish_reason: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., service_s: _Optional[float] = ..., worker_id: _Optional[str] = ..., simulated: _Optional[bool] = ..., logprobs: _Optional[_Iterable[_Union[_common_pb2.TokenLogprob, _Mapping]]] = ..., stop_string: _Optional[bool] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerStats(_message.Message):
    __slots__ = ("worker_id", "engine_url", "running", "completed", "failed", "simulated", "model", "kv_index_source", "kv_index_blocks", "kv_event_batches", "kv_event_gaps", "kv_blocks_unattributed")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINE_URL_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    KV_INDEX_SOURCE_FIELD_NUMBER: _ClassVar[int]
    KV_INDEX_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    KV_EVENT_BATCHES_FIELD_NUMBER: _ClassVar[int]
    KV_EVENT_GAPS_FIELD_NUMBER: _ClassVar[int]
    KV_BLOCKS_UNATTRIBUTED_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    engine_url: str
    running: int
    completed: int
    failed: int
    simulated: bool
    model: str
    kv_index_source: str
    kv_index_blocks: int
    kv_event_batches: int
    kv_event_gaps: int
    kv_blocks_unattributed: int
    def __init__(self, worker_id: _Optional[str] = ..., engine_url: _Optional[str] = ..., running: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., simulated: _Optional[bool] = ..., model: _Optional[str] = ..., kv_index_source: _Optional[str] = ..., kv_index_blocks: _Optional[int] = ..., kv_event_batches: _Optional[int] = ..., kv_event_gaps: _Optional[int] = ..., kv_blocks_unattributed: _Optional[int] = ...) -> None: ...
