"""Span names and attribute keys: the OpenTelemetry GenAI semantic conventions where they
define one, ours under `ostinato.*` otherwise (one home for every key a span carries)."""

from __future__ import annotations

from opentelemetry.trace import Span, Status, StatusCode, get_current_span

# GenAI semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/)
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
CONVERSATION_ID = "gen_ai.conversation.id"
WORKFLOW_NAME = "gen_ai.workflow.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_TOP_K = "gen_ai.request.top_k"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_STOP = "gen_ai.request.stop_sequences"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
REQUEST_STREAM = "gen_ai.request.stream"  # set (true) on a streamed request only
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # seconds
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT = "gen_ai.usage.input_tokens"
USAGE_OUTPUT = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"  # only with telemetry.record_content
OUTPUT_MESSAGES = "gen_ai.output.messages"  # only with telemetry.record_content
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

CHAT = "chat"
TEXT_COMPLETION = "text_completion"
INVOKE_WORKFLOW = "invoke_workflow"
PROVIDER_OSTINATO = "ostinato"
PROVIDER_SGLANG = "sglang"

# Ours
TENANT = "ostinato.tenant"
PROGRAM_ID = "ostinato.program.id"
PROGRAM_CLASS = "ostinato.program.class"
PROGRAM_END = "ostinato.program.end"  # ended | expired | shutdown | evicted | refused
# On a call span of a program that has no program span (tracing/program_spans.py)
PROGRAM_KIND = "ostinato.program.kind"  # conversation | one-call
PROGRAM_CALLS_COMPLETED = "ostinato.program.calls_completed"
PROGRAM_CALLS_FAILED = "ostinato.program.calls_failed"
PROGRAM_CALLS_CANCELLED = "ostinato.program.calls_cancelled"
PROGRAM_CALLS_RUNNING = "ostinato.program.calls_running"
PROGRAM_ELAPSED = "ostinato.program.elapsed_s"  # its summary's: start to end, seconds
CALL_ID = "ostinato.call.id"
THREAD_ID = "ostinato.thread.id"
CALL_PARENTS = "ostinato.call.parents"
CACHE_HIT = "ostinato.cache.hit"  # exact | semantic | miss (the gateway's answer caches)
CACHE_LOOKUP_RESULT = "ostinato.cache.result"
WORKER_ID = "ostinato.worker.id"
PRIORITY = "ostinato.priority"
ROUTE_POLICY = "ostinato.route.policy"
ROUTE_MATCHED_BLOCKS = "ostinato.route.matched_blocks"
PARKED = "ostinato.parked"
PARKED_S = "ostinato.parked_s"
QUEUE_S = "ostinato.queue_s"
ENGINE_S = "ostinato.engine_s"
TTFT_S = "ostinato.time_to_first_token_s"
SIMULATED = "ostinato.simulated"
# A call started on a worker ahead of its grant (gateway/early_guess.py): "confirmed" (that
# run was the call's), "missed" (granted elsewhere: that run cut, its worker spans cancelled)
EARLY_START = "ostinato.early_start"
FIRST_TOKEN_EVENT = "ostinato.first_token"
# On a link: why it is there. previous_turn: from a request's call span of a conversation
# (an OpenAI-API program found from the messages) to the call span of the turn before it
LINK_KIND = "ostinato.link"
PREVIOUS_TURN = "previous_turn"

# Span names that are not GenAI operations
SPAN_CACHE_LOOKUP = "ostinato.cache.lookup"
SPAN_PLANNER_ADMIT = "ostinato.planner.admit"
SPAN_WORKER_GENERATE = "ostinato.worker.generate"


def mark_cancelled(span: Span | None, exc: BaseException) -> None:
    """The span's operation was cancelled (its caller went away, a deadline, a stop): an
    error, as the gateway's call span says, so a trace shows no cut operation as a success
    (tracing review 2026-12-05 F1)."""
    if span is not None and span.is_recording():
        span.set_attribute(ERROR_TYPE, "cancelled")
        span.set_status(Status(StatusCode.ERROR, f"cancelled ({type(exc).__name__})"))


def cancelled(error_type: object) -> bool:
    """Whether a span's error.type says its operation was cancelled (mark_cancelled's
    "cancelled", or the gRPC code CANCELLED) rather than failed: `ostinato trace` counts
    the two apart, as a program's summary does."""
    return str(error_type).lower() == "cancelled"


def span_name(operation: str, model: str) -> str:
    """`{gen_ai.operation.name} {gen_ai.request.model}`, as the conventions name spans."""
    return f"{operation} {model}" if model else operation


# GenAI metrics (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/) in their
# Prometheus form: dots become underscores, seconds get `_seconds`; attribute names likewise
# (gen_ai.operation.name -> label gen_ai_operation_name). Buckets: the conventions' advice.
METRIC_CLIENT_OPERATION_DURATION = "gen_ai_client_operation_duration_seconds"
METRIC_CLIENT_TOKEN_USAGE = "gen_ai_client_token_usage"
METRIC_SERVER_REQUEST_DURATION = "gen_ai_server_request_duration_seconds"
METRIC_SERVER_TIME_TO_FIRST_TOKEN = "gen_ai_server_time_to_first_token_seconds"
METRIC_SERVER_TIME_PER_OUTPUT_TOKEN = "gen_ai_server_time_per_output_token_seconds"
LABEL_OPERATION = "gen_ai_operation_name"
LABEL_PROVIDER = "gen_ai_provider_name"
LABEL_REQUEST_MODEL = "gen_ai_request_model"
LABEL_TOKEN_TYPE = "gen_ai_token_type"  # input | output
LABEL_ERROR_TYPE = "error_type"  # "" when the operation succeeded
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)
TOKEN_USAGE_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                       16777216, 67108864)
TIME_TO_FIRST_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                               1.0, 2.5, 5.0, 7.5, 10.0)
TIME_PER_OUTPUT_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
                                 1.0, 2.5)


def record_response_id(response_id: str) -> None:
    """The id an OpenAI-API client got (`chatcmpl-...`, `cmpl-...`, `resp_...`), on the
    request's span (its route's SERVER span), so that the id a user quotes finds the trace."""
    get_current_span().set_attribute(RESPONSE_ID, response_id)
