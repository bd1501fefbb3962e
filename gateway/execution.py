"""A call's way to its answer: its cache policy, the model's context window and the
tenant's quotas first, then the answer cache, else the mesh (gateway/mesh_run.py: Admit, the
worker's Generate, re-runs when a worker fails), and the finished answer stored.

Shared by interactive calls and declared programs. Failures surface as CallFailed with
the gRPC status to return.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import grpc

from cache.answers import Answer, AnswerCache
from cache.block_hash import Tokenize, shared_token_count
from cache.fingerprint import SemanticKey, deterministic, exact_digest, semantic_key
from cache.modes import CacheMode, CachePolicy, InvalidCachePolicy, from_proto
from cache.quotas import Quotas
from cache.tenancy import Tenancy, TenantLimits
from gateway.admissions import Admissions
from gateway.call_items import CallFailed, CallItem, Delta, Granted, NewProgram, planner_failure
from gateway.calls import InvalidCall, prompt_chars
from gateway.context_window import ContextWindow, answer_room, fit
from gateway.early_guess import FRESH_S
from gateway.mesh_run import MeshRun
from gateway.prompts import PreparedPrompt, prepare
from gateway.quota_meter import QuotaMeter
from gateway.tool_output import tool_calls
from gateway.worker_channels import WorkerChannels
from ostinato.gateway_config import GatewayConfig
from ostinato.program_ids import namespace_of
from ostinato.retry import PLANNER_WAIT_S, Outage, with_retry
from ostinato.tokenizers import ChatRenderer, TemplateRefused, load_renderer, load_tokenizer
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc

_HIT = {"exact": common_pb2.CACHE_HIT_EXACT, "semantic": common_pb2.CACHE_HIT_SEMANTIC}

REPORT_SETTLE_S = 2.0  # how long an answer waits for its report to reach the planner, at most


OFF_LOOP_CHARS = 32_768  # a prompt this long is prepared off the event loop (`_prepared`)


@dataclass
class _Charged:
    """Whether a call's completion was charged (`CallExecutor.run` charges a caller gone
    before that; a diff review found one gone while its answer was stored charged twice)."""

    done: bool = False


class CallExecutor:
    """Runs one call: answered from the cache, or through the mesh."""

    def __init__(self, planner: planner_pb2_grpc.PlannerStub, workers: WorkerChannels,
                 cache: AnswerCache | None = None,
                 cache_default: CachePolicy | None = None,
                 tenancy: Callable[[], Tenancy] = Tenancy,
                 tokenize: Tokenize | None = None, renderer: ChatRenderer | None = None,
                 tool_format: str = "hermes", quotas: Quotas | None = None,
                 quota_timeout_s: float = 0.5, admissions: Admissions | None = None,
                 reasoning_format: str = "", window: ContextWindow | None = None,
                 early_start_max_tokens: int = 0, early_start_fresh_s: float = FRESH_S) -> None:
        """`tokenize` and `renderer`: the served model's tokenizer and chat template;
        `tool_format`: how its output writes tool calls (ostinato/tool_formats.py);
        `reasoning_format`: how it writes its thinking ("": it does not think;
        ostinato/reasoning_formats.py);
        `quotas`: the tenants' rate and token quotas in Redis (None: not enforced);
        `admissions`: what admits calls (gateway/admissions.py: over one stream), else
        the planner's unary Admit; `window`: the served model's context window and the
        default max tokens (gateway/context_window.py); `early_start_max_tokens` and
        `early_start_fresh_s`: see gateway/early_guess.py (0 tokens: no call starts ahead of
        its grant)."""
        self._window = window or ContextWindow(0, GatewayConfig().default_output_tokens)
        self._mesh = MeshRun(planner, workers, admissions, self._with_thinking,
                             early_start_max_tokens, early_start_fresh_s)
        self._quotas = QuotaMeter(quotas, quota_timeout_s, self._mesh.outcomes.spawn)
        self._tokenize = tokenize or load_tokenizer("sim")
        self._renderer = renderer or load_renderer("sim", tool_format)
        self._tool_format = tool_format
        self._reasoning_format = reasoning_format
        self._cache = cache
        self._cache_default = cache_default or CachePolicy(CacheMode.OFF)
        self._tenancy = tenancy

    @property
    def planner_outage(self) -> Outage:
        """Since when the planner has answered none of this gateway's calls, shared by
        them all (ostinato/retry.py)."""
        return self._mesh.planner_outage

    @property
    def unmetered(self) -> int:
        """Calls served without their tenant's quotas taken (Redis did not answer)."""
        return self._quotas.unmetered

    @property
    def early_starts(self) -> tuple[int, int]:
        """Calls started ahead of their grant: (confirmed, missed) (gateway/early_guess.py)."""
        return self._mesh.early.confirmed, self._mesh.early.missed

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
    ) -> AsyncGenerator[CallItem, None]:
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
        prepared = await self._prepared(call)
        named = call.sampling.HasField("max_new_tokens")  # (else the default is set now)
        # refused here, before any quota is taken or anything is queued
        call = self._fitted(call, prepared[0])
        limits = self._tenancy().limits_of(tenant)
        prompt_tokens = len(prepared[0].ids)
        # its max_new_tokens reserved at admission, the unused part given back at its end
        # (a call that fails otherwise, or is cut, keeps its reservation: its tokens may
        # have been spent)
        reserved = self._quotas.reservation(limits, prompt_tokens, call.sampling.max_new_tokens,
                                            named)
        if metered is None:
            metered = await self._quotas.admit(tenant, limits, prompt_tokens, reserved)
        streamed: list[str] = []  # output streamed to the caller (its tokens were spent)
        granted = False  # a worker was given the call (its engine may have spent tokens)
        charged = _Charged()  # its completion charged (at its result, or its cache hit)
        try:
            answer = self._answer(tenant, program_id, call, timeout_s, start, prepared,
                                  new_program, resend, implicit, whole, limits, policy, metered,
                                  reserved, charged)
            async with contextlib.aclosing(answer) as items:  # (closed with this one)
                async for item in items:
                    if isinstance(item, Delta):
                        streamed = [] if item.restart else streamed
                        streamed += [item.reasoning, item.text]
                    granted = granted or isinstance(item, Granted)
                    yield item
        except (GeneratorExit, asyncio.CancelledError):
            # its caller gone (a disconnect, a cancel; a deadline is a CallFailed) before its
            # result: one that never reached a worker gives its reservation back; one that
            # streamed past it is charged what it streamed (cancellation review 2026-12-08
            # F2: a disconnect before the end kept queued calls' tokens, and a call naming
            # no max tokens read to 5x its tenant's tpm, charged nothing past 1,024 a call)
            if metered and not charged.done:
                if not granted and not any(streamed):
                    self._quotas.refund_later(tenant, limits, prompt_tokens, reserved)
                elif any(streamed):
                    spent = len(self._tokenize("".join(streamed)))
                    self._quotas.charge(tenant, limits, max(spent, reserved), metered, reserved)
            raise
        except CallFailed as exc:
            produced = any(streamed)
            # refused before it ran: by the planner, whatever the reason (a load shed: it
            # kept its tokens, and the Retry-After of 1 s it was told was no true answer:
            # overload review 2026-12-06), or at once by an engine; not one an engine
            # refused after streaming part of its answer (security review 2026-12-06)
            refund = metered and not produced and (
                not granted or exc.code == grpc.StatusCode.INVALID_ARGUMENT)
            if refund:
                await self._quotas.refund(tenant, limits, prompt_tokens, reserved)
            # a second attempt of the request does not take its quota again, unless it was
            # given back (diff review 2026-12-06: a conversation's expired program, NOT_FOUND,
            # refunded, then run again unmetered, left the tenant credited)
            exc.metered = metered and not refund
            raise

    async def _answer(
        self, tenant: str, program_id: str, call: common_pb2.CallSpec, timeout_s: float,
        start: float, prepared: tuple[PreparedPrompt, int], new_program: NewProgram | None,
        resend: bool, implicit: bool, whole: bool, limits: TenantLimits, policy: CachePolicy,
        metered: bool, reserved: int, charged: _Charged,
    ) -> AsyncGenerator[CallItem, None]:
        """The call answered from the cache, or run through the mesh (`metered`: its
        admission was taken from the tenant's quotas, `reserved` completion tokens with it)."""
        # the caches are keyed by the tenant's namespace (its name and generation): a tenant
        # created again under a revoked one's name reaches none of its answers
        space = namespace_of(program_id, tenant)
        exact = exact_digest(space, call) if (
            policy.mode is not CacheMode.OFF and deterministic(call)) else None
        semantic = semantic_key(space, call) if policy.mode is CacheMode.SEMANTIC else None
        if self._cache is not None and (exact or semantic):
            hit = await self._cache.lookup(space, exact, semantic, policy.threshold)
            if hit is not None:
                await self._record_cached(tenant, program_id, call, timeout_s, new_program,
                                          resend)
                self._quotas.charge(tenant, limits, hit.answer.completion_tokens, metered,
                                    reserved)
                charged.done = True
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
                                          prepared[0].call_ids),
                    usage=self._with_thinking(common_pb2.Usage(
                        # a semantic hit's cached request was another prompt
                        prompt_tokens=(hit.answer.prompt_tokens if hit.kind == "exact"
                                       else len(prepared[0].ids)),
                        completion_tokens=hit.answer.completion_tokens), hit.answer.reasoning),
                    cache_hit=_HIT[hit.kind], simulated=hit.answer.simulated,
                    timings=common_pb2.CallTimings(total_s=time.monotonic() - start),
                    logprobs=[common_pb2.TokenLogprob(
                        token=t, logprob=lp, top_logprobs=[
                            common_pb2.TopLogprob(token=a, logprob=alp) for a, alp in top])
                        for t, lp, top in hit.answer.logprobs])
                return
        report_later = implicit or (new_program is not None and new_program.one_call)
        # Such a program counts against the tenant's max_programs until the planner has its
        # call's report: with a limit, the report is through before the answer goes out, so
        # that the client's next request never finds the program it was answered busy.
        settle = report_later and limits.program_limit(0) > 0
        run = self._through_mesh(tenant, program_id, call, timeout_s, start, prepared,
                                 new_program, resend, report_later and not settle, whole, limits,
                                 exact, semantic, metered, reserved, charged)
        async with contextlib.aclosing(run) as items:  # (closed with this one)
            async for item in items:
                if settle and isinstance(item, common_pb2.CallResult):
                    await self._mesh.report_now.queued_through(REPORT_SETTLE_S)
                yield item

    async def _through_mesh(
        self, tenant: str, program_id: str, call: common_pb2.CallSpec, timeout_s: float,
        start: float, prepared: tuple[PreparedPrompt, int], new_program: NewProgram | None,
        resend: bool, report_later: bool, whole: bool, limits: TenantLimits,
        exact: str | None, semantic: SemanticKey | None, metered: bool, reserved: int,
        charged: _Charged,
    ) -> AsyncGenerator[CallItem, None]:
        """The call run by a worker; its completion charged, its answer stored."""
        run = self._mesh.run(tenant, program_id, call, timeout_s, start, prepared, new_program,
                             resend, report_later, whole)
        async with contextlib.aclosing(run) as items:  # (closed with this one)
            async for item in items:
                if isinstance(item, common_pb2.CallResult):
                    self._quotas.charge(tenant, limits, item.usage.completion_tokens, metered,
                                        reserved)
                    charged.done = True  # (a caller gone while it is stored: not again)
                # Stored before the result is handed on: a consumer may stop at the result
                # (the HTTP stream does), and nothing after the last yield would run then.
                if (isinstance(item, common_pb2.CallResult) and self._cache is not None
                        and (exact or semantic)
                        and item.finish_reason in ("stop", "length", "tool_calls")):
                    await self._cache.store(namespace_of(program_id, tenant), exact, semantic, Answer(
                        item.text, item.finish_reason, item.usage.prompt_tokens,
                        item.usage.completion_tokens,
                        tuple((c.id, c.name, c.arguments) for c in item.tool_calls),
                        item.reasoning_content,
                        tuple((t.token, t.logprob, tuple((a.token, a.logprob) for a in t.top_logprobs))
                              for t in item.logprobs), item.simulated))
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
            await with_retry(self._mesh.admissions.Admit, admit, timeout_s,
                             failing_for_s=PLANNER_WAIT_S, outage=self.planner_outage)
        except grpc.aio.AioRpcError as exc:
            raise planner_failure(exc, tenant) from exc

    def answer_room(self) -> int:
        """What truncation leaves for the answer of a call naming no max tokens."""
        return answer_room(self._window)

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

    def end_unanswered(self, tenant: str, program_id: str) -> None:
        """Ends, in the background, a program that a failed request opened (GatewayCore
        `answering`)."""
        self._mesh.outcomes.end(tenant, program_id)

    async def reports_through(self, timeout_s: float = 2.0) -> None:
        """Until the completion reports of the calls answered so far are at the planner
        (the ones a program's summary reads: the thinking's tokens are counted here)."""
        await self._mesh.report_now.queued_through(timeout_s)

    def _with_thinking(self, usage: common_pb2.Usage, reasoning: str) -> common_pb2.Usage:
        """`usage` with the thinking's tokens counted (Usage.reasoning_tokens)."""
        if not reasoning:
            return usage
        out = common_pb2.Usage()
        out.CopyFrom(usage)
        out.reasoning_tokens = min(usage.completion_tokens, len(self._tokenize(reasoning)))
        return out

    async def _prepared(self, call: common_pb2.CallSpec) -> tuple[PreparedPrompt, int]:
        """`_prepare`, in a thread for a long prompt: rendering and tokenizing 1 MB took
        65-140 ms on the event loop, before any quota is taken, and a tenant sending such
        prompts in a loop stalled every other tenant's calls (security review 2026-12-07)."""
        if prompt_chars(call) < OFF_LOOP_CHARS:  # (a thread's hop costs more than this)
            return self._prepare(call)
        return await asyncio.to_thread(self._prepare, call)

    def _prepare(self, call: common_pb2.CallSpec) -> tuple[PreparedPrompt, int]:
        """The call rendered and tokenized once, and how many leading tokens are a declared
        shared prefix; CallFailed (INVALID_ARGUMENT) when the chat template refuses it."""
        try:
            prompt = prepare(call, self._renderer, self._tokenize, self._tool_format,
                             self._reasoning_format)
        except TemplateRefused as exc:
            raise CallFailed(grpc.StatusCode.INVALID_ARGUMENT, str(exc), "messages") from None
        shared_bytes = self._tenancy().shared_bytes(prompt.text)
        if shared_bytes <= 0:
            return prompt, 0
        shared_text = prompt.text.encode("utf-8", "surrogatepass")[:shared_bytes].decode(
            "utf-8", "ignore")
        return prompt, shared_token_count(prompt.ids, self._tokenize(shared_text))
