"""One call run through the mesh: the planner's Admit, then the granted worker's Generate
stream, and the call's completion report to the planner.

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
from collections.abc import AsyncGenerator, Callable

import grpc
import structlog

from cache.block_hash import prefix_block_hashes
from gateway.admissions import Admissions
from gateway.call_items import (
    CallFailed,
    CallItem,
    Delta,
    Granted,
    NewProgram,
    engine_refusal,
    planner_failure,
)
from gateway.early_guess import FRESH_S, EarlyGuess
from gateway.early_run import EarlyRun
from gateway.outcome_reports import OutcomeReports
from gateway.prompts import PreparedPrompt
from gateway.tool_output import ToolOutput
from gateway.worker_channels import WorkerChannels
from ostinato.completion_reports import CompletionReporter
from ostinato.deadlines import cut_by_deadline
from ostinato.program_ids import namespace_of
from ostinato.retry import PLANNER_WAIT_S, Outage, with_retry
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc, worker_pb2

log = structlog.get_logger(__name__)


def cache_salt(tenant: str) -> str:
    """The prefix-cache namespace of a tenant (`tenant`: its namespace, with its generation:
    ostinato/program_ids.py): derived here, never taken from the client."""
    return "tenant:" + tenant


# One-call and implicit programs' outcome reports: batched this often, while no call waits at
# the planner (`reporter_for`).
REPORT_LINGER_S = 0.05
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


def _told_client(code: grpc.StatusCode, streamed: bool, attempts: int) -> CallFailed:
    """What a client is told of a call its worker ended with `code` (not the worker's words:
    they name the engine's inner URL, "worker w0: engine http://10.0.0.7:30000 timed out")."""
    if code in _WORKER_FAILED:
        return CallFailed(grpc.StatusCode.UNAVAILABLE, (
            "the worker running the call failed after streaming part of its answer"
            if streamed else f"the call's worker failed on each of its {attempts} attempts")
            + ": retry it")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CallFailed(code, "the call ran past its deadline (or its engine stopped "
                                "answering in time)")
    return CallFailed(code, f"the call's worker ended it ({code.name})")


def _ended(elapsed_s: float, timeout_s: float) -> planner_pb2.CompletionStatus:
    """How a call stopped before its end ended: cut by its deadline, or its caller left."""
    return (planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED if cut_by_deadline(elapsed_s, timeout_s)
            else planner_pb2.COMPLETION_STATUS_CANCELLED)


def planner_hints(call: common_pb2.CallSpec) -> common_pb2.CallHints:
    """The call's hints for the planner; min_tokens is a floor under its expected output."""
    least = call.sampling.min_new_tokens
    if least <= call.hints.expected_output_tokens:
        return call.hints
    return common_pb2.CallHints(expected_output_tokens=least, tags=call.hints.tags)


class MeshRun:
    """Runs calls through the planner and the workers; holds the outcome and completion
    reporters that tell the planner how each ended."""

    def __init__(self, planner: planner_pb2_grpc.PlannerStub, workers: WorkerChannels,
                 admissions: Admissions | None,
                 count_thinking: Callable[[common_pb2.Usage, str], common_pb2.Usage],
                 early_start_max_tokens: int = 0, early_start_fresh_s: float = FRESH_S) -> None:
        """`admissions`: what admits calls (gateway/admissions.py: over one stream), else
        the planner's unary Admit; `count_thinking`: a result's usage with its thinking's
        tokens counted; `early_start_max_tokens`: the longest prompt of a call started on
        a worker ahead of its grant (gateway/early_guess.py; 0: none is), while the last
        grant is at most `early_start_fresh_s` old."""
        self.admissions: Admissions | planner_pb2_grpc.PlannerStub = admissions or planner
        # Since when the planner has answered none of this gateway's calls (ostinato/retry.py):
        # during an outage PLANNER_WAIT_S long, a new call fails after one attempt
        self.planner_outage = Outage()
        self._workers = workers
        self._count_thinking = count_thinking
        self.outcomes = OutcomeReports(planner)
        # The outcomes delivered here are reported from here (the worker's own OK report of
        # a gateway's call is a fallback, sent later: workers/service.py). A one-call or
        # implicit program's, which nobody waits for, batched over REPORT_LINGER_S (a call
        # continuing a conversation waits at the planner for no running parent, so that a
        # report in any gateway's batch holds up no next turn); a program's at once (its
        # EndProgram waits for it).
        self.report_now = CompletionReporter(planner)
        self._report_later = CompletionReporter(planner, linger_s=REPORT_LINGER_S)
        self._planner_waiting = 0  # calls waiting at the planner, as its last grant said
        self._admitting = 0  # this gateway's calls not granted yet
        self.early = EarlyGuess(early_start_max_tokens, early_start_fresh_s)

    def reporter_for(self, report_later: bool) -> CompletionReporter:
        """Where a call's completion report goes: batched over REPORT_LINGER_S when it may
        wait, none of this gateway's calls waits for a grant and the planner's last grant
        left no call waiting; else at once (with any batch lingering), as a waiting call
        needs the slot the report frees (ovh review 2026-12-07: one worker of 4 slots at 100
        one-call programs/s queued calls for seconds, each slot held ~50 ms past its call's
        end)."""
        if report_later and not self._planner_waiting and not self._admitting:
            return self._report_later
        self._report_later.flush()
        return self.report_now

    async def run(self, tenant: str, program_id: str, call: common_pb2.CallSpec,
                  timeout_s: float, start: float, prepared: tuple[PreparedPrompt, int],
                  new_program: NewProgram | None, resend: bool,
                  report_later: bool, whole: bool) -> AsyncGenerator[CallItem, None]:
        """Yields Granted, Deltas, then one CallResult (as CallExecutor.run); `start`: when
        the caller's request began (`timeout_s` counts from it); `prepared`: the prompt
        rendered and tokenized, and its declared shared prefix's length; `report_later`:
        the completion report may wait REPORT_LINGER_S for others to go with it."""
        prompt, shared_tokens = prepared
        salt = cache_salt(namespace_of(program_id, tenant))  # the tenant's, with its generation
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
            structural_tag=prompt.structural_tag, require_reasoning=prompt.require_reasoning,
        )
        failed: planner_pb2.Grant | None = None  # the attempt that failed before this one
        streamed = False  # text handed to our caller (since the last restart)
        early = self._start_early(admit, generate, prompt, timeout_s, start)
        for retry in range(MAX_RETRIES + 1):
            try:
                grant = await self._admitted(admit, failed, timeout_s - (time.monotonic() - start))
            except BaseException:
                if early is not None:  # not granted: the early run stops
                    early.cancel()
                    self.early.settled(early.guess, None)
                raise
            final: worker_pb2.GenerateResult | None = None
            # the text (and thinking) that came with the result (a whole answer's: all of
            # it), sent with what output.finish() adds
            tail = tail_thinking = ""
            confirmed = early is not None and self.early.settled(early.guess, grant)
            if early is not None and not confirmed:  # granted elsewhere: the early run stops
                early.cancel()
            try:
                if retry == 0:
                    yield Granted(grant.worker_id, early="" if early is None
                                  else "confirmed" if confirmed else "missed")
                queued = time.monotonic() - start
                if early is not None and confirmed:
                    output, attempt = early.output, early.items()  # the call's attempt
                else:
                    output = self._output(prompt)
                    attempt = self._generate(generate, grant, output,
                                             max(0.001, timeout_s - queued))
                early = None
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
                    await self.outcomes.failed(admit, grant, (
                        planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED
                        if exc.code == grpc.StatusCode.DEADLINE_EXCEEDED
                        else planner_pb2.COMPLETION_STATUS_FAILED))
                    if exc.code == grpc.StatusCode.INVALID_ARGUMENT:  # the engine refused it
                        raise engine_refusal(exc.message, call) from exc
                    # the worker's words name the mesh's inner addresses: logged, not sent
                    log.warning("worker failed: call failed", program_id=program_id,
                                call_id=call.call_id, worker_id=grant.worker_id,
                                attempt=grant.attempt, streamed=streamed, error=exc.message)
                    raise _told_client(exc.code, streamed, retry + 1) from exc
                log.warning("worker failed mid-call: call re-run", program_id=program_id,
                            call_id=call.call_id, worker_id=grant.worker_id,
                            attempt=grant.attempt, streamed=streamed, error=exc.message)
                if streamed:  # the caller drops what it got: the answer starts over
                    yield Delta("", restart=True)
                    streamed = False
                failed = grant
                continue
            except (GeneratorExit, asyncio.CancelledError):
                if early is not None:  # gone as it was granted: the early run stops
                    early.cancel()
                # Gone before the worker may have started the call: it would never report.
                self.outcomes.gone(admit, grant.attempt, grant.worker_id,
                                   _ended(time.monotonic() - start, timeout_s))
                raise
            break
        assert final is not None
        # cut short: by max tokens, or at one of the caller's stop strings (its worker says
        # which: not an end-of-sequence token, which ends a whole answer); a call left
        # unfinished there is dropped, its markup was the answer (framework review F3)
        cut = final.finish_reason == "length" or final.stop_string
        thinking, rest, content, tool_calls = output.finish(cut=cut)
        usage = self._count_thinking(final.usage, output.reasoning)  # the planner's sums too
        self.reporter_for(report_later).send(planner_pb2.CompletionReport(
            program_id=admit.program_id, call_id=admit.call_id, worker_id=grant.worker_id,
            status=planner_pb2.COMPLETION_STATUS_OK, usage=usage,
            service_s=final.service_s, attempt=grant.attempt, granted=True))
        if tail or rest or tail_thinking or thinking:
            yield Delta(tail + rest, last=True, reasoning=tail_thinking + thinking)
        total = time.monotonic() - start
        yield common_pb2.CallResult(
            call_id=call.call_id, text=content, tool_calls=tool_calls,
            reasoning_content=output.reasoning,
            # (cut by max_tokens it stays "length", calls or not, as SGLang's and OpenAI's)
            finish_reason="tool_calls" if tool_calls and final.finish_reason != "length"
            else final.finish_reason,
            usage=usage, worker_id=final.worker_id, cache_hit=common_pb2.CACHE_HIT_MISS,
            timings=common_pb2.CallTimings(queue_s=queued, engine_s=final.service_s, total_s=total),
            priority=grant.priority, simulated=final.simulated,
            logprobs=output.answer_logprobs(final.logprobs),
        )

    def _start_early(self, admit: planner_pb2.AdmitRequest, generate: worker_pb2.GenerateRequest,
                     prompt: PreparedPrompt, timeout_s: float, start: float,
                     ) -> EarlyRun[Delta | worker_pb2.GenerateResult] | None:
        """The call's generation on the worker the planner is guessed to grant, started now
        and named in its admission (gateway/early_guess.py); None: not started early."""
        # (not while another call of ours is being admitted: its grant takes the worker
        # named next, and a burst of calls would all be guessed onto that one)
        guess = self.early.guess(admit, self._planner_waiting + self._admitting,
                                 time.monotonic())
        if guess is None:
            return None
        admit.started_on, admit.started_priority = guess.worker_id, guess.priority
        output = self._output(prompt)
        return EarlyRun(guess, self._generate(
            generate, guess, output, max(0.001, timeout_s - (time.monotonic() - start))), output)

    @staticmethod
    def _output(prompt: PreparedPrompt) -> ToolOutput:
        return ToolOutput(prompt.parser, prompt.tools, prompt.single_call, prompt.reasoning,
                          prompt.call_ids)

    async def _admitted(self, admit: planner_pb2.AdmitRequest, failed: planner_pb2.Grant | None,
                        budget_s: float) -> planner_pb2.Grant:
        """The planner's grant; after a failed attempt, of the call's next attempt (the
        planner ends the failed one and avoids the workers that failed it)."""
        if failed is not None:
            admit.retry_of_attempt = failed.attempt
            admit.exclude_workers.append(failed.worker_id)
            admit.resend = False  # this attempt's worker did fail
            admit.started_on, admit.started_priority = "", 0
        began = time.monotonic()
        self._admitting += 1
        try:
            # Through a planner restart: the planner recognizes a re-admitted call.
            grant: planner_pb2.Grant = await with_retry(
                self.admissions.Admit, admit, max(0.001, budget_s),
                failing_for_s=PLANNER_WAIT_S, outage=self.planner_outage)
            self._planner_waiting = grant.calls_waiting
            # (a one-call program has no next call: its worker is not kept)
            self.early.granted(grant, "" if admit.end_program_after else admit.program_id,
                               time.monotonic())
            return grant
        except asyncio.CancelledError:
            # a grant may be on its way: it must not hold a worker
            self.outcomes.gone(admit, status=_ended(time.monotonic() - began, budget_s))
            raise
        except grpc.aio.AioRpcError as exc:
            if failed is not None:  # the failed attempt must not hold its worker's slot
                await self.outcomes.failed(admit, failed)
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                # granted just as the deadline passed: freed
                self.outcomes.gone(admit, status=planner_pb2.COMPLETION_STATUS_DEADLINE_EXCEEDED)
            elif exc.code() == grpc.StatusCode.CANCELLED:
                self.outcomes.gone(admit)
            raise planner_failure(exc, admit.tenant) from exc
        finally:
            self._admitting -= 1

    async def _generate(self, template: worker_pb2.GenerateRequest, grant: planner_pb2.Grant,
                        output: ToolOutput, timeout_s: float,
                        ) -> AsyncGenerator[Delta | worker_pb2.GenerateResult, None]:
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
