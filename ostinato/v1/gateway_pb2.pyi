from ostinato.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CacheStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CacheStatsResponse(_message.Message):
    __slots__ = ("enabled", "redis_up", "counts", "index_entries", "lookup_ms_p50", "lookup_ms_p99", "server_vector_search")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    REDIS_UP_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    INDEX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LOOKUP_MS_P50_FIELD_NUMBER: _ClassVar[int]
    LOOKUP_MS_P99_FIELD_NUMBER: _ClassVar[int]
    SERVER_VECTOR_SEARCH_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    redis_up: bool
    counts: _containers.ScalarMap[str, int]
    index_entries: int
    lookup_ms_p50: float
    lookup_ms_p99: float
    server_vector_search: bool
    def __init__(self, enabled: _Optional[bool] = ..., redis_up: _Optional[bool] = ..., counts: _Optional[_Mapping[str, int]] = ..., index_entries: _Optional[int] = ..., lookup_ms_p50: _Optional[float] = ..., lookup_ms_p99: _Optional[float] = ..., server_vector_search: _Optional[bool] = ...) -> None: ...

class StartProgramRequest(_message.Message):
    __slots__ = ("options",)
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    options: _common_pb2.ProgramOptions
    def __init__(self, options: _Optional[_Union[_common_pb2.ProgramOptions, _Mapping]] = ...) -> None: ...

class StartProgramResponse(_message.Message):
    __slots__ = ("program_id", "tenant")
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    tenant: str
    def __init__(self, program_id: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class CallRequest(_message.Message):
    __slots__ = ("program_id", "call", "whole")
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    WHOLE_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    call: _common_pb2.CallSpec
    whole: bool
    def __init__(self, program_id: _Optional[str] = ..., call: _Optional[_Union[_common_pb2.CallSpec, _Mapping]] = ..., whole: _Optional[bool] = ...) -> None: ...

class CallChunk(_message.Message):
    __slots__ = ("call_id", "delta", "result", "restarted", "reasoning_delta")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RESTARTED_FIELD_NUMBER: _ClassVar[int]
    REASONING_DELTA_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    delta: str
    result: _common_pb2.CallResult
    restarted: bool
    reasoning_delta: str
    def __init__(self, call_id: _Optional[str] = ..., delta: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.CallResult, _Mapping]] = ..., restarted: _Optional[bool] = ..., reasoning_delta: _Optional[str] = ...) -> None: ...

class EndProgramRequest(_message.Message):
    __slots__ = ("program_id",)
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    def __init__(self, program_id: _Optional[str] = ...) -> None: ...

class EndProgramResponse(_message.Message):
    __slots__ = ("summary",)
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    summary: _common_pb2.ProgramSummary
    def __init__(self, summary: _Optional[_Union[_common_pb2.ProgramSummary, _Mapping]] = ...) -> None: ...

class DagNode(_message.Message):
    __slots__ = ("id", "depends_on", "call")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    id: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    call: _common_pb2.CallSpec
    def __init__(self, id: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., call: _Optional[_Union[_common_pb2.CallSpec, _Mapping]] = ...) -> None: ...

class RunProgramRequest(_message.Message):
    __slots__ = ("options", "nodes")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    options: _common_pb2.ProgramOptions
    nodes: _containers.RepeatedCompositeFieldContainer[DagNode]
    def __init__(self, options: _Optional[_Union[_common_pb2.ProgramOptions, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[DagNode, _Mapping]]] = ...) -> None: ...

class ProgramEvent(_message.Message):
    __slots__ = ("program_id", "node_started", "node_delta", "node_finished", "program_finished")
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_STARTED_FIELD_NUMBER: _ClassVar[int]
    NODE_DELTA_FIELD_NUMBER: _ClassVar[int]
    NODE_FINISHED_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_FINISHED_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    node_started: NodeStarted
    node_delta: NodeDelta
    node_finished: NodeFinished
    program_finished: _common_pb2.ProgramSummary
    def __init__(self, program_id: _Optional[str] = ..., node_started: _Optional[_Union[NodeStarted, _Mapping]] = ..., node_delta: _Optional[_Union[NodeDelta, _Mapping]] = ..., node_finished: _Optional[_Union[NodeFinished, _Mapping]] = ..., program_finished: _Optional[_Union[_common_pb2.ProgramSummary, _Mapping]] = ...) -> None: ...

class NodeStarted(_message.Message):
    __slots__ = ("node_id", "worker_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    worker_id: str
    def __init__(self, node_id: _Optional[str] = ..., worker_id: _Optional[str] = ...) -> None: ...

class NodeDelta(_message.Message):
    __slots__ = ("node_id", "delta", "restarted")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    RESTARTED_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    delta: str
    restarted: bool
    def __init__(self, node_id: _Optional[str] = ..., delta: _Optional[str] = ..., restarted: _Optional[bool] = ...) -> None: ...

class NodeFinished(_message.Message):
    __slots__ = ("node_id", "result")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    result: _common_pb2.CallResult
    def __init__(self, node_id: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.CallResult, _Mapping]] = ...) -> None: ...
