"""The soak's verdicts, from what it recorded (pure: no processes, no I/O).

`reconcile`: each call's outcome against the planner's program summaries and call records,
and the engines' completed requests; failures attributed to the fault in progress.
`memory_report`: each service's RSS from after its warm-up to the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from bench.soak_load import CallOutcome, ProgramOutcome

FAULT_GRACE_S = 5.0  # a failure this soon after a service is back still counts as its fault
LATE_BOUND_KIB = 256.0  # flat: RSS grew at most this per 1,000 calls over the late window


class _Event(Protocol):
    target: str
    down_at: float
    back_at: float


def attribute(outcome: CallOutcome, events: Sequence[_Event]) -> tuple[str, str]:
    """The latest fault a failed call overlapped (down until back + grace) and when it
    started relative to it: "in flight" at the kill, "down" (during the outage), "after" the
    service was back; ("none", "") for a call that overlapped no fault."""
    for e in reversed(events):
        if outcome.started <= e.back_at + FAULT_GRACE_S and outcome.finished >= e.down_at:
            phase = ("in flight" if outcome.started <= e.down_at else
                     "down" if outcome.started <= e.back_at else "after")
            return e.target, phase
    return "none", ""


def reconcile(outcomes: Sequence[CallOutcome], programs: Mapping[str, ProgramOutcome],
              records: Mapping[str, Mapping[str, str]], events: Sequence[_Event],
              engine: Mapping[str, float], calls: int, t0: float = 0.0) -> dict[str, Any]:
    """`t0`: the load's start (time.monotonic()), for the times in the lists."""
    by_outcome = Counter(o.outcome for o in outcomes)
    by_fault: dict[str, Counter[str]] = {}
    by_phase: dict[str, Counter[str]] = {}
    for o in outcomes:
        if o.outcome != "ok":
            target, phase = attribute(o, events)
            by_fault.setdefault(target, Counter())[o.outcome] += 1
            if phase:
                by_phase.setdefault(target, Counter())[phase] += 1
    # only a call in flight when a service was killed can have finished on an engine
    # without its answer reaching the caller
    in_flight = sum(c["in flight"] for c in by_phase.values())
    twice = sum(n - 1 for n in Counter((o.program_id, o.call_id) for o in outcomes).values())
    records_report, lost = _records(outcomes, records, events, t0)
    summaries = _summaries(outcomes, programs, lost)

    client_ok = by_outcome["ok"]
    completed = int(engine.get("requests", 0))
    engine_excess = completed - client_ok
    checks = {
        "every_call_accounted": len(outcomes) == calls and twice == 0
        and not any(k.startswith("client:") for k in by_outcome),
        # a call completed twice would show as a program's summary counting more completed
        # calls than were answered, beyond the answers lost on their way back
        "no_duplicates": twice == 0 and summaries["completed_over_client_ok_unexplained"] == 0,
        "records_agree": records_report["ok_not_done"] == 0
        and summaries["completed_under_client_ok"] == 0,
    }
    return {
        "calls": {"total": calls, "with_outcome": len(outcomes), "ok": client_ok,
                  "failed": len(outcomes) - client_ok, "by_outcome": dict(by_outcome.most_common())},
        "failures_by_fault": {k: dict(v.most_common()) for k, v in sorted(by_fault.items())},
        "failures_by_phase": {k: dict(v) for k, v in sorted(by_phase.items())},
        "programs": {
            "total": len(programs),
            "start_failed": dict(Counter(p.start_error for p in programs.values() if p.start_error)),
            "end_failed": dict(Counter(p.end_error for p in programs.values() if p.end_error)),
            "end_failed_programs": sorted(p.program_id for p in programs.values() if p.end_error),
            # [program, status, EndProgram sent, its outcome (s from t0)]: against the faults
            "end_failed_times": sorted([p.program_id, p.end_error, round(p.end_started - t0, 3),
                                        round(p.end_finished - t0, 3)]
                                       for p in programs.values() if p.end_error),
        },
        "duplicates": {
            "outcomes_per_call_over_one": twice,
            "engine_completed": completed, "engine_aborted": int(engine.get("aborted_requests", 0)),
            "client_ok": client_ok,
            # engine completions beyond the answers callers got: answers lost with a killed
            # service, calls re-run after their worker failed, or cut off by their deadline
            "engine_completed_over_client_ok": engine_excess,
            "failed_in_flight_at_a_kill": in_flight,
        },
        "summaries": summaries,
        "records": records_report,
        "checks": checks,
    }


def _records(outcomes: Sequence[CallOutcome], records: Mapping[str, Mapping[str, str]],
             events: Sequence[_Event], t0: float) -> tuple[dict[str, Any], Counter[str]]:
    """Each call's outcome against the planner's record of it: answered but not "done"
    there (by state, and by the fault the call overlapped), failed here but "done" there
    (an answer lost on its way back); and those lost answers per program."""
    ok_not_done: list[list[Any]] = []
    failed_but_done: list[list[Any]] = []
    lost: Counter[str] = Counter()
    for o in outcomes:
        state = records.get(o.program_id, {}).get(o.call_id, "") or "no record"
        row = [o.program_id, o.call_id, o.outcome, state, attribute(o, events)[0],
               round(o.started - t0, 3), round(o.finished - t0, 3)]
        if o.outcome == "ok" and state != "done":
            ok_not_done.append(row)
        elif o.outcome != "ok" and state == "done":
            failed_but_done.append(row)
            lost[o.program_id] += 1
    return {
        "ok_not_done": len(ok_not_done),
        "ok_not_done_by_state": dict(Counter(r[3] for r in ok_not_done)),
        "ok_not_done_by_fault": dict(Counter(r[4] for r in ok_not_done)),
        "failed_but_done": len(failed_but_done),
        "failed_but_done_by_fault": dict(Counter(r[4] for r in failed_but_done)),
        # [program, call, outcome, recorded state, fault, started, finished (s from t0)]
        "mismatched_calls": ok_not_done + failed_but_done,
    }, lost


def _summaries(outcomes: Sequence[CallOutcome], programs: Mapping[str, ProgramOutcome],
               lost: Mapping[str, int]) -> dict[str, int]:
    """The planner's EndProgram summaries against the calls answered, per program. More
    completed there than answered here is explained by answers lost on their way back;
    anything beyond that would be a call completed twice."""
    ok = Counter(o.program_id for o in outcomes if o.outcome == "ok")
    over = under = unexplained = 0
    for p in programs.values():
        if p.summary is None:
            continue
        diff = p.summary.calls_completed - ok[p.program_id]
        over += max(0, diff)
        under += max(0, -diff)
        unexplained += max(0, diff - lost.get(p.program_id, 0))
    return {"programs": sum(p.summary is not None for p in programs.values()),
            "completed_over_client_ok": over, "completed_over_client_ok_unexplained": unexplained,
            "completed_under_client_ok": under}


def memory_report(samples: Iterable[Mapping[str, Any]], calls: int, warmup: float,
                  bound_mib: float, late_from: float = 0.5,
                  late_bound_kib: float = LATE_BOUND_KIB) -> dict[str, Any]:
    """Per service, its latest process, two windows of its RSS:
    - from the first sample `warmup` of the calls after that process was first seen, to the
      last: growth in MiB against `bound_mib` (the first rule, kept as a figure: it also
      counts caches filling up to their bound, so it depends on the run's length);
    - the late window, from `late_from` of the calls (or the warm-up, if later) to the end:
      growth in KiB per 1,000 calls against `late_bound_kib`, the verdict ("flat"). In a run
      long enough for bounded caches to fill, what still grows there grows with the calls.
      Where samples carry `data_kib` (Redis: the records it is asked to keep, which grow
      with the programs by design), the verdict is on RSS beyond that data; both reported.
    A restarted service is measured from its restart; one restarted too late for a window
    is reported without a verdict."""
    by_service: dict[str, list[Mapping[str, Any]]] = {}
    for s in samples:
        by_service.setdefault(str(s["service"]), []).append(s)
    services: dict[str, Any] = {}
    for name, series in sorted(by_service.items()):
        pid = series[-1]["pid"]
        mine = [s for s in series if s["pid"] == pid]
        start = mine[0]["progress"]
        end = mine[-1]
        row: dict[str, Any] = {"pid": pid, "processes": len({s["pid"] for s in series}),
                               "samples": len(mine), "end_mib": round(end["rss_kib"] / 1024, 1)}
        growth = _window(mine, start + warmup, end, calls)
        if growth is None:
            row.update(window_calls=0, warmup_flat=None)
        else:
            row.update(base_mib=round(growth[0] / 1024, 1),
                       growth_mib=round(growth[1] / 1024, 1), window_calls=growth[2],
                       kib_per_1000_calls=round(growth[1] * 1000 / max(growth[2], 1), 1),
                       warmup_flat=growth[1] / 1024 <= bound_mib)
        late = _window(mine, max(late_from, start + warmup), end, calls)
        if late is None:
            row.update(late_calls=0, flat=None)
        else:
            rate = late[1] * 1000 / max(late[2], 1)
            row.update(late_base_mib=round(late[0] / 1024, 1),
                       late_growth_mib=round(late[1] / 1024, 1), late_calls=late[2],
                       late_kib_per_1000_calls=round(rate, 1), flat=rate <= late_bound_kib)
            data = _window(mine, max(late_from, start + warmup), end, calls, "data_kib")
            if data is not None:  # judged on what it holds beyond the records kept
                beyond = (late[1] - data[1]) * 1000 / max(late[2], 1)
                row.update(late_data_kib_per_1000_calls=round(data[1] * 1000 / max(late[2], 1), 1),
                           late_beyond_data_kib_per_1000_calls=round(beyond, 1),
                           flat=beyond <= late_bound_kib)
        services[name] = row
    return {"bound_mib": bound_mib, "warmup": warmup, "late_from": late_from,
            "late_bound_kib": late_bound_kib, "services": services,
            "flat": all(r["flat"] is not False for r in services.values()),
            "warmup_flat": all(r["warmup_flat"] is not False for r in services.values())}


def _window(mine: Sequence[Mapping[str, Any]], from_progress: float, end: Mapping[str, Any],
            calls: int, key: str = "rss_kib") -> tuple[float, float, int] | None:
    """(base KiB, growth KiB, calls) from the first sample at `from_progress` to `end`."""
    base = next((s for s in mine if s["progress"] >= from_progress), None)
    if base is None or base is end or key not in base or key not in end:
        return None
    window = round((end["progress"] - base["progress"]) * calls)
    return base[key], end[key] - base[key], window
