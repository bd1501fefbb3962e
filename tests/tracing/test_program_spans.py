"""ProgramSpans: a program's span from start to end, expiry, and its calls' parents."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracing import genai
from tracing.program_spans import ProgramSpans


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup() -> tuple[ProgramSpans, InMemorySpanExporter, Clock, trace.Tracer]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    clock = Clock()
    tracer = provider.get_tracer("test")
    return ProgramSpans(tracer, clock, idle_s=10.0, max_open=3), exporter, clock, tracer


def test_program_span_lives_until_its_end(setup) -> None:  # type: ignore[no-untyped-def]
    programs, exporter, _, _ = setup
    span = programs.start("p1", "acme", "react")
    assert programs.start("p1", "acme", "react") is span  # a retried registration
    assert not exporter.get_finished_spans()
    programs.end("p1", "ended", {genai.PROGRAM_CALLS_COMPLETED: 3})
    (done,) = exporter.get_finished_spans()
    assert done.name == "invoke_workflow react"
    # the class is the workflow's name (GenAI conventions), not an agent's (review F6)
    assert done.attributes[genai.WORKFLOW_NAME] == "react"
    assert "gen_ai.agent.name" not in done.attributes
    assert done.attributes[genai.CONVERSATION_ID] == "p1"
    assert done.attributes[genai.TENANT] == "acme"
    assert done.attributes[genai.PROGRAM_END] == "ended"
    assert done.attributes[genai.PROGRAM_CALLS_COMPLETED] == 3
    programs.end("p1")  # ended already: nothing more
    assert len(exporter.get_finished_spans()) == 1 and len(programs) == 0


@pytest.mark.parametrize(("steps", "ended"), [
    # (program, clock) starts; then which ended and how
    ([("a", 0), ("b", 5), ("c", 11)], {"a": "expired"}),  # idle 11 s >= 10
    ([("a", 0), ("b", 1), ("c", 2), ("d", 3)], {"a": "evicted"}),  # over max_open
    ([("a", 0), ("b", 9)], {}),
])
def test_idle_and_excess_programs_are_ended(setup, steps, ended) -> None:  # type: ignore[no-untyped-def]
    programs, exporter, clock, _ = setup
    for program_id, t in steps:
        clock.now = t
        programs.start(program_id, "t")
    assert {s.attributes[genai.PROGRAM_ID]: s.attributes[genai.PROGRAM_END]
            for s in exporter.get_finished_spans()} == ended
    programs.end_all()
    assert {s.attributes[genai.PROGRAM_END] for s in exporter.get_finished_spans()} \
        <= {"expired", "evicted", "shutdown"}


def test_an_idle_program_ends_without_another_starting(setup) -> None:  # type: ignore[no-untyped-def]
    """Tracing review 2026-12-05 F3: idle spans ended only when another program started (the
    gateway now calls expire() on a timer, with the planner's program_idle_ttl_s)."""
    programs, exporter, clock, _ = setup
    programs.start("a", "t")
    clock.now = 9
    programs.expire()
    assert not exporter.get_finished_spans()
    clock.now = 10
    programs.expire()
    (done,) = exporter.get_finished_spans()
    assert done.attributes[genai.PROGRAM_END] == "expired" and len(programs) == 0


def test_use_keeps_a_program_alive(setup) -> None:  # type: ignore[no-untyped-def]
    programs, exporter, clock, _ = setup
    programs.start("a", "t")
    clock.now = 8
    assert programs.get("a") is not None  # a call at 8 s
    clock.now = 15
    programs.start("b", "t")
    assert not exporter.get_finished_spans()


def test_calls_are_children_of_the_program_and_link_a_step_span(setup) -> None:  # type: ignore[no-untyped-def]
    programs, _, _, tracer = setup
    with tracer.start_as_current_span("client agent") as agent:
        program = programs.start("p", "t", parent=otel_context.get_current())
        # the client's program-wide span is current: the program's own parent, not linked
        ctx, links = programs.call_parent("p", otel_context.get_current())
        assert trace.get_current_span(ctx) is program and links == []
        with tracer.start_as_current_span("step 2") as step:
            ctx, links = programs.call_parent("p", otel_context.get_current())
            assert trace.get_current_span(ctx) is program
            assert [link.context.span_id for link in links] == [step.get_span_context().span_id]
    assert program.get_span_context().trace_id == agent.get_span_context().trace_id
    # a program this gateway does not hold: the caller's context as it is
    current = otel_context.get_current()
    assert programs.call_parent("elsewhere", current) == (current, [])
