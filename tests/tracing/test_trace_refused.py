"""Requests the gateway refused before they ran, and spans of other traces naming a program
id (tracing/trace_members.py): `trace show` and `trace list` count a program's calls as its
summary does. The spans are written as the services write them (program_spans.py): a
refused request's call span carries error.type and an error status, its admit span failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tracing.program_spans import T0_NS, CallSpec, write_program, write_requests
from tracing.span_file import read_spans
from tracing.trace_cli import main
from tracing.trace_index import program_index
from tracing.trace_view import ProgramTimeline, TraceViewError, build_timeline


def ran(call_id: str, start: float, end: float, *, tokens: tuple[int, int, int] = (22, 8, 0),
        error: str = "", error_type: str = "") -> CallSpec:
    """A call that ran: admitted, then generated on worker-0 (`error`: and then failed)."""
    return CallSpec(call_id, "main", start, end, worker="worker-0", admits=((start + 0.01, start + 0.02),),
                    engine=(start + 0.05, end - 0.05), first_token=start + 0.1, tokens=tokens,
                    error=error, error_type=error_type)


def refused(call_id: str, code: str, message: str, start: float, *, admitted: bool = True,
            typed: bool = True) -> CallSpec:
    """A request refused before it ran: by the planner (`admitted`: its admit span failed) or
    by the gateway itself (no admit span); `typed`: error.type set, as the gateway does."""
    return CallSpec(call_id, "main", start, start + 0.01, lookup=False, refused=True,
                    admits=((start + 0.002, start + 0.004),) if admitted else (),
                    error=f"{code}: {message}", error_type=code if typed else "")


def write_walkthrough(path: Path) -> Path:
    """Tenant ta's prog-a: c1 runs, B calls A's id (refused, in traces of their own, as B's own
    tb/prog-a before B opened it), ta sends c1 again (ALREADY_EXISTS, under the program span),
    c4 runs, the program ends, then a call to it is refused (NOT_FOUND, a trace of its own)."""
    write_program(path, "ta/prog-a", [
        ran("c1", 0.1, 0.9),
        refused("c1", "ALREADY_EXISTS", "call 'c1' already exists in program 'prog-a'", 2.0),
        ran("c4", 2.1, 2.7, tokens=(21, 8, 6)),
    ], tenant="ta", program=(0.0, 3.0))
    write_requests(path, "tb/prog-a", [refused("c2", "NOT_FOUND", "no program 'prog-a'", 1.0),
                                       refused("c3", "NOT_FOUND", "no program 'prog-a'", 1.05)],
                   tenant="tb")
    write_requests(path, "tb/prog-zzz", [refused("c2", "NOT_FOUND", "no program 'prog-zzz'", 1.02)],
                   tenant="tb")
    write_program(path, "tb/prog-a", [ran("c1", 1.3, 1.9)], tenant="tb", program=(1.2, 2.8))
    write_requests(path, "ta/prog-a", [refused("c9", "NOT_FOUND", "no program 'prog-a'", 3.2)],
                   tenant="ta")
    return path


def summary(t: ProgramTimeline) -> dict[str, object]:
    return {
        "calls": [(c.call_id, c.status, c.tokens_in, c.tokens_out, c.worker) for c in t.calls],
        "failed": t.failed_calls, "critical_path": t.critical_path,
        "refused": [(r.call_id, r.code) for r in t.refused], "duration_s": round(t.duration_s, 6),
    }


@pytest.fixture
def walkthrough(tmp_path: Path) -> Path:
    return write_walkthrough(tmp_path / "spans.jsonl")


@pytest.mark.parametrize(("wanted", "expected"), [
    # the duplicate c1 refused under the program span neither replaces c1 nor counts; the call
    # refused after the end (another trace) is not the program's: 2 calls, 0 failed, as its
    # summary says
    ("ta/prog-a", {"calls": [("c1", "UNSET", 22, 8, "worker-0"), ("c4", "UNSET", 21, 8, "worker-0")],
                   "failed": 0, "critical_path": ("c4",), "refused": [("c1", "ALREADY_EXISTS")],
                   "duration_s": 3.0}),
    # B's calls to A's id, refused before B opened its own prog-a, are not B's program's
    ("tb/prog-a", {"calls": [("c1", "UNSET", 22, 8, "worker-0")], "failed": 0,
                   "critical_path": ("c1",), "refused": [], "duration_s": 1.6}),
])
def test_walkthrough_programs(walkthrough: Path, wanted: str, expected: dict[str, object]) -> None:
    assert summary(build_timeline(read_spans(walkthrough), wanted)) == expected


def test_walkthrough_refused_request_fields(walkthrough: Path) -> None:
    (dup,) = build_timeline(read_spans(walkthrough), "ta/prog-a").refused
    assert dup.message == "ALREADY_EXISTS: call 'c1' already exists in program 'prog-a'"
    assert dup.start_s == pytest.approx(2.0)


def test_walkthrough_list(walkthrough: Path) -> None:
    """A program id only refused requests name (tb/prog-zzz) is no program."""
    rows = [(e.program_id, e.tenant, e.calls, e.failed_calls, e.start_unix_ns, round(e.duration_s, 6))
            for e in program_index(read_spans(walkthrough))]
    assert rows == [("tb/prog-a", "tb", 1, 0, T0_NS + 12 * 10**8, 1.6),
                    ("ta/prog-a", "ta", 2, 0, T0_NS, 3.0)]


@pytest.mark.parametrize("wanted", ["tb/prog-zzz", "prog-zzz", "prog-z"])
def test_only_refused_requests_name_it(walkthrough: Path, wanted: str) -> None:
    with pytest.raises(TraceViewError, match=f"no program '{wanted}' in the trace file: only "
                                             "requests the gateway refused name it"):
        build_timeline(read_spans(walkthrough), wanted)


def test_walkthrough_cli(walkthrough: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "show", "ta/prog-a", "--file", str(walkthrough), "--width", "120"]) == 0
    out = capsys.readouterr().out
    assert "2 calls, 0 cached, 0 failed" in out and "critical path: c4" in out
    assert "!" not in "".join(line[:2] for line in out.splitlines()[3:])  # no call marked failed
    assert "ALREADY_EXISTS" not in out and "c9" not in out
    assert main(["trace", "list", "--file", str(walkthrough), "--width", "200"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:-1]]
    assert [(r[0], r[-5], r[-4]) for r in rows] == [("tb/prog-a", "1", "0"), ("ta/prog-a", "2", "0")]


UNAVAILABLE = "UNAVAILABLE: worker-0 went away"


def _scenario(path: Path, name: str) -> None:
    """One program `acme/p` (and what else names it), per scenario."""
    if name == "retry that ran":  # failed on its worker, admitted again, ran to the end
        write_program(path, "acme/p", [
            ran("c1", 0.1, 0.5, error=UNAVAILABLE, error_type="UNAVAILABLE"), ran("c1", 0.6, 1.0)])
    elif name == "refused after a failed run":  # over its quota when sent again: no admit span
        write_program(path, "acme/p", [
            ran("c1", 0.1, 0.5, error=UNAVAILABLE, error_type="UNAVAILABLE"),
            refused("c1", "RESOURCE_EXHAUSTED", "tenant 'acme' is over its quota", 0.6,
                    admitted=False)])
    elif name == "failed after it ran":  # admitted, then the engine refused it: a failed call
        write_program(path, "acme/p", [
            ran("c1", 0.1, 0.5, error="INVALID_ARGUMENT: too long", error_type="INVALID_ARGUMENT")])
    elif name == "refused, status message only":  # no error.type: the status message's code
        write_program(path, "acme/p", [ran("c1", 0.1, 0.5), refused(
            "c2", "INVALID_ARGUMENT", "unknown parent call(s): c0", 0.6, typed=False)])
    elif name == "through another gateway":  # ran in its caller's trace: the program's
        write_program(path, "acme/p", [ran("c0", -4.0, -3.5)], program=(-5.0, -2.0))  # the id's last use
        write_program(path, "acme/p", [ran("c1", 0.1, 0.5)])
        write_requests(path, "acme/p", [ran("c2", 1.0, 1.5)])
    elif name == "another tenant naming the id":  # ids recorded before they were per tenant
        write_program(path, "acme/p", [ran("c1", 0.1, 0.5)])
        write_requests(path, "acme/p", [ran("c2", 1.0, 1.5)], tenant="globex")
    elif name == "open program":  # no program span: the calls that ran, refused ones apart
        write_program(path, "acme/p", [ran("c1", 0.1, 0.5), refused(
            "c1", "ALREADY_EXISTS", "call 'c1' already exists", 0.6)], program=None)
    elif name == "refused by the gateway":  # quota, max programs: the program ran no call
        write_program(path, "acme/p", [refused("c1", "RESOURCE_EXHAUSTED", "over its quota", 0.1,
                                               admitted=False)])


@pytest.mark.parametrize(("name", "calls", "refusals"), [
    ("retry that ran", [("c1", "UNSET", 1.0)], []),
    ("refused after a failed run", [("c1", "ERROR", 0.5)], [("c1", "RESOURCE_EXHAUSTED")]),
    ("failed after it ran", [("c1", "ERROR", 0.5)], []),
    ("refused, status message only", [("c1", "UNSET", 0.5)], [("c2", "INVALID_ARGUMENT")]),
    ("through another gateway", [("c1", "UNSET", 0.5), ("c2", "UNSET", 1.5)], []),
    ("another tenant naming the id", [("c1", "UNSET", 0.5)], []),
    ("open program", [("c1", "UNSET", 0.4)], [("c1", "ALREADY_EXISTS")]),
    ("refused by the gateway", [], [("c1", "RESOURCE_EXHAUSTED")]),
])
def test_calls_and_refusals(tmp_path: Path, name: str, calls: list[tuple[str, str, float]],
                            refusals: list[tuple[str, str]]) -> None:
    """Which requests are the program's calls, each call id's run shown (status, end), and
    which are refused requests; `trace list` counts the same calls."""
    path = tmp_path / "spans.jsonl"
    _scenario(path, name)
    spans = read_spans(path)
    t = build_timeline(spans, "acme/p")
    assert [(c.call_id, c.status, round(c.end_s, 6)) for c in t.calls] == calls
    assert [(r.call_id, r.code) for r in t.refused] == refusals
    (entry,) = program_index(spans)
    assert (entry.calls, entry.failed_calls) == (len(calls), sum(s == "ERROR" for _, s, _ in calls))
