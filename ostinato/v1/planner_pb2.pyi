from ostinato.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CompletionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPLETION_STATUS_UNSPECIFIED: _ClassVar[CompletionStatus]
    COMPLETION_STATUS_OK: _ClassVar[CompletionStatus]
    COMPLETION_STATUS_FAILED: _ClassVar[CompletionStatus]
    COMPLETION_STATUS_CANCELLED: _ClassVar[CompletionStatus]
    COMPLETION_STATUS_DEADLINE_EXCEEDED: _ClassVar[CompletionStatus]
COMPLETION_STATUS_UNSPECIFIED: CompletionStatus
COMPLETION_STATUS_OK: CompletionStatus
COMPLETION_STATUS_FAILED: CompletionStatus
COMPLETION_STATUS_CANCELLED: CompletionStatus
COMPLETION_STATUS_DEADLINE_EXCEEDED: CompletionStatus

class RegisterProgramRequest(_message.Message):
    __slots__ = ("tenant", "options", "max_open_programs", "registration", "declared")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_PROGRAMS_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    DECLARED_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    options: _common_pb2.ProgramOptions
    max_open_programs: int
    registration: str
    declared: bool
    def __init__(self, tenant: _Optional[str] = ..., options: _Optional[_Union[_common_pb2.ProgramOptions, _Mapping]] = ..., max_open_programs: _Optional[int] = ..., registration: _Optional[str] = ..., declared: _Optional[bool] = ...) -> None: ...

class RegisterProgramResponse(_message.Message):
    __slots__ = ("program_id", "already_open")
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    ALREADY_OPEN_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    already_open: bool
    def __init__(self, program_id: _Optional[str] = ..., already_open: _Optional[bool] = ...) -> None: ...

class AdmitRequest(_message.Message):
    __slots__ = ("tenant", "program_id", "call_id", "thread_id", "parent_call_ids", "prompt_tokens", "max_new_tokens", "hints", "prefix_hashes", "served_from_cache", "retry_of_attempt", "exclude_workers", "register_program", "max_open_programs", "end_program_after", "resend", "started_on", "started_priority")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_CALL_IDS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HINTS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_HASHES_FIELD_NUMBER: _ClassVar[int]
    SERVED_FROM_CACHE_FIELD_NUMBER: _ClassVar[int]
    RETRY_OF_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_WORKERS_FIELD_NUMBER: _ClassVar[int]
    REGISTER_PROGRAM_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_PROGRAMS_FIELD_NUMBER: _ClassVar[int]
    END_PROGRAM_AFTER_FIELD_NUMBER: _ClassVar[int]
    RESEND_FIELD_NUMBER: _ClassVar[int]
    STARTED_ON_FIELD_NUMBER: _ClassVar[int]
    STARTED_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    program_id: str
    call_id: str
    thread_id: str
    parent_call_ids: _containers.RepeatedScalarFieldContainer[str]
    prompt_tokens: int
    max_new_tokens: int
    hints: _common_pb2.CallHints
    prefix_hashes: _containers.RepeatedScalarFieldContainer[int]
    served_from_cache: bool
    retry_of_attempt: int
    exclude_workers: _containers.RepeatedScalarFieldContainer[str]
    register_program: _common_pb2.ProgramOptions
    max_open_programs: int
    end_program_after: bool
    resend: bool
    started_on: str
    started_priority: int
    def __init__(self, tenant: _Optional[str] = ..., program_id: _Optional[str] = ..., call_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., parent_call_ids: _Optional[_Iterable[str]] = ..., prompt_tokens: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., hints: _Optional[_Union[_common_pb2.CallHints, _Mapping]] = ..., prefix_hashes: _Optional[_Iterable[int]] = ..., served_from_cache: _Optional[bool] = ..., retry_of_attempt: _Optional[int] = ..., exclude_workers: _Optional[_Iterable[str]] = ..., register_program: _Optional[_Union[_common_pb2.ProgramOptions, _Mapping]] = ..., max_open_programs: _Optional[int] = ..., end_program_after: _Optional[bool] = ..., resend: _Optional[bool] = ..., started_on: _Optional[str] = ..., started_priority: _Optional[int] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("call_id", "worker_id", "worker_address", "priority", "queued_s", "matched_blocks", "parked_s", "attempt", "calls_waiting", "next_worker_id", "next_worker_address")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    QUEUED_S_FIELD_NUMBER: _ClassVar[int]
    MATCHED_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    PARKED_S_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CALLS_WAITING_FIELD_NUMBER: _ClassVar[int]
    NEXT_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_WORKER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    worker_id: str
    worker_address: str
    priority: int
    queued_s: float
    matched_blocks: int
    parked_s: float
    attempt: int
    calls_waiting: int
    next_worker_id: str
    next_worker_address: str
    def __init__(self, call_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., worker_address: _Optional[str] = ..., priority: _Optional[int] = ..., queued_s: _Optional[float] = ..., matched_blocks: _Optional[int] = ..., parked_s: _Optional[float] = ..., attempt: _Optional[int] = ..., calls_waiting: _Optional[int] = ..., next_worker_id: _Optional[str] = ..., next_worker_address: _Optional[str] = ...) -> None: ...

class AdmitStreamRequest(_message.Message):
    __slots__ = ("id", "admit", "timeout_s", "cancel", "trace_context", "batch")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    ADMIT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    id: int
    admit: AdmitRequest
    timeout_s: float
    cancel: bool
    trace_context: _containers.ScalarMap[str, str]
    batch: _containers.RepeatedCompositeFieldContainer[AdmitStreamRequest]
    def __init__(self, id: _Optional[int] = ..., admit: _Optional[_Union[AdmitRequest, _Mapping]] = ..., timeout_s: _Optional[float] = ..., cancel: _Optional[bool] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., batch: _Optional[_Iterable[_Union[AdmitStreamRequest, _Mapping]]] = ...) -> None: ...

class AdmitStreamResponse(_message.Message):
    __slots__ = ("id", "grant", "status", "details", "batch", "final")
    ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    id: int
    grant: Grant
    status: int
    details: str
    batch: _containers.RepeatedCompositeFieldContainer[AdmitStreamResponse]
    final: bool
    def __init__(self, id: _Optional[int] = ..., grant: _Optional[_Union[Grant, _Mapping]] = ..., status: _Optional[int] = ..., details: _Optional[str] = ..., batch: _Optional[_Iterable[_Union[AdmitStreamResponse, _Mapping]]] = ..., final: _Optional[bool] = ...) -> None: ...

class CompletionReport(_message.Message):
    __slots__ = ("program_id", "call_id", "worker_id", "status", "usage", "service_s", "attempt", "granted")
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_S_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    call_id: str
    worker_id: str
    status: CompletionStatus
    usage: _common_pb2.Usage
    service_s: float
    attempt: int
    granted: bool
    def __init__(self, program_id: _Optional[str] = ..., call_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., status: _Optional[_Union[CompletionStatus, str]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., service_s: _Optional[float] = ..., attempt: _Optional[int] = ..., granted: _Optional[bool] = ...) -> None: ...

class CompletionReports(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[CompletionReport]
    def __init__(self, reports: _Optional[_Iterable[_Union[CompletionReport, _Mapping]]] = ...) -> None: ...

class ProgressReport(_message.Message):
    __slots__ = ("program_id", "call_id", "worker_id", "completion_tokens")
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    call_id: str
    worker_id: str
    completion_tokens: int
    def __init__(self, program_id: _Optional[str] = ..., call_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class ReportAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EndProgramPlannerRequest(_message.Message):
    __slots__ = ("tenant", "program_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    program_id: str
    def __init__(self, tenant: _Optional[str] = ..., program_id: _Optional[str] = ...) -> None: ...

class WorkerRegistration(_message.Message):
    __slots__ = ("worker_id", "address", "max_inflight", "simulated", "engine_unhealthy", "kv_tokens", "known_calls")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MAX_INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    ENGINE_UNHEALTHY_FIELD_NUMBER: _ClassVar[int]
    KV_TOKENS_FIELD_NUMBER: _ClassVar[int]
    KNOWN_CALLS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    address: str
    max_inflight: int
    simulated: bool
    engine_unhealthy: bool
    kv_tokens: int
    known_calls: KnownCalls
    def __init__(self, worker_id: _Optional[str] = ..., address: _Optional[str] = ..., max_inflight: _Optional[int] = ..., simulated: _Optional[bool] = ..., engine_unhealthy: _Optional[bool] = ..., kv_tokens: _Optional[int] = ..., known_calls: _Optional[_Union[KnownCalls, _Mapping]] = ...) -> None: ...

class KnownCalls(_message.Message):
    __slots__ = ("planner_instance", "calls")
    PLANNER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    planner_instance: str
    calls: _containers.RepeatedCompositeFieldContainer[CallAttempt]
    def __init__(self, planner_instance: _Optional[str] = ..., calls: _Optional[_Iterable[_Union[CallAttempt, _Mapping]]] = ...) -> None: ...

class CallAttempt(_message.Message):
    __slots__ = ("program_id", "call_id", "attempt")
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    program_id: str
    call_id: str
    attempt: int
    def __init__(self, program_id: _Optional[str] = ..., call_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class WorkerAck(_message.Message):
    __slots__ = ("planner_instance",)
    PLANNER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    planner_instance: str
    def __init__(self, planner_instance: _Optional[str] = ...) -> None: ...
