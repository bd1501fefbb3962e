"""The persisted form of programs and calls: what the planner writes to Redis and reads back.

Pure: no Redis here (planner/store.py does the I/O). Times are written as wall-clock
seconds and read back onto the restarted planner's clock, so waiting times and
deadlines survive a restart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from planner.core.model import CallRecord, CallState, Program


class CorruptRecord(ValueError):
    """A stored record that cannot be read back (skipped, with a log line, at recovery)."""


def program_fields(program: Program, wall_now: float, clock_now: float) -> dict[str, str]:
    created_wall = wall_now - (clock_now - program.created_at)
    return {
        "tenant": program.tenant, "state": "open", "program_class": program.program_class,
        "created_wall": f"{created_wall:.6f}",
        "deadline_s": "" if program.deadline_at is None
        else f"{program.deadline_at - program.created_at:.6f}",
        "reject_when_late": "1" if program.reject_when_late else "0",
        "conversation": "1" if program.conversation else "0",
        "declared": "1" if program.declared else "0",
        "registration": program.registration,
        "closed": "1" if program.closed else "0",
    }


def call_json(call: CallRecord, wall_now: float, clock_now: float) -> str:
    def wall(t: float | None) -> float | None:
        return None if t is None else round(wall_now - (clock_now - t), 6)

    return json.dumps({
        "call_id": call.call_id, "thread_id": call.thread_id, "parents": list(call.parents),
        "state": call.state.value, "worker_id": call.worker_id,
        "worker_address": call.worker_address, "priority": call.priority,
        "prompt_tokens": call.prompt_tokens_used or call.prompt_tokens,
        "max_new_tokens": call.max_new_tokens, "expected_output": call.expected_output,
        "hint": call.hint,
        "completion_tokens": call.completion_tokens, "cached_tokens": call.cached_tokens,
        "reasoning_tokens": call.reasoning_tokens,
        "service_s": round(call.service_s, 6), "critical_path_s": round(call.critical_path_s, 6),
        "score": call.score, "arrival_wall": wall(call.arrival),
        "dispatched_wall": wall(call.dispatched_at), "finished_wall": wall(call.finished_at),
        "attempt": call.attempt, "excluded": sorted(call.excluded),
        # (started early on a worker, not yet granted: that worker's reports count for
        # nothing until then, after a restart too)
        **({"started_on": call.started_on, "started_priority": call.started_priority}
           if call.started_on else {}),
        **({"ran_early": True} if call.ran_early else {}),  # (charged from its admission)
    })


def program_from_fields(program_id: str, meta: Mapping[str, str], calls: Mapping[str, str],
                        wall_now: float, clock_now: float) -> Program:
    """Rebuilds a program and its calls, mapping wall times onto the current clock."""

    def clock(wall: float | None) -> float | None:
        return None if wall is None else clock_now - (wall_now - wall)

    try:
        created = clock(float(meta["created_wall"]))
        assert created is not None
        deadline = meta.get("deadline_s", "")
        program = Program(
            program_id=program_id, tenant=meta["tenant"], created_at=created,
            deadline_at=created + float(deadline) if deadline else None,
            reject_when_late=meta.get("reject_when_late") == "1",
            conversation=meta.get("conversation") == "1",
            declared=meta.get("declared") == "1",
            program_class=meta.get("program_class", ""), last_active=clock_now,
            registration=meta.get("registration", ""), closed=meta.get("closed") == "1",
        )
        for call_id, raw in calls.items():
            d = json.loads(raw)
            arrival = clock(d.get("arrival_wall"))
            call = CallRecord(
                program_id=program_id, call_id=call_id, tenant=program.tenant,
                thread_id=d.get("thread_id", "main"), parents=tuple(d.get("parents", ())),
                prompt_tokens=int(d.get("prompt_tokens", 0)),
                max_new_tokens=int(d.get("max_new_tokens", 0)),
                arrival=created if arrival is None else arrival,
                state=CallState(d["state"]), dispatched_at=clock(d.get("dispatched_wall")),
                finished_at=clock(d.get("finished_wall")), worker_id=d.get("worker_id", ""),
                worker_address=d.get("worker_address", ""), priority=int(d.get("priority", 0)),
                score=float(d.get("score", 0.0)),
                critical_path_s=float(d.get("critical_path_s", 0.0)),
                expected_output=int(d.get("expected_output", 0)),
                hint=int(d.get("hint", 0)),
                service_s=float(d.get("service_s", 0.0)),
                completion_tokens=int(d.get("completion_tokens", 0)),
                cached_tokens=int(d.get("cached_tokens", 0)),
                reasoning_tokens=int(d.get("reasoning_tokens", 0)),
                attempt=int(d.get("attempt", 1)),
                excluded=frozenset(d.get("excluded", ())),
                started_on=str(d.get("started_on", "")),
                started_priority=int(d.get("started_priority", 0)),
                ran_early=bool(d.get("ran_early", False)),
            )
            call.prompt_tokens_used = call.prompt_tokens if call.state.finished else 0
            program.calls[call_id] = call
    except (KeyError, ValueError, TypeError, AssertionError) as exc:
        raise CorruptRecord(f"program {program_id!r}: {exc!r}") from exc
    return program
