"""The program timeline rebuilt from spans the real SDK wrote (tracing/trace_view.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.tracing.program_spans import FAN_OUT, FAN_OUT_ID, CallSpec, write_fan_out, write_program
from tracing.span_file import read_spans
from tracing.trace_view import DECODE, PREFILL, QUEUE, Phase, ProgramTimeline, TraceViewError, build_timeline


def timeline(path: Path, program_id: str) -> ProgramTimeline:
    return build_timeline(read_spans(path), program_id)


def rounded(phases: tuple[Phase, ...]) -> list[tuple[str, float, float]]:
    return [(p.kind, round(p.start_s, 6), round(p.end_s, 6)) for p in phases]


@pytest.fixture
def fan_out(tmp_path: Path) -> ProgramTimeline:
    return timeline(write_fan_out(tmp_path / "spans.jsonl"), FAN_OUT_ID)


@pytest.mark.parametrize(("call_id", "phases"), [
    ("c-root", [(QUEUE, 0.02, 0.10), (PREFILL, 0.11, 0.30), (DECODE, 0.30, 0.97)]),
    ("c-a", [(QUEUE, 1.06, 1.20), (PREFILL, 1.22, 1.40), (DECODE, 1.40, 1.88)]),
    ("c-b", [(QUEUE, 1.06, 1.10), (PREFILL, 1.12, 1.30), (DECODE, 1.30, 2.28)]),
    ("c-c", []),  # answered from the gateway's cache: no queue, no engine
    ("c-join", [(QUEUE, 2.36, 2.40), (PREFILL, 2.41, 2.50), (DECODE, 2.50, 2.88)]),
])
def test_fan_out_phases(fan_out: ProgramTimeline, call_id: str, phases: list[tuple]) -> None:
    call = next(c for c in fan_out.calls if c.call_id == call_id)
    assert rounded(call.phases) == phases


def test_fan_out_program(fan_out: ProgramTimeline) -> None:
    assert (fan_out.program_id, fan_out.tenant, fan_out.program_class, fan_out.end_reason) == (
        FAN_OUT_ID, "acme", "fanout", "ended")
    assert fan_out.has_program_span and fan_out.duration_s == pytest.approx(3.0)
    assert [c.call_id for c in fan_out.calls] == ["c-root", "c-a", "c-b", "c-c", "c-join"]
    assert fan_out.critical_path == ("c-root", "c-b", "c-join")
    assert [c.call_id for c in fan_out.calls if c.on_critical_path] == ["c-root", "c-b", "c-join"]
    assert fan_out.critical_path_s == pytest.approx(1.0 + 1.25 + 0.55)
    assert (fan_out.cached_calls, fan_out.failed_calls) == (1, 0)


@pytest.mark.parametrize(("call_id", "expected"), [
    ("c-root", dict(worker="worker-a", cache_hit="miss", thread="t0", parents=(), tokens_in=500,
                    tokens_out=100, tokens_cached=0, finish_reason="stop", cached=False)),
    ("c-b", dict(worker="worker-b", parents=("c-root",), tokens_cached=480)),
    ("c-c", dict(worker="", cache_hit="exact", cached=True, tokens_out=50)),
    ("c-join", dict(parents=("c-a", "c-b", "c-c"), worker="worker-b", thread="t0")),
])
def test_fan_out_call_fields(fan_out: ProgramTimeline, call_id: str, expected: dict) -> None:
    call = next(c for c in fan_out.calls if c.call_id == call_id)
    assert {k: getattr(call, k) for k in expected} == expected


def _one_call(tmp_path: Path, spec: CallSpec, program: tuple[float, float] | None = (0.0, 3.0)):
    write_program(tmp_path / "spans.jsonl", "prog-1", [spec], program=program)
    return timeline(tmp_path / "spans.jsonl", "prog-1").calls[0]


@pytest.mark.parametrize(("spec", "phases"), [
    # no first-token event: the engine's time to first token splits prefill from decode
    (CallSpec("c", "t", 0.0, 1.0, worker="w", admits=((0.0, 0.1),), engine=(0.2, 0.9), ttft_s=0.15),
     [(QUEUE, 0.0, 0.1), (PREFILL, 0.2, 0.35), (DECODE, 0.35, 0.9)]),
    # neither: no split, the engine's whole time is decode
    (CallSpec("c", "t", 0.0, 1.0, worker="w", admits=((0.0, 0.1),), engine=(0.2, 0.9)),
     [(QUEUE, 0.0, 0.1), (DECODE, 0.2, 0.9)]),
    # retried across a planner restart: the admit span that ended last is the queue wait
    (CallSpec("c", "t", 0.0, 2.0, worker="w", admits=((0.0, 0.5), (0.6, 0.9)), engine=(1.0, 1.9),
              first_token=1.2),
     [(QUEUE, 0.6, 0.9), (PREFILL, 1.0, 1.2), (DECODE, 1.2, 1.9)]),
    # failed before dispatch: queued, then nothing
    (CallSpec("c", "t", 0.0, 0.5, admits=((0.0, 0.4),), error="no worker"), [(QUEUE, 0.0, 0.4)]),
])
def test_phase_fallbacks(tmp_path: Path, spec: CallSpec, phases: list[tuple]) -> None:
    call = _one_call(tmp_path, spec)
    assert rounded(call.phases) == phases


def test_retried_admit_keeps_the_last_attempts_attributes(tmp_path: Path) -> None:
    call = _one_call(tmp_path, CallSpec("c", "t", 0.0, 2.0, worker="w", admits=((0.0, 0.5), (0.6, 0.9)),
                                        engine=(1.0, 1.9), first_token=1.2))
    assert call.details["matched blocks"] == 4  # the second attempt's


def test_failed_call(tmp_path: Path) -> None:
    call = _one_call(tmp_path, CallSpec("c-bad", "t", 0.0, 1.0, worker="w", admits=((0.0, 0.1),),
                                        engine=(0.2, 0.6), error="engine went away"))
    assert (call.status, call.status_message, call.failed, call.finish_reason) == (
        "ERROR", "engine went away", True, "error")


def _shifted(s: CallSpec, dt: float) -> CallSpec:
    return replace(s, start=s.start + dt, end=s.end + dt, admits=tuple((a + dt, b + dt) for a, b in s.admits),
                   engine=(s.engine[0] + dt, s.engine[1] + dt) if s.engine else None,
                   first_token=s.first_token + dt if s.first_token is not None else None)


def test_without_the_program_span(tmp_path: Path) -> None:
    """The program span is missing (still open): the axis starts at its first call, the
    tenant comes from the calls' spans."""
    calls = [_shifted(s, 5.0) for s in FAN_OUT]
    write_program(tmp_path / "spans.jsonl", FAN_OUT_ID, calls, program=None)
    t = timeline(tmp_path / "spans.jsonl", FAN_OUT_ID)
    assert not t.has_program_span and (t.tenant, t.end_reason) == ("acme", "")
    assert t.calls[0].start_s == pytest.approx(0.0)
    assert t.duration_s == pytest.approx(2.9)
    assert t.critical_path == ("c-root", "c-b", "c-join")
    assert t.calls[0].phases[0][1:] == pytest.approx((0.02, 0.10))


def test_calls_without_parents_mark_only_the_last(tmp_path: Path) -> None:
    write_program(tmp_path / "spans.jsonl", "prog-chat", [
        CallSpec("c1", "t", 0.0, 1.0, cache_hit="exact"), CallSpec("c2", "t", 1.5, 2.0, cache_hit="exact"),
        CallSpec("c3", "t", 2.2, 2.4, cache_hit="exact")])
    assert timeline(tmp_path / "spans.jsonl", "prog-chat").critical_path == ("c3",)


@pytest.fixture
def two_programs(tmp_path: Path) -> Path:
    path = write_fan_out(tmp_path / "spans.jsonl")
    write_program(path, "prog-fanout-7f3a-retry", [CallSpec("x1", "t", 0.0, 0.2, cache_hit="exact")])
    write_program(path, "prog-other-1", [CallSpec("y1", "t", 0.0, 0.2, cache_hit="semantic")])
    # the mesh's ids, inside their tenants (ostinato/program_ids.py): two tenants' "p1"
    write_program(path, "acme/p1", [CallSpec("z1", "t", 0.0, 0.2, cache_hit="exact")])
    write_program(path, "globex/p1", [CallSpec("w1", "t", 0.0, 0.2, cache_hit="exact")])
    write_program(path, "acme/solo-9", [CallSpec("v1", "t", 0.0, 0.2, cache_hit="exact")])
    # a tenant with a generation (a record written since they were): `acme#5f1e/...`
    write_program(path, "demo#5f1e/job-4", [CallSpec("u1", "t", 0.0, 0.2, cache_hit="exact")])
    return path


@pytest.mark.parametrize(("wanted", "found", "calls"), [
    (FAN_OUT_ID, FAN_OUT_ID, 5),  # exact, though also a prefix of another id
    ("prog-o", "prog-other-1", 1),
    ("prog-fanout-7f3a-r", "prog-fanout-7f3a-retry", 1),
    ("acme/p1", "acme/p1", 1),  # the mesh's id
    ("solo-9", "acme/solo-9", 1),  # the client's id, one tenant's only
    ("solo", "acme/solo-9", 1),  # its prefix
    ("demo/job-4", "demo#5f1e/job-4", 1),  # TENANT/ID, without the tenant's generation
    ("demo/jo", "demo#5f1e/job-4", 1),
    ("demo#5f1e/job-4", "demo#5f1e/job-4", 1),
    ("job-4", "demo#5f1e/job-4", 1),
])
def test_program_lookup(two_programs: Path, wanted: str, found: str, calls: int) -> None:
    t = timeline(two_programs, wanted)
    assert (t.program_id, len(t.calls)) == (found, calls)


@pytest.mark.parametrize(("wanted", "message"), [
    ("prog-f", "ambiguous: prog-fanout-7f3a, prog-fanout-7f3a-retry"),
    ("nope", "no program 'nope'"),
    ("p1", "ambiguous: acme/p1, globex/p1"),  # two tenants' programs of that id
])
def test_program_lookup_errors(two_programs: Path, wanted: str, message: str) -> None:
    with pytest.raises(TraceViewError, match=message):
        timeline(two_programs, wanted)
