"""Declared DAGs built with ostinato.dag, run by the session mesh (Gateway.RunProgram)."""

from __future__ import annotations

import pytest

import ostinato
from ostinato.dag import Graph, NodeDelta, NodeFinished, NodeStarted, ProgramFinished
from ostinato.mesh import Mesh


def _outline_sections_merge(sections: int = 3) -> tuple[Graph, list[ostinato.dag.Node]]:
    g = Graph()
    outline = g.call(id="outline", prompt="Outline a report on Lyon.", max_tokens=5)
    parts = [g.call(id=f"sec{i}", prompt=f"Write section {i} of: {outline.output}",
                    after=[outline], max_tokens=5) for i in range(sections)]
    merge = g.call(id="merge", prompt="Merge: " + " | ".join(p.output for p in parts),
                   after=parts, max_tokens=5)
    return g, [outline, *parts, merge]


def test_a_graph_runs_server_side_in_dependency_order(mesh: Mesh) -> None:
    g, nodes = _outline_sections_merge()
    with ostinato.Client(mesh.endpoints.gateway, api_key="key-acme") as client:
        result = client.run(g, program_class="report")
    assert set(result.outputs) == {n.id for n in nodes}
    assert all(result[n].text and result[n].call_id == n.id for n in nodes)
    assert result.summary is not None and result.summary.calls_completed == len(nodes)
    assert isinstance(result.events[-1], ProgramFinished) and result.program_id
    position = {(type(e), getattr(e, "node_id", "")): i for i, e in enumerate(result.events)}
    for child, parents in [("merge", ["sec0", "sec1", "sec2"]), ("sec1", ["outline"])]:
        started = position[(NodeStarted, child)]
        assert all(position[(NodeFinished, p)] < started for p in parents)


async def test_the_async_client_streams_the_events(mesh: Mesh) -> None:
    g, nodes = _outline_sections_merge(sections=2)
    async with ostinato.AsyncClient(mesh.endpoints.gateway) as client:
        stream = client.run_stream(g)
        events = [e async for e in stream]
    assert events == stream.result.events
    assert {e.node_id for e in events if isinstance(e, NodeDelta)} == {n.id for n in nodes}
    for n in nodes:  # a node's deltas spell its output
        deltas = "".join(e.delta for e in events if isinstance(e, NodeDelta) and e.node_id == n.id)
        assert deltas == stream.result[n].text


def test_an_invalid_graph_is_refused_before_it_is_sent() -> None:
    g = Graph()
    a = g.call(id="a", prompt="x", after=["b"])
    g.call(id="b", prompt="y", after=[a])
    # nothing listens there: a request sent would wait for the gateway until its deadline
    with ostinato.Client("127.0.0.1:1", timeout_s=30) as client, \
            pytest.raises(ostinato.InvalidDag, match="dependency cycle: a -> b -> a"):
        client.run(g)


def test_what_only_the_gateway_checks_comes_back_as_invalid_argument(mesh: Mesh) -> None:
    g = Graph()
    g.call(prompt="x", max_tokens=10**6)
    with ostinato.Client(mesh.endpoints.gateway) as client, \
            pytest.raises(ostinato.InvalidArgument, match="max_new_tokens") as err:
        client.run(g)
    assert not isinstance(err.value, ostinato.InvalidDag)


def test_a_run_given_an_open_programs_id_neither_takes_it_over_nor_ends_it(mesh: Mesh) -> None:
    """SDK review 2026-12-05 F2: RunProgram registered the id idempotently, ran its DAG in the
    open interactive program, then ended it under its owner (whose next call was NOT_FOUND)."""
    g = Graph()
    g.call(prompt="x", max_tokens=3)
    with ostinato.Client(mesh.endpoints.gateway, api_key="key-acme") as client:
        with client.program() as p:
            p.call(messages=[("user", "first")], max_tokens=3)
            with pytest.raises(ostinato.AlreadyExists, match="is open"):
                client.run(g, program_id=p.program_id)
            assert p.call(messages=[("user", "second")], max_tokens=3).text  # still open
        done = client.run(g, program_id=p.program_id + "-dag")  # a new id: runs
    assert done.summary is not None and done.summary.calls_completed == 1


def test_a_literal_template_reaches_the_model_as_written(mesh: Mesh) -> None:
    """SDK review 2026-12-05 F7: a prompt about mustache templates ("{{name}}") was refused as
    a reference to a node it does not depend on. Escaped (`literal`), it runs, and the model
    gets the text as written: as many prompt tokens as the same prompt in a plain call (no
    templates there), where the backslash would be one more."""
    text = "Write a greeting template: Hello {{name}}, from {{ team }}!"
    g = Graph()
    node = g.call(prompt=ostinato.dag.literal(text), max_tokens=3, temperature=0)
    with ostinato.Client(mesh.endpoints.gateway, api_key="key-acme") as client:
        ran = client.run(g)
        with client.program() as p:
            plain = p.call(prompt=text, max_tokens=3, temperature=0)
            escaped = p.call(prompt="\\" + text, max_tokens=3, temperature=0)
    assert ran[node].usage.prompt_tokens == plain.usage.prompt_tokens
    assert escaped.usage.prompt_tokens > plain.usage.prompt_tokens  # the check can tell


def test_a_prompt_that_its_templates_fill_past_the_limit_is_refused_before_it_is_built(
        mesh: Mesh) -> None:
    """Security review: a node of 400,000 characters of "{{a}}" (within max_prompt_chars as
    sent) filled with a's output came to ~90 MB, rendered and tokenized on the gateway's
    event loop (5 s stalls for every tenant) before any check refused it."""
    g = Graph()
    a = g.call(id="a", prompt="Say something.", max_tokens=8)
    limit = 50_000  # the session mesh's max_prompt_chars (tests/conftest.py)
    g.call(id="b", prompt=a.output * (limit // len(a.output)), after=[a], max_tokens=3)
    with ostinato.Client(mesh.endpoints.gateway, api_key="key-acme") as client, \
            pytest.raises(ostinato.InvalidArgument,
                          match=r"node 'b': prompt too large once its templates are filled"):
        client.run(g)
