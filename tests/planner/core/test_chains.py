"""ATLAS's critical paths (planner/core/chains.py): a call continues its parents, or its
thread's previous call when it names none; a continued call that still runs adds its
service once it ends. Pure, clock-injected, table-driven."""

from __future__ import annotations

import pytest

from tests.planner.test_policies import core_with


@pytest.mark.parametrize("policy", ["plas", "atlas"])
def test_a_single_threaded_program_naming_no_parents_is_charged_its_chain(policy: str) -> None:
    """An interactive program (a ReAct loop through the SDK) sends its calls one after
    another on one thread, naming no parents: ATLAS equals PLAS there (Autellix), the
    second call charged the first's 3 s (a review found ATLAS scored each 0)."""
    core, clock = core_with(f"{policy}+least_load")
    core.register_program("p", "t")
    core.submit("p", "t", "c1")
    core.dispatch()
    clock.advance(3.0)
    core.complete("p", "c1", service_s=3.0)
    assert core.submit("p", "t", "c2").score == pytest.approx(3.0)


@pytest.mark.parametrize(("thread", "parents", "score"), [
    ("main", (), 3.0),  # continues main's c1
    ("b", (), 0.0),  # a new thread (a parallel branch): not charged for main's
    ("b", ("c1",), 3.0),  # named parents win
])
def test_atlas_continues_the_thread_only_where_no_parent_is_named(
        thread: str, parents: tuple[str, ...], score: float) -> None:
    core, clock = core_with("atlas+least_load")
    core.register_program("p", "t")
    core.submit("p", "t", "c1")
    core.dispatch()
    clock.advance(3.0)
    core.complete("p", "c1", service_s=3.0)
    assert core.submit("p", "t", "c2", thread_id=thread, parents=parents).score == score


@pytest.mark.parametrize("conversation", [True, False])
def test_a_continued_call_still_running_adds_its_service_when_it_ends(
        conversation: bool) -> None:
    """A conversation's turn does not wait for a parent still running (its report may be in
    a gateway's batch), nor a call for its thread's previous one: that call's service,
    reported after, still counts on the chain (a review found each turn started it again)."""
    core, clock = core_with("atlas+least_load", budget=4)
    core.register_program("c", "t", conversation=conversation)
    core.submit("c", "t", "turn1")
    core.dispatch()
    clock.advance(5.0)
    parents = ["turn1"] if conversation else []
    core.submit("c", "t", "turn2", parents=parents)  # turn1's report still to come
    core.complete("c", "turn1", service_s=5.0)
    core.dispatch()
    clock.advance(1.0)
    core.complete("c", "turn2", service_s=1.0)
    turn3 = core.submit("c", "t", "turn3", parents=["turn2"] if conversation else [])
    assert turn3.score == pytest.approx(6.0)


def test_a_retry_keeps_the_chain_of_its_first_attempt() -> None:
    core, clock = core_with("atlas+least_load", budget=4)
    core.register_program("p", "t")
    core.submit("p", "t", "c1")
    core.dispatch()
    clock.advance(3.0)
    core.complete("p", "c1", service_s=3.0)
    core.submit("p", "t", "c2")
    core.dispatch()
    core.submit("p", "t", "c3", thread_id="main")  # the thread's tail is now c3
    retried = core.submit("p", "t", "c2", retry_of_attempt=1)
    assert (retried.attempt, retried.score) == (2, pytest.approx(3.0))
