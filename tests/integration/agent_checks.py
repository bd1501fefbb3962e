"""The agent tests' setup (test_agent_frameworks.py, test_openai_sdk_agents.py: the model,
the question, a tenant per test and its key) and what they check after each run: the
agent's one tool, recording its calls, and the planner's program records in Redis
(cache/keys.py), read back as one chain of calls."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Annotated, Any

import jsonschema
import redis
from pydantic import Field

from cache import keys

MODEL = "sim/llama-3.1-8b"
MAX_TURNS = 6  # an agent loop that has not answered in text by then is a failure
QUESTION = "What will the weather be like in Lisbon this week?"
# each test runs under its own tenant (its own API key), so the tenant's programs are the test's
TENANTS = ("sdk-tools", "sdk-stream", "sdk-schema", "langchain", "agents-sdk", "langgraph", "models",
           "lc-responses", "lc-chained", "lc-stream", "lc-structured", "agents-session",
           "agents-conv", "agents-typed", "agents-typed-auto")
API_KEYS = {f"key-{tenant}": tenant for tenant in TENANTS}


def key(tenant: str) -> str:
    assert tenant in TENANTS
    return f"key-{tenant}"


FORECAST_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city"},
        "days": {"type": "integer", "minimum": 1, "maximum": 7, "description": "How many days"},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
# A framework's tool declares the same parameters from its signature:
City = Annotated[str, Field(description="The city")]
Days = Annotated[int, Field(ge=1, le=7, description="How many days")]


class Forecasts:
    """The agents' one tool, as plain Python: records each call and answers in words."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, city: str, days: int) -> str:
        self.calls.append((city, days))  # checked after the run: frameworks catch tool errors
        return f"{city}: sunny, 24 degrees, for the next {days} day(s)."

    def check_called(self) -> None:
        """Called at least once, each time with a non-empty city and 1 to 7 days (an int)."""
        assert self.calls, "the agent never called its tool"
        for city, days in self.calls:
            assert type(city) is str and city.strip(), f"city {city!r} is not a non-empty string"
            assert type(days) is int, f"days {days!r} is not an int"
            jsonschema.validate({"city": city, "days": days}, FORECAST_PARAMETERS)


@dataclass(frozen=True)
class CallRecord:
    """The planner's record of one call (planner/records.py call_json), as much as we check."""

    call_id: str
    thread_id: str
    parents: tuple[str, ...]
    state: str
    arrival_wall: float


def _program_records(store: redis.Redis, tenant: str) -> dict[str, list[CallRecord]]:
    out: dict[str, list[CallRecord]] = {}
    for program_id in store.zrange(keys.tenant_programs(tenant), 0, -1):
        raw: dict[str, str] = store.hgetall(keys.program_calls(program_id))  # type: ignore[assignment]
        records = [json.loads(v) for v in raw.values()]
        out[program_id] = [CallRecord(r["call_id"], r["thread_id"], tuple(r["parents"]), r["state"],
                                      float(r["arrival_wall"] or 0.0)) for r in records]
    return out


def assert_one_chained_program(store: redis.Redis, tenant: str, llm_calls: int,
                               timeout_s: float = 10.0) -> list[str]:
    """The tenant has exactly one program, of `llm_calls` finished calls that form a chain
    (the first without parents, each next one a child of the one before, in arrival order).
    Returns the call ids in order. The planner persists off the request path: wait for it."""
    deadline = time.monotonic() + timeout_s
    while True:
        programs = _program_records(store, tenant)
        settled = sum(len(calls) for calls in programs.values()) >= llm_calls and all(
            c.state == "done" for calls in programs.values() for c in calls)
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(programs) == 1, f"{tenant}: calls landed in {len(programs)} programs: {programs}"
    ((program_id, calls),) = programs.items()
    assert len(calls) == llm_calls, f"program {program_id}: {len(calls)} calls, not {llm_calls}: {calls}"
    assert all(c.state == "done" for c in calls), calls
    by_id = {c.call_id: c for c in calls}
    roots = [c for c in calls if not c.parents]
    assert len(roots) == 1, f"expected one root call: {calls}"
    chain = [roots[0].call_id]
    while len(chain) < len(calls):
        kids = [c.call_id for c in calls if c.parents == (chain[-1],)]
        assert len(kids) == 1, f"call {chain[-1]} has children {kids}, not one: {calls}"
        chain.append(kids[0])
    assert chain == sorted(chain, key=lambda i: by_id[i].arrival_wall), "the chain is not in arrival order"
    assert len({c.thread_id for c in calls}) == 1, f"a chain runs on one thread: {calls}"
    return chain
