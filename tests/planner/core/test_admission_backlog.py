"""Program admission's backlog bound (planner/core/admission.py): a tenant over its share
starts a program only while its calls waiting to run are fewer than BACKLOG_RATIO x its
running calls (at least 1). Table-driven, pure, and in the planner."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ostinato.clock import ManualClock
from planner.core import CallRecord, PlannerCore
from planner.core.admission import BACKLOG_RATIO, ProgramAdmission
from planner.core.selection import parse_policy

WEIGHTS = {"a": 1.0, "b": 1.0}


def call(program: str, tenant: str, prompt: int, cid: str = "c") -> CallRecord:
    return CallRecord(program, cid, tenant, "main", (), prompt, 16, 0.0)


def test_the_default_ratio() -> None:
    assert BACKLOG_RATIO == 0.5


@pytest.mark.parametrize(
    ("held", "tenant", "backlog", "ratio", "starts"),
    [
        # capacity 1000, a and b 1:1 (500 each); `tenant` starts a 100-token program, a's
        # backlog is (waiting, running)
        # a within its share (300 + 100 <= 500): the backlog does not matter
        ({"a": 300, "b": 100}, "a", (50, 0), 0.5, True),
        # a over its share (700 + 100 > 500), room in the pool (900 <= 1000):
        # starts while waiting < max(1, 0.5 x running)
        ({"a": 700, "b": 100}, "a", (0, 0), 0.5, True),
        ({"a": 700, "b": 100}, "a", (1, 0), 0.5, False),  # at least 1 ...
        ({"a": 700, "b": 100}, "a", (1, 1), 0.5, False),  # ... 0.5 x 1 running is below 1
        ({"a": 700, "b": 100}, "a", (9, 20), 0.5, True),
        ({"a": 700, "b": 100}, "a", (10, 20), 0.5, False),
        ({"a": 700, "b": 100}, "a", (19, 20), 1.0, True),
        ({"a": 700, "b": 100}, "a", (20, 20), 1.0, False),
        # ratio 0: no bound, the pool alone decides
        ({"a": 700, "b": 100}, "a", (500, 1), 0.0, True),
        ({"a": 850, "b": 100}, "a", (0, 20), 0.0, False),
        # over its share with no room in the pool: waits however short its backlog
        ({"a": 850, "b": 100}, "a", (0, 20), 0.5, False),
        # a alone: its share is the whole pool, the backlog does not matter
        ({"a": 700}, "a", (50, 1), 0.5, True),
        # nothing started: always starts
        ({"b": 100}, "a", (50, 0), 0.5, True),
        # b within its share: a's backlog does not hold b back
        ({"a": 700, "b": 100}, "b", (0, 0), 0.5, True),
    ],
)
def test_an_over_share_tenant_starts_while_its_backlog_is_short(
        held: dict[str, int], tenant: str, backlog: tuple[int, int], ratio: float,
        starts: bool) -> None:
    adm = ProgramAdmission(WEIGHTS.__getitem__, capacity=1000, backlog_ratio=ratio,
                           backlog=lambda t: backlog if t == "a" else (50, 0))
    for t, tokens in held.items():
        adm.restored(f"{t}-old", t, tokens)
    new = call("new", tenant, 100)
    assert adm.admit(new) is False
    assert (adm.release() == [new]) is starts


def test_the_programs_it_starts_count_in_its_backlog() -> None:
    """Released one program at a time: each one's calls lengthen the backlog."""
    adm = ProgramAdmission(WEIGHTS.__getitem__, capacity=10_000,
                           backlog=lambda t: (0, 4))  # 4 running: up to 2 waiting
    adm.restored("old", "a", 6000)
    adm.restored("other", "b", 100)
    calls = [call(f"p{i}", "a", 100) for i in range(4)]
    for c in calls:
        assert not adm.admit(c)
    assert adm.release() == calls[:2] and adm.waiting_programs("a") == 2


@pytest.mark.parametrize("view", [None, lambda t: (0, 4)])
def test_without_a_backlog_view_or_at_ratio_0_nothing_is_bounded(
        view: Callable[[str], tuple[int, int]] | None) -> None:
    adm = ProgramAdmission(WEIGHTS.__getitem__, capacity=10_000, backlog=view,
                           backlog_ratio=0.0 if view else 0.5)
    adm.restored("old", "a", 6000)
    adm.restored("other", "b", 100)
    calls = [call(f"p{i}", "a", 100) for i in range(4)]
    for c in calls:
        assert not adm.admit(c)
    assert adm.release() == calls


# ---- in the planner -------------------------------------------------------------------


def test_in_the_planner_a_flood_starts_programs_as_its_queue_drains() -> None:
    """noisy over its share (two tenants) with room in the pool: it starts programs while
    its queued calls are fewer than half its running ones."""
    core = PlannerCore(ManualClock(), *parse_policy("fcfs+round_robin"),
                       kv_tokens_per_worker=100_000, program_kv_fraction=1.0,
                       isolation_fraction=1.0)
    core.upsert_worker("w0", "a0", 4)
    core.register_program("q0", "quiet")
    core.submit("q0", "quiet", "c", prompt_tokens=100)
    core.dispatch()
    core.register_program("n0", "noisy")
    core.submit("n0", "noisy", "c", prompt_tokens=60_000)  # over noisy's 50,000
    for i in range(1, 8):
        core.register_program(f"n{i}", "noisy")
        core.submit(f"n{i}", "noisy", "c", prompt_tokens=100)
    # n0 starts (noisy had nothing started); every later program over noisy's share waits
    # until its queue is shorter than max(1, half its running calls): one per dispatch here
    for expected in ("n0", "n1", "n2"):
        assert [g.program_id for g in core.dispatch()] == [expected]
    assert core.waiting_to_start("noisy") == (5, 5) and core.dispatch() == []  # w0 is full
    core.complete("n1", "c", prompt_tokens=100, completion_tokens=10)
    assert [g.program_id for g in core.dispatch()] == ["n3"]
