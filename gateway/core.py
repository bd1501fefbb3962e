"""The gateway's one call path, shared by the gRPC service and the HTTP API.

Tenant resolution, call validation, program attribution (a header or the request's own
program id, else the conversation index, else a new program), planner registration with
retries, execution through the mesh and recording the answer for the next request. The
adapters (gateway/service.py, gateway/http_api.py) only translate requests and errors.
Every failure is a GatewayError carrying the gRPC status (the HTTP API maps it).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import grpc
import structlog

from cache.answers import AnswerCache
from cache.conversations import Continuation, ConversationIndex
from cache.tenancy import NO_LIMITS, TenantLimits
from gateway.auth import ApiKeyAuthenticator, Unauthenticated, api_key_from_metadata
from gateway.call_items import RETRY_LOAD_AFTER_S, CallFailed, CallItem, NewProgram, planner_failure
from gateway.calls import (
    CONTEXT_LENGTH_EXCEEDED,
    CallLimits,
    InvalidCall,
    check_program_id,
    check_program_options,
    normalize_call,
)
from gateway.execution import CallExecutor
from ostinato.config import GatewayConfig
from ostinato.program_ids import client_id, inner_id, namespace
from ostinato.retry import PLANNER_WAIT_S, with_retry
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc

log = structlog.get_logger(__name__)

MODEL_NOT_FOUND = "model_not_found"  # OpenAI's error code for a model not served
GatewayError = CallFailed  # one error type for the whole call path: (gRPC code, message, param)


@dataclass(frozen=True)
class Placement:
    """Where a call runs: its program, and the call with its id, thread and parents set."""

    program_id: str  # the mesh's id, inside the tenant (ostinato/program_ids.py)
    call: common_pb2.CallSpec
    attributed: bool  # the program was found (or started) from the conversation, not named
    # A program that the call's admission registers (one planner round trip, not two): an
    # implicit program, or a one-call program that the planner ends after the call.
    new_program: NewProgram | None = None
    # The client's retry of a call whose answer it never got (AdmitRequest.resend).
    resend: bool = False
    # The caller takes the answer at its end only (CallRequest.whole, a request not
    # streamed): the worker sends the text with the result, in one message.
    whole: bool = False
    # A node of a declared program, run within its RunProgram (gateway/program_runner.py):
    # that RPC's hop, whose SERVER span is the program's (gateway/spans.py)
    node: bool = False

    @property
    def client_program_id(self) -> str:
        """The program's id as its client knows it."""
        return client_id(self.program_id)


def inflight_share(limit: int, tenant: str, inflight_of: dict[str, int],
                   weight_of: Callable[[str], float]) -> float:
    """The tenant's share of the gateway's `limit` of calls in flight: its fair-share weight
    over the weights of the tenants with calls in flight here, itself included."""
    mine = weight_of(tenant)
    total = mine + sum(weight_of(t) for t in inflight_of if t != tenant)
    return limit * mine / total


class GatewayCore:
    def __init__(self, config: GatewayConfig, auth: ApiKeyAuthenticator,
                 planner: planner_pb2_grpc.PlannerStub, executor: CallExecutor,
                 cache: AnswerCache | None = None,
                 conversations: ConversationIndex | None = None,
                 tenancy_stale: Callable[[], bool] = lambda: False,
                 limits: Callable[[str], TenantLimits] = lambda tenant: NO_LIMITS,
                 weight_of: Callable[[str], float] | None = None) -> None:
        """`limits`: a tenant's record (fair-share weight and quotas) from the tenancy data;
        `weight_of`: a tenant's fair-share weight (the service passes the planner's rule,
        `Tenancy.weight_of`; default: 1 each)."""
        self.config = config
        self._tenant_limits = limits
        self._weight_of = weight_of or (lambda tenant: 1.0)
        self.inflight = 0  # calls running through this gateway
        self._inflight_of: dict[str, int] = {}  # tenant -> its calls of `inflight`
        self.cache = cache
        self.tenancy_stale = tenancy_stale
        self._auth = auth
        self._planner = planner
        self._executor = executor
        self._conversations = conversations
        self._limits = CallLimits(config.max_prompt_chars, config.max_messages,
                                  config.default_output_tokens, config.max_new_tokens_limit)

    def tenant(self, metadata: Iterable[tuple[str, str | bytes]] | None, *,
               openai_client: bool = False) -> str:
        """The caller's tenant (`openai_client`: the OpenAI-compatible HTTP API's caller,
        whose unknown key open mode takes as no key: gateway/auth.py)."""
        try:
            return self._auth.tenant_for(api_key_from_metadata(metadata),
                                         any_key_is_anonymous=openai_client)
        except Unauthenticated as exc:
            raise GatewayError(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from exc

    def normalize(self, call: common_pb2.CallSpec) -> common_pb2.CallSpec:
        if call.model and call.model != self.config.model:
            raise GatewayError(grpc.StatusCode.NOT_FOUND,
                               f"model {call.model!r} is not served here (this gateway serves "
                               f"{self.config.model!r})", "model", error_code=MODEL_NOT_FOUND)
        try:
            return normalize_call(call, self._limits)
        except InvalidCall as exc:
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, str(exc), exc.param,
                               error_code=exc.error_code) from exc

    def fits(self, call: common_pb2.CallSpec) -> bool:
        """Whether `call` fits the model's context window with its max tokens, or when it
        names none with room for an answer (gateway/context_window.py `answer_room`)
        (tokenized here; nothing runs); GatewayError for a call invalid otherwise."""
        call = self.normalize(call)
        if not call.sampling.HasField("max_new_tokens"):
            call.sampling.max_new_tokens = self._executor.answer_room()
        try:
            self._executor.check_fit(call)
        except GatewayError as exc:
            if exc.error_code != CONTEXT_LENGTH_EXCEEDED:
                raise
            return False
        return True

    def timeout(self, remaining_s: float | None) -> float:
        limit = self.config.call_timeout_s
        return limit if remaining_s is None else max(0.001, min(limit, remaining_s))

    async def _planner_call(self, rpc: object, request: object, tenant: str) -> object:
        try:
            return await with_retry(rpc, request, budget_s=PLANNER_WAIT_S,  # type: ignore[arg-type]
                                    attempt_timeout_s=10.0, failing_for_s=PLANNER_WAIT_S,
                                    outage=self._executor.planner_outage)
        except grpc.aio.AioRpcError as exc:
            raise planner_failure(exc, tenant) from exc

    async def start_program(self, tenant: str, options: common_pb2.ProgramOptions, *,
                            declared: bool = False) -> str:
        """Registers a program; its id as the client knows it (see `program`). Idempotent
        (a retried StartProgram opens one program), unless `declared`: a program of that id
        open already is ALREADY_EXISTS (RunProgram's DAG runs in a program of its own, which
        it ends; the planner ends it once idle planner.declared_idle_ttl_s, its gateway
        gone mid-run)."""
        return (await self.register_program(tenant, options, declared=declared))[0]

    async def register_program(self, tenant: str, options: common_pb2.ProgramOptions, *,
                               declared: bool = False) -> tuple[str, bool]:
        """`start_program`, and whether the program was open already (a retry, or a
        program opened through another gateway replica)."""
        try:
            check_program_options(options)
        except InvalidCall as exc:
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, str(exc), exc.param) from exc
        named = common_pb2.ProgramOptions()
        named.CopyFrom(options)
        # Named here, so a registration retried through a planner restart is recognized.
        named.program_id = inner_id(tenant, named.program_id or uuid.uuid4().hex,
                                      self._auth.generation_of(tenant))
        try:
            resp = await self._planner_call(self._planner.RegisterProgram,
                                            planner_pb2.RegisterProgramRequest(
                                                tenant=tenant, options=named,
                                                max_open_programs=self._max_open(tenant),
                                                # the same on each attempt: one whose first
                                                # answer was lost is not told it was open
                                                registration=uuid.uuid4().hex,
                                                declared=declared),
                                            tenant)
        except asyncio.CancelledError:
            # its caller gone (a deadline) while the planner may have opened it: an id the
            # gateway chose reaches nobody who could end it, and the program held a place
            # under the tenant's max_programs until idle (cancellation review F4). One the
            # client named is its to end (and may be open already, in use).
            if not options.program_id:
                self._executor.end_unanswered(tenant, named.program_id)
            raise
        if declared and resp.already_open:  # type: ignore[attr-defined]
            raise GatewayError(grpc.StatusCode.ALREADY_EXISTS,
                               f"program {options.program_id!r} is open: a DAG runs in a program "
                               "of its own (leave program_id empty, or end that one first)",
                               "program_id")
        log.info("program started", program_id=resp.program_id, tenant=tenant)  # type: ignore[attr-defined]
        return client_id(resp.program_id), bool(resp.already_open)  # type: ignore[attr-defined]

    def namespace(self, tenant: str) -> str:
        """The tenant's name and generation: what its programs and cached answers are
        named under (ostinato/program_ids.py)."""
        return namespace(tenant, self._auth.generation_of(tenant))

    def program(self, tenant: str, program_id: str) -> str:
        """The mesh's id of `tenant`'s program `program_id` (the client's id, checked):
        another tenant's program of the same id is a different one (ostinato/program_ids.py)."""
        try:
            check_program_id(program_id)
        except InvalidCall as exc:
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, str(exc), exc.param) from exc
        return inner_id(tenant, program_id, self._auth.generation_of(tenant))

    async def end_program(self, tenant: str, program_id: str) -> common_pb2.ProgramSummary:
        """Ends `tenant`'s program `program_id` (the client's id): its summary."""
        if not program_id:
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, "program_id is required")
        return await self.end_placed(tenant, self.program(tenant, program_id))

    async def end_placed(self, tenant: str, inner: str) -> common_pb2.ProgramSummary:
        """Ends `tenant`'s program of the mesh's id `inner`: its summary."""
        await self._executor.reports_through()
        summary: common_pb2.ProgramSummary = await self._planner_call(  # type: ignore[assignment]
            self._planner.EndProgram,
            planner_pb2.EndProgramPlannerRequest(tenant=tenant, program_id=inner), tenant)
        summary.program_id = client_id(summary.program_id)
        return summary

    def limits_of(self, tenant: str) -> TenantLimits:
        """The tenant's record (weight, quotas), as this gateway last loaded it."""
        return self._tenant_limits(tenant)

    def _new_program(self, tenant: str, program_id: str = "", *,
                     one_call: bool = False) -> NewProgram:
        options = common_pb2.ProgramOptions(
            program_id=program_id or inner_id(tenant, uuid.uuid4().hex,
                                                    self._auth.generation_of(tenant)))
        # its record's limit alone: a program a call opens (one call's, a conversation's)
        # counts until that call's report, which its answer waits for only under the
        # record's limit (gateway/execution.py `settle`: a review found back-to-back chats
        # refused under the gateway's default); calls bound these (quotas, backpressure)
        return NewProgram(options, self._tenant_limits(tenant).program_limit(0), one_call)

    def _max_open(self, tenant: str) -> int:
        """Programs the tenant may open and hold (StartProgram, RunProgram, POST
        /v1/programs): its record's max_programs (unlimited: none), else the gateway's
        max_programs_per_tenant (0: no limit)."""
        return self._tenant_limits(tenant).program_limit(self.config.max_programs_per_tenant)

    async def place(self, tenant: str, call: common_pb2.CallSpec, program_id: str = "",
                    *, attribute: bool = False,
                    continues: Continuation | None = None) -> Placement:
        """Validates `call` and decides its program: `program_id` (the client's) when given; else, with
        `attribute`, the program whose conversation it continues (as a child of the call
        it extends, unless the request names its own parents): `continues` when the caller
        knows it (a stored response continued by id), else as the conversation index finds
        it, or a new program; without `attribute`, a one-call program. A new program is
        registered by the call's own admission at the planner (one round trip)."""
        call = self.normalize(call)
        if program_id:
            return Placement(self.program(tenant, program_id), call, False)
        if not attribute:
            if call.parent_call_ids:
                raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT,
                                   "parent_call_ids name calls of a program: a call without "
                                   "a program_id is a program of its own", "ostinato")
            new = self._new_program(tenant, one_call=True)
            return Placement(new.options.program_id, call, False, new)
        found = None
        if continues is not None:
            found = continues if self._conversations is None else \
                await self._conversations.branch(tenant, continues, self.config.responses_ttl_s)
        elif self._conversations is not None and self.config.attribute_conversations:
            found = await self._conversations.find(tenant, call)
        if found is not None and not found.program_id.startswith(
                inner_id(tenant, "", self._auth.generation_of(tenant))):
            found = None  # recorded before ids were per tenant: no client can name it
        if found is None:
            if call.parent_call_ids:  # refused here: no new program is left behind
                raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"unknown parent call(s): {', '.join(call.parent_call_ids)} (a "
                                   "call without X-Ostinato-Program that continues no "
                                   "conversation starts a new program)", "ostinato")
            new = self._new_program(tenant)
            return Placement(new.options.program_id, call, True, new)
        if not call.parent_call_ids:
            call.parent_call_ids.append(found.parent_call_id)
            call.thread_id = found.thread_id
        return Placement(found.program_id, call, True)

    @contextlib.asynccontextmanager
    async def answering(self, tenant: str, placed: Placement,
                        told: Callable[[], bool]) -> AsyncIterator[None]:
        """Around a request's calls (`placed` and its siblings): a conversation program the
        request opened is ended if the request fails untold (`told()`: its response began,
        and the program's id may have gone out with it). Its caller learns of the program
        only from a response, so nobody could continue or end it. The failing call's own
        path ends it mostly; not when n > 1 answers were cut for one refused sibling, nor
        when a queued call was given up (its caller gone, or its time up) (fuzz runs
        2026-12-07: open, in memory and Redis, until planner.program_idle_ttl_s; one with
        its first answer done when a sibling failed)."""
        try:
            yield
        except BaseException:
            if placed.attributed and placed.new_program is not None and not told():
                self._executor.end_unanswered(tenant, placed.program_id)
            raise

    async def run(self, tenant: str, placed: Placement, timeout_s: float
                  ) -> AsyncGenerator[CallItem, None]:
        """Runs a placed call: Granted, Deltas, then its CallResult; the answer is recorded
        so that a request continuing the conversation finds this program. A program found
        from the conversation that the planner has since expired is registered again.
        Past `max_inflight_calls` running here, refused at once (RESOURCE_EXHAUSTED),
        unless its tenant has fewer in flight than its share of the limit (`inflight_share`):
        one tenant's flood filled the gateway and every other tenant's calls were refused
        (overload review 2026-12-06: 3 of a quiet tenant's 4). So the gateway holds at most
        twice the limit."""
        limit = self.config.max_inflight_calls
        of = self._inflight_of
        mine = of.get(tenant, 0)
        if limit and self.inflight >= limit and (
                self.inflight >= 2 * limit or mine >= inflight_share(
                    limit, tenant, of, self._weight_of)):
            raise GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"the gateway is at its limit of {limit} calls in flight",
                               retry_after_s=RETRY_LOAD_AFTER_S)
        self.inflight += 1
        of[tenant] = mine + 1
        try:
            # closed with this one (its caller gone), each layer closes the next at once: the
            # call on its worker ends then, not when the generators are collected
            async with contextlib.aclosing(self._items(tenant, placed, timeout_s)) as items:
                async for item in items:
                    if isinstance(item, common_pb2.CallResult) and self._conversations is not None \
                            and not (placed.new_program and placed.new_program.one_call):
                        # (a one-call program has ended: no request can continue it)
                        await self._conversations.record(tenant, placed.call, item,
                                                         placed.program_id)
                    yield item
        finally:
            self.inflight -= 1
            if of[tenant] > 1:
                of[tenant] -= 1
            else:
                del of[tenant]

    async def _items(self, tenant: str, placed: Placement,
                     timeout_s: float) -> AsyncGenerator[CallItem, None]:
        started = False
        try:
            run = self._executor.run(tenant, placed.program_id, placed.call, timeout_s,
                                     placed.new_program, placed.resend,
                                     implicit=placed.attributed, whole=placed.whole)
            async with contextlib.aclosing(run) as items:
                async for item in items:
                    started = True
                    yield item
        except CallFailed as exc:
            if started or not placed.attributed or exc.code != grpc.StatusCode.NOT_FOUND \
                    or placed.new_program is not None:
                raise
            del placed.call.parent_call_ids[:]  # the expired program's calls are gone
            # the same request again: its quota was taken by the first attempt
            again = self._executor.run(tenant, placed.program_id, placed.call, timeout_s,
                                       self._new_program(tenant, placed.program_id),
                                       implicit=True, whole=placed.whole, metered=exc.metered)
            async with contextlib.aclosing(again) as items:
                async for item in items:
                    yield item
