"""A worker's completion reports to the planner, and the calls it knows.

Every call's end (ok, failed, cancelled) is reported: the planner frees the worker's
admission budget and accounts the program's attained service. A call answered to the
gateway is reported by the gateway too, so this worker's OK report of it is a fallback (the
gateway died first) that leaves OK_REPORT_DELAY_S later, batched. Reports are retried
through a planner restart, and the recent ones are kept: a restarted planner (a new
`planner_instance` in its WorkerAck) gets them again (`replay`), since the planner before
may have acknowledged a report and died before saving it. The calls it knows (`known`:
running, ended lately, or being reported) go with each heartbeat, so that the planner can
end the grants it made here that never started.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict

from ostinato.completion_reports import CompletionReporter
from ostinato.v1 import common_pb2, planner_pb2, planner_pb2_grpc, worker_pb2
from workers.engine_output import EngineOutput

CallAttempt = tuple[str, str, int]  # (program_id, call_id, attempt)
OK_REPORT_DELAY_S = 1.0  # a call the gateway reports too: this worker's report, batched


class CallReports:
    def __init__(self, worker_id: str, planner: planner_pb2_grpc.PlannerStub) -> None:
        self._worker_id = worker_id
        # through a planner restart: a report frees its call's admission budget. The soak saw
        # a report to a just-restarted planner end CANCELLED, which left its call running
        # there for good: reports are idempotent, so those are retried too.
        self._reporter = CompletionReporter(planner, on_done=self._sent)
        # A call answered to the gateway (attempt set): the gateway reports the outcome it
        # delivered, so this worker's OK report is the fallback (the gateway died first)
        # and leaves later, in batches: one planner RPC per OK_REPORT_DELAY_S, not per call.
        self._fallback = CompletionReporter(planner, on_done=self._sent,
                                            linger_s=OK_REPORT_DELAY_S)
        # Completion reports sent lately, replayed to a restarted planner: key -> (when, the
        # call, the report serialized: 49 B against ~1.1 KiB of RSS for a message object)
        self._recent: OrderedDict[str, tuple[float, CallAttempt, bytes]] = OrderedDict()
        self.keep_reports = 4096
        self.keep_reports_s = 600.0
        self.live: Counter[CallAttempt] = Counter()  # calls streaming from the engine now
        self._sending: Counter[CallAttempt] = Counter()  # reports not yet through
        self.known_recent_s = 60.0  # calls ended this recently are still listed as known

    def report(self, req: worker_pb2.GenerateRequest, status: planner_pb2.CompletionStatus,
               out: EngineOutput | None, service_s: float) -> None:
        """Sends the call's completion report, not awaited, and keeps it for a replay."""
        usage = common_pb2.Usage()
        if out is not None:
            usage = common_pb2.Usage(prompt_tokens=out.prompt_tokens,
                                     completion_tokens=out.completion_tokens,
                                     cached_tokens=out.cached_tokens)
        report = planner_pb2.CompletionReport(
            program_id=req.program_id, call_id=req.call_id, worker_id=self._worker_id,
            status=status, usage=usage, service_s=service_s, attempt=req.attempt,
        )
        key = f"{req.program_id}/{req.call_id}/{req.attempt}"
        now = time.monotonic()
        self._recent[key] = (now, (req.program_id, req.call_id, req.attempt),
                             report.SerializeToString())
        self._recent.move_to_end(key)
        self._forget(now - self.keep_reports_s)
        self._send(report, fallback=status == planner_pb2.COMPLETION_STATUS_OK
                   and req.attempt > 0)

    def _send(self, report: planner_pb2.CompletionReport, fallback: bool = False) -> None:
        """Sends a report, batched and not awaited (`fallback`: after OK_REPORT_DELAY_S); its
        call is known (`known`) until it is through."""
        self._sending[(report.program_id, report.call_id, report.attempt)] += 1
        (self._fallback if fallback else self._reporter).send(report)

    def _sent(self, report: planner_pb2.CompletionReport) -> None:
        ids = (report.program_id, report.call_id, report.attempt)
        self._sending[ids] -= 1
        if self._sending[ids] <= 0:
            del self._sending[ids]

    def known(self) -> set[CallAttempt]:
        """The calls this worker knows, for the planner's heartbeat reconciliation: running
        now, ended within `known_recent_s`, or whose completion report is being sent."""
        known = set(self.live) | set(self._sending)
        horizon = time.monotonic() - self.known_recent_s
        for when, ids, _ in reversed(self._recent.values()):
            if when < horizon:
                break
            known.add(ids)
        return known

    def _forget(self, horizon: float) -> None:
        """Drops kept reports older than `horizon`, and the oldest past `keep_reports`."""
        while self._recent and (len(self._recent) > self.keep_reports
                                or next(iter(self._recent.values()))[0] < horizon):
            self._recent.popitem(last=False)

    def replay(self) -> int:
        """Sends the reports of the last `keep_reports_s` again, not awaited (to a restarted
        planner, which ignores those it knows); how many. Reports without an attempt
        number (a caller other than the gateway) are not replayed: they could end a later
        attempt of the same call."""
        self._forget(time.monotonic() - self.keep_reports_s)
        reports = [planner_pb2.CompletionReport.FromString(data)
                   for _, (_, _, attempt), data in self._recent.values() if attempt]
        for report in reports:
            self._send(report)
        return len(reports)

    async def drain(self, timeout_s: float) -> None:
        await self._reporter.drain(timeout_s)
        await self._fallback.drain(timeout_s)
