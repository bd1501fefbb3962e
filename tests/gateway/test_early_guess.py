"""Early start's guess (gateway/early_guess.py): which calls start ahead of their grant, on
which worker (a placed program's: its last grant's; a new program's: the one the planner's
last grant named next), and what a grant settles. Pure, table-driven."""

from __future__ import annotations

import pytest

from gateway import early_guess
from gateway.early_guess import EARLY_PRIORITY, FIRST_ATTEMPT, EarlyGuess
from ostinato.v1 import common_pb2, planner_pb2


def _grant(worker_id: str, attempt: int = 1, priority: int = 0,
           next_worker: str = "w1") -> planner_pb2.Grant:
    return planner_pb2.Grant(call_id="c", worker_id=worker_id, worker_address=f"{worker_id}:1",
                             attempt=attempt, priority=priority, next_worker_id=next_worker,
                             next_worker_address=f"{next_worker}:1" if next_worker else "")


def _admit(**fields: object) -> planner_pb2.AdmitRequest:
    """A one-call program's call, unless `fields` say otherwise."""
    fields.setdefault("prompt_tokens", 100)
    fields.setdefault("program_id", "one")
    if fields["program_id"] == "one":
        fields.setdefault("end_program_after", True)
    return planner_pb2.AdmitRequest(call_id="c2", **fields)  # type: ignore[arg-type]


def _guess(*grants: tuple[planner_pb2.Grant, str]) -> EarlyGuess:
    guess = EarlyGuess(max_prompt_tokens=512)
    for grant, program_id in grants or ((_grant("w0"), ""),):
        guess.granted(grant, program_id, 0.0)
    return guess


@pytest.mark.parametrize(("admit", "waiting", "started"), [
    (_admit(), 0, True),
    (_admit(prompt_tokens=512), 0, True),
    (_admit(prompt_tokens=513), 0, False),  # a long prompt: a wrong guess wastes its prefill
    (_admit(), 1, False),  # calls wait at the planner: it would jump their queue
    (_admit(parent_call_ids=["a"]), 0, False),  # goes where its context is
    (_admit(resend=True), 0, False),  # the planner's next attempt, not the first
    (_admit(retry_of_attempt=1), 0, False),
    (_admit(served_from_cache=True), 0, False),
    # a new conversation's first call registers its program: a new program
    (_admit(program_id="conv", register_program=common_pb2.ProgramOptions()), 0, True),
    (_admit(program_id="elsewhere"), 0, False),  # a program another gateway placed
])
def test_which_calls_start_early(admit: planner_pb2.AdmitRequest, waiting: int,
                                 started: bool) -> None:
    assert (_guess().guess(admit, waiting, 0.5) is not None) is started


@pytest.mark.parametrize(("grants", "expected"), [
    ((), None),  # no grant yet: nothing known
    (((_grant("w0", next_worker="w1"), ""),), "w1"),
    (((_grant("w0", next_worker="w1"), ""), (_grant("w1", next_worker="w0"), "")), "w0"),
    (((_grant("w0", next_worker=""), ""),), None),  # every worker full as of the last grant
    (((_grant("w0", next_worker="w1"), ""), (_grant("", next_worker=""), "")), "w1"),
])
def test_a_new_program_goes_where_the_last_grant_named_next(
        grants: tuple[tuple[planner_pb2.Grant, str], ...], expected: str | None) -> None:
    guess = EarlyGuess(max_prompt_tokens=512)
    for grant, program_id in grants:
        guess.granted(grant, program_id, 0.0)
    got = guess.guess(_admit(), 0, 0.5)
    if expected is None:
        assert got is None
        return
    assert got is not None
    assert (got.call_id, got.worker_id, got.worker_address, got.attempt) == (
        "c2", expected, f"{expected}:1", FIRST_ATTEMPT)


def test_a_placed_programs_call_goes_to_its_last_grants_worker() -> None:
    guess = _guess((_grant("w0", next_worker="w1"), "p"), (_grant("w2", next_worker="w1"), "q"))
    assert guess.guess(_admit(program_id="p"), 0, 0.5).worker_id == "w0"  # type: ignore[union-attr]
    assert guess.guess(_admit(program_id="q"), 0, 0.5).worker_id == "w2"  # type: ignore[union-attr]
    guess.granted(_grant("w1", next_worker="w0"), "p", 0.0)  # p moved
    assert guess.guess(_admit(program_id="p"), 0, 0.5).worker_id == "w1"  # type: ignore[union-attr]
    guess.granted(_grant("w1", next_worker=""), "q", 0.0)  # every worker full: none
    assert guess.guess(_admit(program_id="p"), 0, 0.5) is None
    assert guess.guess(_admit(), 0, 0.5) is None


def test_a_last_grant_older_than_fresh_s_starts_nothing_early() -> None:
    guess = _guess((_grant("w0"), "p"))
    assert guess.guess(_admit(), 0, early_guess.FRESH_S) is not None
    assert guess.guess(_admit(), 0, early_guess.FRESH_S + 0.01) is None  # others may queue
    assert guess.guess(_admit(program_id="p"), 0, early_guess.FRESH_S + 0.01) is None


def test_a_configured_fresh_s_is_the_bound() -> None:
    """gateway.early_start_fresh_s: a lone gateway's last grant stays news longer."""
    guess = EarlyGuess(max_prompt_tokens=512, fresh_s=30.0)
    guess.granted(_grant("w0"), "", 0.0)
    assert guess.guess(_admit(), 0, 30.0) is not None
    assert guess.guess(_admit(), 0, 30.01) is None


def test_the_programs_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(early_guess, "PROGRAMS_KEPT", 2)
    guess = _guess((_grant("w0"), "a"), (_grant("w1"), "b"), (_grant("w2"), "a"),
                   (_grant("w3"), "c"))  # b is the least recent
    assert guess.guess(_admit(program_id="b"), 0, 0.5) is None
    assert guess.guess(_admit(program_id="a"), 0, 0.5).worker_id == "w2"  # type: ignore[union-attr]


def test_an_early_run_has_the_lowest_priority() -> None:
    """No guessed priority: the planner runs an early run again where its grant gives the
    call a lower one (planner/core/attempts.py), and the last grant's may be another
    tenant's boosted one (review 2026-12-07)."""
    guess = _guess((_grant("w0", priority=50), "p"), (_grant("w1", priority=70), ""))
    assert guess.guess(_admit(), 0, 0.5).priority == EARLY_PRIORITY == 0  # type: ignore[union-attr]
    assert guess.guess(_admit(program_id="p"), 0, 0.5).priority == 0  # type: ignore[union-attr]


def test_it_is_off_at_zero_tokens() -> None:
    off = EarlyGuess(max_prompt_tokens=0)
    off.granted(_grant("w0"), "p", 0.0)
    assert off.guess(_admit(prompt_tokens=1), 0, 0.5) is None
    assert off.guess(_admit(program_id="p", prompt_tokens=1), 0, 0.5) is None


@pytest.mark.parametrize(("grant", "settled"), [
    (_grant("w1"), True),  # confirmed: the early run is the call's attempt
    (_grant("w0", attempt=2), False),  # elsewhere: the call runs there as attempt 2
    (_grant("w1", attempt=2), False),  # (a restored call's later attempt)
    (None, False),  # not granted at all (refused, or its caller left)
])
def test_what_the_grant_settles(grant: planner_pb2.Grant | None, settled: bool) -> None:
    guess = _guess()
    first = guess.guess(_admit(), 0, 0.5)
    assert first is not None and first.worker_id == "w1"
    assert guess.settled(first, grant) is settled
    assert (guess.confirmed, guess.missed) == (int(settled), int(not settled))
