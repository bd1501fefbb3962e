"""Faults, with real processes: a worker or its engine killed mid-call. A call that has
streamed nothing (or is taken whole) runs again on another worker and answers once; one
that has streamed fails with UNAVAILABLE, or restarts if its program opted in.
Helpers and the mesh: tests/integration/fault_mesh.py (the `faults` fixture: conftest.py).
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

import ostinato
from ostinato.mesh import Mesh
from tests.integration.fault_mesh import (
    USER,
    generated,
    hang,
    in_thread,
    index,
    other,
    record,
    restart_dead_engines,
    running_on,
    wait_for,
)

# ---- a worker or its engine killed mid-call ----------------------------------------------


def test_worker_killed_before_streaming_the_call_reruns_elsewhere_and_answers_once(
        faults: Mesh) -> None:
    hang(faults, True)  # calls sit on their workers, nothing streamed
    killed = ""
    try:
        with ostinato.Client(faults.endpoints.gateway) as client, client.program() as program:
            thread, out = in_thread(lambda: program.call(messages=USER, max_tokens=12,
                                                         call_id="x"))
            killed = running_on(faults, program.program_id, "x")
            faults.kill(killed)
            assert running_on(faults, program.program_id, "x", attempt=2) == other(killed)
            hang(faults, False)
            thread.join(60)
            assert "error" not in out, out
        result = out["result"]
        assert result.text and result.worker_id == other(killed)
        assert result.usage.completion_tokens == 12 and result.finish_reason == "length"
        assert program.summary is not None
        assert (program.summary.calls_completed, program.summary.calls_failed) == (1, 0)
        rec = record(faults, program.program_id, "x")
        assert (rec["state"], rec["attempt"], rec["excluded"]) == ("done", 2, [killed])
    finally:
        hang(faults, False)
        if killed:
            faults.restart(killed)


def _stream_then_kill_its_engine(mesh: Mesh, program: ostinato.client.Program, seen: list[str],
                                 **kw: Any) -> tuple[ostinato.client.CallStream, str]:
    """Starts a long call, kills its engine once text has streamed, and drains the stream
    into `seen` (it raises, or restarts, as the call chose); the stream and its worker."""
    stream = program.stream(messages=USER, max_tokens=400, ignore_eos=True, call_id="s", **kw)
    deltas = iter(stream)
    seen.append(next(deltas))
    worker = running_on(mesh, program.program_id, "s")
    mesh.kill(f"engine-{index(worker)}")
    seen.extend(deltas)
    return stream, worker


def test_engine_killed_after_streaming_fails_the_call_with_unavailable(faults: Mesh) -> None:
    try:
        with ostinato.Client(faults.endpoints.gateway) as client, client.program() as program, \
                pytest.raises(ostinato.OstinatoError) as err:
            _stream_then_kill_its_engine(faults, program, [])
        assert err.value.code is grpc.StatusCode.UNAVAILABLE
        # the mesh's inner addresses stay in its logs (the engine's URL was in the message)
        assert "after streaming part of its answer" in str(err.value)
        assert "127.0.0.1" not in str(err.value) and "engine http" not in str(err.value)
        assert program.summary is not None
        assert (program.summary.calls_completed, program.summary.calls_failed) == (0, 1)
        assert record(faults, program.program_id, "s")["attempt"] == 1  # not re-run
    finally:
        restart_dead_engines(faults)


def test_engine_killed_after_streaming_restarts_a_call_that_opted_in(faults: Mesh) -> None:
    restarts: list[int] = []  # where in the deltas seen the call restarted
    seen: list[str] = []
    try:
        with ostinato.Client(faults.endpoints.gateway) as client, \
                client.program(restart_on_failure=True) as program:
            stream, worker = _stream_then_kill_its_engine(
                faults, program, seen, on_restart=lambda: restarts.append(len(seen)))
        assert stream.restarts == 1 and len(restarts) == 1
        result = stream.result
        assert result is not None and result.worker_id == other(worker)
        assert result.usage.completion_tokens == 400 and result.text == stream.text
        assert "".join(seen[restarts[0]:]) == result.text  # what came after the restart
        assert program.summary is not None
        assert (program.summary.calls_completed, program.summary.calls_failed) == (1, 0)
        assert record(faults, program.program_id, "s")["attempt"] == 2
    finally:
        restart_dead_engines(faults)


def test_a_dag_nodes_engine_killed_after_streaming_restarts_the_node_not_the_program(
        faults: Mesh) -> None:
    """A declared program's node restarts (NodeDelta.restarted) where a program's streamed
    call would fail: its dependents read only its finished output."""
    graph = ostinato.dag.Graph()
    story = graph.call(id="story", messages=USER, max_tokens=400, ignore_eos=True)
    graph.call(id="title", after=[story], max_tokens=4,
               messages=[("user", f"A title for: {story.output}")])
    seen: list[ostinato.dag.NodeDelta] = []
    worker = ""
    try:
        with ostinato.Client(faults.endpoints.gateway) as client:
            stream = client.run_stream(graph)
            for event in stream:
                if isinstance(event, ostinato.dag.NodeDelta):
                    seen.append(event)
                    if not worker:  # mid-answer: kill the node's engine
                        worker = running_on(faults, stream.result.program_id, "story")
                        faults.kill(f"engine-{index(worker)}")
            result = stream.result
        restarted = [i for i, d in enumerate(seen) if d.restarted]
        assert len(restarted) == 1 and seen[restarted[0]].node_id == "story"
        again = "".join(d.delta for d in seen[restarted[0]:] if d.node_id == "story")
        assert again == result["story"].text  # what came after the restart
        assert result["story"].worker_id == other(worker)
        assert result["story"].usage.completion_tokens == 400
        assert result.summary is not None
        assert (result.summary.calls_completed, result.summary.calls_failed) == (2, 0)
        assert record(faults, result.program_id, "story")["attempt"] == 2
    finally:
        restart_dead_engines(faults)


def test_engine_killed_mid_whole_answer_reruns_it_elsewhere_and_answers_once(
        faults: Mesh) -> None:
    # program.call takes its answer whole (CallRequest.whole): nothing reaches the caller
    # before the end, so a call its engine dies under, tokens generated or not, runs again
    before = [generated(faults, i) for i in (0, 1)]
    try:
        with ostinato.Client(faults.endpoints.gateway) as client, client.program() as program:
            thread, out = in_thread(lambda: program.call(
                messages=USER, max_tokens=1000, ignore_eos=True, call_id="w"))
            worker = running_on(faults, program.program_id, "w")
            engine = index(worker)
            wait_for(lambda: generated(faults, engine) > before[engine])  # mid-answer
            faults.kill(f"engine-{engine}")
            thread.join(60)
            assert "error" not in out, out
        result = out["result"]
        assert result.worker_id == other(worker) and result.usage.completion_tokens == 1000
        assert program.summary is not None
        assert (program.summary.calls_completed, program.summary.calls_failed) == (1, 0)
        assert record(faults, program.program_id, "w")["attempt"] == 2
    finally:
        restart_dead_engines(faults)


def test_a_stopping_worker_lets_its_running_call_finish_before_it_exits(faults: Mesh) -> None:
    """Workers review 2026-12-05 F3: on SIGTERM a worker deregistered, then cut its calls
    after the server's 5 s grace (the call ran again elsewhere, from the start), though its
    pod had 60 s. Now it drains (worker.drain_s, 30 s): the call, held on its hung engine
    past those 5 s, finishes where it runs, once, and then the worker exits."""
    import signal
    import time

    hang(faults, True)
    stopped = ""
    try:
        with ostinato.Client(faults.endpoints.gateway) as client, client.program() as program:
            thread, out = in_thread(lambda: program.call(messages=USER, max_tokens=12,
                                                         call_id="d"))
            stopped = running_on(faults, program.program_id, "d")
            faults.child(stopped).send_signal(signal.SIGTERM)
            time.sleep(6.0)  # past the 5 s grace that used to cut it (a lower bound only)
            assert faults.child(stopped).poll() is None  # still draining
            hang(faults, False)
            thread.join(60)
            assert "error" not in out, out
            assert faults.child(stopped).wait(timeout=30) == 0  # drained: it exits
        result = out["result"]
        assert result.worker_id == stopped and result.usage.completion_tokens == 12
        rec = record(faults, program.program_id, "d")
        assert (rec["state"], rec["attempt"]) == ("done", 1)
    finally:
        hang(faults, False)
        if stopped:
            faults.child(stopped).wait(timeout=60)
            faults.restart(stopped)
