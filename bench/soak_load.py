"""The soak's callers: `concurrency` programs at a time through the asyncio SDK, each a chain
of calls, until `calls` calls have been made; or, with `one_call`, `concurrency` callers of
bare Calls (no program: each is a one-call program the gateway names, as `bench live`'s
`call` mode and the HTTP API make them). Every call ends with exactly one outcome: "ok",
or the gRPC status it failed with (a client-side exception is recorded as "client:<type>",
never dropped). No call is retried: a failed call stays failed, and its program waits a
little (backoff) before its next call, as an agent would.

Runs in a thread of its own with its own event loop, so that the soak's main thread stays
free to stop and restart services (ostinato/child_process.py: children are tied to the
thread that starts them).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc

import ostinato
from ostinato.sdk_types import call_spec
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc

SYSTEM = {"role": "system", "content": "You are a careful research assistant. Answer briefly."}
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass(frozen=True)
class CallOutcome:
    program_id: str
    call_id: str
    outcome: str  # "ok", a gRPC status name, or "client:<exception type>"
    started: float  # time.monotonic()
    finished: float
    worker_id: str = ""


@dataclass
class ProgramOutcome:
    program_id: str
    calls: int  # calls this program was to make
    start_error: str = ""  # StartProgram's status when it never started (its calls failed)
    summary: ostinato.ProgramSummary | None = None
    end_error: str = ""  # EndProgram's status when no summary came back
    end_started: float = 0.0  # time.monotonic() of the first EndProgram attempt
    end_finished: float = 0.0  # and of its outcome (the summary or the last error)


@dataclass
class Backoff:
    """How long a caller waits after a failed call (doubling to `max_s`); reset by a success."""
    first_s: float
    max_s: float
    current_s: float = 0.0

    def __post_init__(self) -> None:
        self.current_s = self.first_s

    async def after(self, ok: bool) -> None:
        if ok:
            self.current_s = self.first_s
            return
        await asyncio.sleep(self.current_s)
        self.current_s = min(self.max_s, self.current_s * 2)


@dataclass
class Load:
    gateway: str
    calls: int
    concurrency: int
    calls_per_program: int = 10
    max_tokens: int = 8
    rpc_timeout_s: float = 60.0
    program_budget_s: float = 30.0  # StartProgram/EndProgram retried this long on UNAVAILABLE
    first_backoff_s: float = 0.2
    max_backoff_s: float = 2.0
    one_call: bool = False  # bare Calls, each a one-call program (CallOutcome.program_id "")
    outcomes: list[CallOutcome] = field(default_factory=list)
    programs: dict[str, ProgramOutcome] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the load itself crashed (a harness bug)
    _next_program: int = 0

    @property
    def finished(self) -> int:
        """Calls with an outcome so far (read by the main thread: progress)."""
        return len(self.outcomes)

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported, not swallowed: the soak fails on it
            self.errors.append(repr(exc))

    def _plan(self) -> list[int]:
        n, per = self.calls, self.calls_per_program
        return [per] * (n // per) + ([n % per] if n % per else [])

    async def _run(self) -> None:
        if self.one_call:
            await self._run_one_call()
            return
        plan = self._plan()
        async with ostinato.AsyncClient(self.gateway, timeout_s=self.rpc_timeout_s) as client:
            async def slot() -> None:
                while self._next_program < len(plan):
                    index = self._next_program
                    self._next_program += 1
                    await self._program(client, f"soak-{index:05d}", plan[index])

            await asyncio.gather(*(slot() for _ in range(min(self.concurrency, len(plan)))))

    async def _run_one_call(self) -> None:
        channel = grpc.aio.insecure_channel(self.gateway)
        stub = gateway_pb2_grpc.GatewayStub(channel)
        sent = 0

        async def caller() -> None:
            nonlocal sent
            backoff = self._backoff()
            while sent < self.calls:
                call_id = f"call-{sent:06d}"
                sent += 1
                ask = {"role": "user", "content": f"{call_id}: what comes next?"}
                spec = call_spec(call_id=call_id, messages=[SYSTEM, ask],
                                 max_tokens=self.max_tokens, cache="off")
                started, worker, outcome = time.monotonic(), "", "ok"
                try:
                    async for chunk in stub.Call(gateway_pb2.CallRequest(call=spec),
                                                 timeout=self.rpc_timeout_s):
                        if chunk.HasField("result"):
                            worker = chunk.result.worker_id
                except grpc.aio.AioRpcError as exc:
                    outcome = exc.code().name
                except Exception as exc:  # a client-side failure is an outcome too
                    outcome = f"client:{type(exc).__name__}"
                self._note("", call_id, outcome, started, worker)
                await backoff.after(outcome == "ok")

        try:
            await asyncio.gather(*(caller() for _ in range(min(self.concurrency, self.calls))))
        finally:
            await channel.close()

    async def _program(self, client: ostinato.AsyncClient, program_id: str, calls: int) -> None:
        record = self.programs[program_id] = ProgramOutcome(program_id, calls)
        program = await self._retrying(lambda: client.program(program_id=program_id,
                                                              program_class="soak"), record)
        if program is None:
            now = time.monotonic()
            self.outcomes.extend(CallOutcome(program_id, f"c{i}", record.start_error, now, now)
                                 for i in range(calls))
            return
        history: list[dict[str, str]] = []
        backoff = self._backoff()
        for i in range(calls):
            ask = {"role": "user", "content": f"{program_id} step {i}: what comes next?"}
            started = time.monotonic()
            worker, outcome = "", "ok"
            try:
                out = await program.call(messages=[SYSTEM, *history[-4:], ask], call_id=f"c{i}",
                                         max_tokens=self.max_tokens, cache="off")
                history += [ask, {"role": "assistant", "content": out.text}]
                worker = out.worker_id
            except ostinato.OstinatoError as exc:
                outcome = exc.code.name
            except Exception as exc:  # a client-side failure is an outcome too
                outcome = f"client:{type(exc).__name__}"
            self._note(program_id, f"c{i}", outcome, started, worker)
            await backoff.after(outcome == "ok")
        record.end_started = time.monotonic()
        record.summary = await self._retrying(program.end, record, ending=True)
        record.end_finished = time.monotonic()

    def _backoff(self) -> Backoff:
        return Backoff(self.first_backoff_s, self.max_backoff_s)

    def _note(self, program_id: str, call_id: str, outcome: str, started: float,
              worker: str) -> None:
        self.outcomes.append(CallOutcome(program_id, call_id, outcome, started,
                                         time.monotonic(), worker))

    async def _retrying(self, rpc, record: ProgramOutcome, ending: bool = False):  # type: ignore[no-untyped-def]
        """StartProgram / EndProgram (not calls): retried while UNAVAILABLE, within a budget;
        None and the status noted on the program when it never succeeds."""
        deadline = time.monotonic() + self.program_budget_s
        backoff = self._backoff()
        while True:
            try:
                return await rpc()
            except Exception as exc:  # noted on the program, like a call's
                code = exc.code if isinstance(exc, ostinato.OstinatoError) else None
                if code not in RETRYABLE or time.monotonic() + backoff.current_s > deadline:
                    status = code.name if code is not None else f"client:{type(exc).__name__}"
                    if ending:
                        record.end_error = status
                    else:
                        record.start_error = status
                    return None
            await backoff.after(ok=False)
