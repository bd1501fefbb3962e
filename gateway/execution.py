"""Running one call through the mesh: planner Admit, then the granted worker's Generate stream.

Shared by interactive calls and declared programs. Failures surface as CallFailed with
the gRPC status to return.

When the worker or its engine fails mid-call (the stream breaks, or ends without a
result), the call is run again, at most MAX_RETRIES more times: the planner admits it
again as its next attempt, away from the workers that failed it. A call that has handed
its caller no text yet is re-run without the caller seeing anything. One that has is
re-run only if it asked to (CallSpec.restart_on_failure): a Delta with `restart` set
first tells the caller to drop the text so far. Otherwise it fails with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable

import grpc
import structlog

from cache.answers import Answer, AnswerCache
from cache.block_hash import Tokenize, prefix_block_hashes, shared_token_count
from cache.fingerprint import SemanticKey, deterministic, exact_digest, semantic_key
from cache.modes import CacheMode, CachePolicy, InvalidCachePolicy, from_proto
from cache.quotas import Quotas
from cache.tenancy import Tenancy, TenantLimits
from gateway.admissions import Admissions
from gateway.call_items import CallFailed, CallItem, Delta, Granted, NewProgram, planner_failure
from gateway.calls import InvalidCall
from gateway.context_window import ContextWindow, fit
from gateway.outcome_reports import OutcomeReports
from gateway.prompts import PreparedPrompt, prepare
from gateway.quota_meter import QuotaMeter
from gateway.tool_output import ToolOutput, tool_calls
from gateway.worker_channels import WorkerChannels
from ostinato.completion_reports import CompletionReporter
from ostinato.retry import with_retry
from ostinato.service_config import GatewayConfig
from ostinato.tokenizers import ChatRenderer, load_renderer, load_tokenizer
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc, worker_pb2

log = structlog.get_logger(__name__)


def cache_salt(tenant: str) -> str:
    """The prefix-cache namespace of a tenant: derived here, never taken from the client."""
    return "tenant:" + tenant


_HIT = {"exact": common_pb2.CACHE_HIT_EXACT, "semantic": common_pb2.CACHE_HIT_SEMANTIC}

REPORT_LINGER_S = 0.05  # one-call and implicit programs' outcome reports: batched this often
REPORT_SETTLE_S = 2.0  # how long an answer waits for its report to reach the planner, at most
MAX_RETRIES = 2  # attempts after the first, when the worker or its engine fails mid-call
# What a failed worker or engine answers (a dead worker's connection: UNAVAILABLE, or
# UNKNOWN; an engine that died or went away mid-stream: UNAVAILABLE; an engine error:
# INTERNAL). Anything else (the caller's deadline, a request the engine refuses) is final.
_WORKER_FAILED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL,
                            grpc.StatusCode.UNKNOWN})


class _AttemptFailed(Exception):
    """One attempt's worker failed (its Generate stream broke or ended without a result)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def planner_hints(call: common_pb2.CallSpec) -> common_pb2.CallHints:
    """The call's hints for the planner; min_tokens is a floor under its expected output."""
    least = call.sampling.min_new_tokens
    if least <= call.hints.expected_output_tokens:
        return call.hints
    return common_pb2.CallHints(expected_output_tokens=least, tags=call.hints.tags)


class CallExecutor:
    def __init__(self, planner: planner_pb2_grpc.PlannerStub, workers: WorkerChannels,
                 cache: AnswerCache | None = None,
                 cache_default: CachePolicy | None = None,
                 tenancy: Callable[[], Tenancy] = Tenancy,
                 tokenize: Tokenize | None = None, renderer: ChatRenderer | None = None,
                 tool_format: str = "hermes", quotas: Quotas | None = None,
                 quota_timeout_s: float = 0.5, admissions: Admissions | None = None,
                 reasoning_format: str = "", window: ContextWindow | None = None) -> None:
        """`tokenize` and `renderer`: the served model's tokenizer and chat template;
        `tool_format`: how its output writes tool calls (ostinato/tool_formats.py);
        `reasoning_format`: how it writes its thinking ("": it does not think;
        ostinato/reasoning_formats.py);
        `quotas`: the tenants' rate and token quotas in Redis (None: not enforced);
        `admissions`: what admits calls (gateway/admissions.py: over one stream), else
        the planner's unary Admit; `window`: the served model's context window and the
        default max tokens (gateway/context_window.py)."""
        self._window = window or ContextWindow(0, GatewayConfig.default_max_new_tokens)
        self._admissions: Admissions | planner_pb2_grpc.PlannerStub = admissions or planner
        self._outcomes = OutcomeReports(planner)
        self._quotas = QuotaMeter(quotas, quota_timeout_s, self._outcomes.spawn)
        # The outcomes delivered here are reported from here (the worker's own OK report of
        # a gateway's call is a fallback, sent later: workers/service.py). A one-call or
        # implicit program's, which nobody waits for, batched over REPORT_LINGER_S (a call
        # continuing it sends them at once: the planner starts it once its parents are
        # done); a program's at once (its EndProgram waits for it).
        self._report_now = CompletionReporter(planner)
        self._report_later = CompletionReporter(planner, linger_s=REPORT_LINGER_S)
        self._tokenize = tokenize or load_tokenizer("sim")
        self._renderer = renderer or load_renderer("sim", tool_format)
        self._tool_format = tool_format
        self._reasoning_format = reasoning_format
        self._workers = workers
        self._cache = cache
        self._cache_default = cache_default or CachePolicy(CacheMode.OFF)
        self._tenancy = tenancy

    def cache_policy(self, call: common_pb2.CallSpec) -> CachePolicy:
        """The call's cache policy; raises CallFailed(INVALID_ARGUMENT) for a bad one."""
        try:
            return from_proto(call.cache, self._cache_default)
        except InvalidCachePolicy as exc:
            raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc

    async def run(
        self, tenant: str, program_id: str, call: common_pb2.CallSpec, timeout_s: float,
        new_program: NewProgram | None = None, resend: bool = False, implicit: bool = False,
        whole: bool = False, metered: bool | None = None,
    ) -> AsyncIterator[CallItem]:
        """Yields Granted, Deltas (content; the last one marked `last` when the result
        follows at once), then one CallResult. `call` must be normalized;
        `new_program`: the program, not registered yet, that the call's admission registers;
        `resend`: the client's retry of a call whose answer it never got (AdmitRequest.resend);
        `implicit`: the program is one that no caller ends (found from the conversation),
        so that nobody waits for the call's report; `whole`: the caller takes the answer at
        its end only (the worker sends its text with the result); `metered`: this request
        already took its quota (a second attempt of one request: whether that took any).

        Answered from the cache when the call's policy allows and an entry matches (the
        planner records the call as done, so later calls may depend on it); otherwise run
        through the mesh, and a finished answer is stored for the next caller.
        """
        start = time.monotonic()
        policy = self.cache_policy(call)
        prepared = self._prepare(call)
        # refused here, before any quota is taken or anything is queued
        call = self._fitted(call, prepared[0])
        limits = self._tenancy().limits_of(tenant)
        if metered is None:
            metered = await self._quotas.admit(tenant, limits, len(prepared[0].ids))
        try:
            async for item in self._answer(tenant, program_id, call, timeout_s, start,
                                           prepared, new_program, resend, implicit, whole,
                                           limits, policy):
                yield item
        except CallFailed as exc:
            exc.metered = metered  # (a second attempt of the request must not take it again)
            if metered and exc.code == grpc.StatusCode.INVALID_ARGUMENT:
                await self._quotas.refund(tenant, limits, len(prepared[0].ids))  # never ran
            raise

    async def _answer(
        self, tenant: str, program_id: str, call: common_pb2.CallSpec, timeout_s: float,
        start: float, prepared: tuple[PreparedPrompt, int], new_program: NewProgram | None,
        resend: bool, implicit: bool, whole: bool, limits: TenantLimits, policy: CachePolicy,
    ) -> AsyncIterator[CallItem]:
        """The call answered from the cache, or run through the mesh."""
        exact = exact_digest(tenant, call) if (
            policy.mode is not CacheMode.OFF and deterministic(call)) else None
        semantic = semantic_key(tenant, call) if policy.mode is CacheMode.SEMANTIC else None
        if self._cache is not None and (exact or semantic):
            hit = await self._cache.lookup(tenant, exact, semantic, policy.threshold)
            if hit is not None:
                await self._record_cached(tenant, program_id, call, timeout_s, new_program,
                                          resend)
                self._quotas.charge(tenant, limits, hit.answer.completion_tokens)
                yield Granted("")
                yield Delta(hit.answer.text, _HIT[hit.kind], last=True,
                            reasoning=hit.answer.reasoning)
                yield common_pb2.CallResult(
                    call_id=call.call_id, text=hit.answer.text,
                    reasoning_content=hit.answer.reasoning,
                    finish_reason=hit.answer.finish_reason,
                    # ids of its own: a tool call's id names one answer's call, and the
                    # cached answer's went to the caller who asked first
                    tool_calls=tool_calls(((n, a) for _, n, a in hit.answer.tool_calls),
                                          prepared[0].call_numbers_from),
                    usage=self._with_thinking(common_pb2.Usage(
                        prompt_tokens=hit.answer.prompt_tokens,
                        completion_tokens=hit.answer.completion_tokens), hit.answer.reasoning),
                    cache_hit=_HIT[hit.kind],
                    timings=common_pb2.CallTimings(total_s=time.monotonic() - start))
                return
        report_later = implicit or (new_program is not None and new_program.one_call)
        # Such a program counts against the tenant's max_programs until the planner has its
        # call's report: with a limit, the report is through before the answer goes out, so
        # that the client's next request never finds the program it was answered busy.
        settle = report_later and limits.max_programs > 0
        async for item in self._through_mesh(tenant, program_id, call, timeout_s, start,
                                             prepared, new_program, resend,
                                             report_later and not settle, whole, limits,
                                             exact, semantic):
            if settle and isinstance(item, common_pb2.CallResult):
                await self._report_now.queued_through(REPORT_SETTLE_S)
            yield item

    async def _through_mesh(
        self, tenant: str, program_id: str, call: common_pb2.CallSpec, timeout_s: float,
        start: float, prepared: tuple[PreparedPrompt, int], new_program: NewProgram | None,
        resend: bool, report_later: bool, whole: bool, limits: TenantLimits,
        exact: str | None, semantic: SemanticKey | None,
    ) -> AsyncIterator[CallItem]:
        """The call run by a worker; its completion charged, its answer stored."""
        async for item in self._run(tenant, program_id, call, timeout_s, start, prepared,
                                    new_program, resend, report_later, whole):
            if isinstance(item, common_pb2.CallResult):
                self._quotas.charge(tenant, limits, item.usage.completion_tokens)
            # Stored before the result is handed on: a consumer may stop at the result
            # (the HTTP stream does), and nothing after the last yield would run then.
            if (isinstance(item, common_pb2.CallResult) and self._cache is not None
                    and (exact or semantic)
                    and item.finish_reason in ("stop", "length", "tool_calls")):
                await self._cache.store(tenant, exact, semantic, Answer(
                    item.text, item.finish_reason, item.usage.prompt_tokens,
                    item.usage.completion_tokens,
                    tuple((c.id, c.name, c.arguments) for c in item.tool_calls),
                    item.reasoning_content))
            yield item

    async def _record_cached(self, tenant: str, program_id: str, call: common_pb2.CallSpec,
                             timeout_s: float, new_program: NewProgram | None,
                             resend: bool) -> None:
        admit = planner_pb2.AdmitRequest(
            tenant=tenant, program_id=program_id, call_id=call.call_id, thread_id=call.thread_id,
            parent_call_ids=call.parent_call_ids, served_from_cache=True, resend=resend)
        if new_program is not None:
            new_program.into(admit)
        try:
            await with_retry(self._admissions.Admit, admit, timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise planner_failure(exc, tenant) from exc

    def check_fit(self, call: common_pb2.CallSpec) -> None:
        """Raises CallFailed (context_length_exceeded) when `call` (normalized) does not fit
        the model's context window; runs nothing."""
        self._fitted(call, self._prepare(call)[0])

    def _fitted(self, call: common_pb2.CallSpec, prompt: PreparedPrompt) -> common_pb2.CallSpec:
        """`call` fitted to the context window (gateway/context_window.py), or CallFailed."""
        try:
            return fit(call, len(prompt.ids), self._window)
        except InvalidCall as exc:
            raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT, str(exc), exc.param,
                             error_code=exc.error_code) from None

    async def reports_through(self, timeout_s: float = 2.0) -> None:
        """Until the completion reports of the calls answered so far are at the planner
        (the ones a program's summary reads: the thinking's tokens are counted here)."""
        await self._report_now.queued_through(timeout_s)

    def _with_thinking(self, usage: common_pb2.Usage, reasoning: str) -> common_pb2.Usage:
        """`usage` with the thinking's tokens counted (Usage.reasoning_tokens)."""
        if not reasoning:
            return usage
        out = common_pb2.Usage()
        out.CopyFrom(usage)
        out.reasoning_tokens = min(usage.completion_tokens, len(self._tokenize(reasoning)))
        return out

    def _prepare(self, call: common_pb2.CallSpec) -> tuple[PreparedPrompt, int]:
        """The call rendered and tokenized once, and how many leading tokens are a declared
        shared prefix."""
        prompt = prepare(call, self._renderer, self._tokenize, self._tool_format,
                         self._reasoning_format)
        shared_bytes = self._tenancy().shared_bytes(prompt.text)
        if shared_bytes <= 0:
            return prompt, 0
        shared_text = prompt.text.encode("utf-8", "surrogatepass")[:shared_bytes].decode(
            "utf-8", "ignore")
        return prompt, shared_token_count(prompt.ids, self._tokenize(shared_text))

    async def _run(self, tenant: str, program_id: str, call: common_pb2.CallSpec,
                   timeout_s: float, start: float, prepared: tuple[PreparedPrompt, int],
                   new_program: NewProgram | None, resend: bool,
                   report_later: bool, whole: bool) -> AsyncIterator[CallItem]:
        prompt, shared_tokens = prepared
        if call.parent_call_ids:  # its parents' lingering reports: the planner waits for them
            self._report_later.flush()
        salt = cache_salt(tenant)
        admit = planner_pb2.AdmitRequest(
            tenant=tenant, program_id=program_id, call_id=call.call_id, thread_id=call.thread_id,
            parent_call_ids=call.parent_call_ids, prompt_tokens=max(1, len(prompt.ids)),
            max_new_tokens=call.sampling.max_new_tokens, hints=planner_hints(call),
            prefix_hashes=prefix_block_hashes(prompt.ids, salt, shared_tokens=shared_tokens),
            resend=resend,
        )
        if new_program is not None:
            new_program.into(admit)
        generate = worker_pb2.GenerateRequest(
            tenant=tenant, program_id=program_id, call_id=call.call_id, prompt=prompt.text,
            input_ids=prompt.ids, sampling=call.sampling, cache_salt=salt,
            shared_prefix_tokens=shared_tokens, json_schema=prompt.json_schema,
            return_logprob=call.logprobs, top_logprobs_num=call.top_logprobs, whole=whole,
            keep_special_tokens=prompt.keep_special_tokens,
        )
        failed: planner_pb2.Grant | None = None  # the attempt that failed before this one
        streamed = False  # text handed to our caller (since the last restart)
        for retry in range(MAX_RETRIES + 1):
            grant = await self._admitted(admit, failed, timeout_s - (time.monotonic() - start))
            final: worker_pb2.GenerateResult | None = None
            # the text (and thinking) that came with the result (a whole answer's: all of
            # it), sent with what output.finish() adds
            tail = tail_thinking = ""
            try:
                if retry == 0:
                    yield Granted(grant.worker_id)
                queued = time.monotonic() - start
                output = ToolOutput(prompt.parser, prompt.tools, prompt.single_call,
                                    prompt.reasoning, prompt.call_numbers_from)
                attempt = self._generate(generate, grant, output, max(0.001, timeout_s - queued))
                async with contextlib.aclosing(attempt):  # our caller gone: the stream stops
                    async for item in attempt:
                        if isinstance(item, worker_pb2.GenerateResult):
                            final = item
                        elif item.last or whole:  # a whole answer: nothing before its end
                            tail += item.text  # (whatever the worker sends)
                            tail_thinking += item.reasoning
                        else:
                            streamed = True
                            yield item
            except _AttemptFailed as exc:
                if exc.code not in _WORKER_FAILED or retry == MAX_RETRIES or (
                        streamed and not call.restart_on_failure):
                    await self._outcomes.failed(admit, grant)
                    code = grpc.StatusCode.UNAVAILABLE if exc.code in _WORKER_FAILED else exc.code
                    raise CallFailed(code, exc.message) from exc
                log.warning("worker failed mid-call: call re-run", program_id=program_id,
                            call_id=call.call_id, worker_id=grant.worker_id,
                            attempt=grant.attempt, streamed=streamed, error=exc.message)
                if streamed:  # the caller drops what it got: the answer starts over
                    yield Delta("", restart=True)
                    streamed = False
                failed = grant
                continue
            except (GeneratorExit, asyncio.CancelledError):
                # Gone before the worker may have started the call: it would never report.
                self._outcomes.gone(admit, grant.attempt, grant.worker_id)
                raise
            break
        assert final is not None
        thinking, rest, content, tool_calls = output.finish(cut=final.finish_reason == "length")
        usage = self._with_thinking(final.usage, output.reasoning)  # the planner's sums too
        (self._report_later if report_later else self._report_now).send(planner_pb2.CompletionReport(
            program_id=admit.program_id, call_id=admit.call_id, worker_id=grant.worker_id,
            status=planner_pb2.COMPLETION_STATUS_OK, usage=usage,
            service_s=final.service_s, attempt=grant.attempt))
        if tail or rest or tail_thinking or thinking:
            yield Delta(tail + rest, last=True, reasoning=tail_thinking + thinking)
        total = time.monotonic() - start
        yield common_pb2.CallResult(
            call_id=call.call_id, text=content, tool_calls=tool_calls,
            reasoning_content=output.reasoning,
            finish_reason="tool_calls" if tool_calls else final.finish_reason,
            usage=usage, worker_id=final.worker_id, cache_hit=common_pb2.CACHE_HIT_MISS,
            timings=common_pb2.CallTimings(queue_s=queued, engine_s=final.service_s, total_s=total),
            priority=grant.priority, simulated=final.simulated, logprobs=final.logprobs,
        )

    async def _admitted(self, admit: planner_pb2.AdmitRequest, failed: planner_pb2.Grant | None,
                        budget_s: float) -> planner_pb2.Grant:
        """The planner's grant; after a failed attempt, of the call's next attempt (the
        planner ends the failed one and avoids the workers that failed it)."""
        if failed is not None:
            admit.retry_of_attempt = failed.attempt
            admit.exclude_workers.append(failed.worker_id)
            admit.resend = False  # this attempt's worker did fail
        try:
            # Through a planner restart: the planner recognizes a re-admitted call.
            return await with_retry(self._admissions.Admit, admit, max(0.001, budget_s))
        except asyncio.CancelledError:
            self._outcomes.gone(admit)  # a grant may be on its way: it must not hold a worker
            raise
        except grpc.aio.AioRpcError as exc:
            if failed is not None:  # the failed attempt must not hold its worker's slot
                await self._outcomes.failed(admit, failed)
            if exc.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                self._outcomes.gone(admit)  # granted just as the deadline passed: freed
            raise planner_failure(exc, admit.tenant) from exc

    async def _generate(self, template: worker_pb2.GenerateRequest, grant: planner_pb2.Grant,
                        output: ToolOutput, timeout_s: float,
                        ) -> AsyncIterator[Delta | worker_pb2.GenerateResult]:
        """One attempt on the granted worker: content Deltas (the one that came with the
        result marked `last`), then its GenerateResult; _AttemptFailed when the stream breaks
        or ends without a result."""
        request = worker_pb2.GenerateRequest()
        request.CopyFrom(template)
        request.request_id = f"{request.program_id}-{request.call_id}-{uuid.uuid4().hex[:8]}"
        request.priority, request.attempt = grant.priority, grant.attempt
        final: worker_pb2.GenerateResult | None = None
        # (closed when our caller goes away: the worker stops the call)
        async with contextlib.aclosing(self._workers.generate(
                grant.worker_address, request, timeout_s)) as stream:
            try:
                async for chunk in stream:
                    if chunk.delta:  # the last text may come with the result
                        thinking, content = output.feed(chunk.delta)
                        if content or thinking:
                            yield Delta(content, last=chunk.HasField("result"),
                                        reasoning=thinking)
                    if chunk.HasField("result"):
                        final = chunk.result
            except grpc.aio.AioRpcError as exc:
                raise _AttemptFailed(exc.code(), exc.details() or "worker error") from exc
        if final is None:
            raise _AttemptFailed(grpc.StatusCode.INTERNAL, "worker stream ended without a result")
        yield final
