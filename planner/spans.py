"""The planner's span: one per Admit, lasting the call's queue wait, with the routing
decision (worker, policy, priority, matched prefix blocks, parked or not and how long)."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from ostinato.v1 import planner_pb2
from tracing import genai
from tracing.grpc_interceptors import SpanDescriber

ADMIT = "/ostinato.v1.Planner/Admit"


def _request(policy: str) -> Any:
    def attributes(req: planner_pb2.AdmitRequest) -> dict[str, Any]:
        return {genai.CONVERSATION_ID: req.program_id, genai.TENANT: req.tenant,
                genai.CALL_ID: req.call_id, genai.THREAD_ID: req.thread_id,
                genai.ROUTE_POLICY: policy, "ostinato.prompt_tokens": req.prompt_tokens,
                "ostinato.prompt_blocks": len(req.prefix_hashes),
                "ostinato.served_from_cache": req.served_from_cache}
    return attributes


def _granted(span: trace.Span, grant: planner_pb2.Grant) -> None:
    if not grant.worker_id:  # recorded only (answered from the gateway's cache)
        return
    span.set_attributes({genai.WORKER_ID: grant.worker_id, genai.PRIORITY: grant.priority,
                         genai.ROUTE_MATCHED_BLOCKS: grant.matched_blocks,
                         genai.PARKED: grant.parked_s > 0, genai.PARKED_S: grant.parked_s,
                         genai.QUEUE_S: grant.queued_s})


def describers(policy: str) -> dict[str, SpanDescriber]:
    return {ADMIT: SpanDescriber(lambda req: genai.SPAN_PLANNER_ADMIT, _request(policy), _granted)}
