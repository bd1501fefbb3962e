"""Declared programs (DAGs): validation and template substitution, pure. One home for the
rules the gateway enforces and the SDK checks before sending (ostinato.dag).

A node's prompt and message contents may reference earlier outputs as "{{node_id}}";
every referenced node must be among its dependencies (direct or transitive). A backslash
before it, "\\{{word}}", keeps "{{word}}" as it is, a literal (the backslash dropped): a
prompt about mustache templates (`escape_templates` writes a text so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from graphlib import CycleError, TopologicalSorter

from ostinato.v1 import common_pb2, gateway_pb2

_ID = "[A-Za-z0-9_.:-]{1,128}"  # a node id: what a "{{node_id}}" template can name
# a reference, or (a backslash first) an escaped literal: group 1 is the backslash, if any
_REF = re.compile(r"(\\?)\{\{\s*(" + _ID + r")\s*\}\}")
MAX_NODES = 1024


class InvalidDag(ValueError):
    pass


def topological_order(nodes: Sequence[gateway_pb2.DagNode]) -> list[str]:
    """Validates the DAG and returns node ids in an order that respects dependencies."""
    if not nodes:
        raise InvalidDag("a declared program needs at least one node")
    if len(nodes) > MAX_NODES:
        raise InvalidDag(f"too many nodes: {len(nodes)} > {MAX_NODES}")
    ids = [n.id for n in nodes]
    if any(not i for i in ids):
        raise InvalidDag("every node needs an id")
    bad_ids = [i for i in ids if not re.fullmatch(_ID, i)]
    if bad_ids:
        raise InvalidDag(f"node id {bad_ids[0]!r}: ids are 1 to 128 of A-Z a-z 0-9 _ . : - "
                         "(what a {{node_id}} template can name)")
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InvalidDag(f"duplicate node ids: {', '.join(dupes)}")
    deps = {n.id: list(n.depends_on) for n in nodes}
    for node_id, ds in deps.items():
        unknown = [d for d in ds if d not in deps]
        if unknown:
            raise InvalidDag(f"node {node_id!r} depends on unknown node(s): {', '.join(unknown)}")
    try:  # graphlib walks iteratively: a chain of MAX_NODES is no deeper than a short one
        order = list(TopologicalSorter(deps).static_order())
    except CycleError as exc:
        raise InvalidDag("dependency cycle: " + " -> ".join(_cycle(exc.args[1], ids))) from exc
    ancestors: dict[str, set[str]] = {}
    for node_id in order:
        ancestors[node_id] = set(deps[node_id]).union(*(ancestors[d] for d in deps[node_id]))
    for n in nodes:
        texts = [n.call.prompt, *(m.content for m in n.call.messages)]
        refs = {name for t in texts for escaped, name in _REF.findall(t) if not escaped}
        bad = sorted(refs - ancestors[n.id])
        if bad:
            raise InvalidDag(f"node {n.id!r} references {', '.join(bad)} without depending on it")
    return order


def _cycle(found: list[str], ids: list[str]) -> list[str]:
    """graphlib's cycle (each node a dependency of the next) as node -> its dependency,
    from the node given first."""
    loop = list(reversed(found[1:]))
    start = min(range(len(loop)), key=lambda i: ids.index(loop[i]))
    loop = loop[start:] + loop[:start]
    return [*loop, loop[0]]


def filled_growth(call: common_pb2.CallSpec, outputs: Mapping[str, str]) -> int:
    """How many characters `fill_templates(call, outputs)` would add to the call's prompt
    and messages, counted without building them: a prompt of 400,000 characters of
    "{{a}}" filled with a 1 KB output is 80 MB, which must be refused before it is made."""
    def growth(text: str) -> int:
        return sum(-1 if m.group(1) else len(outputs[m.group(2)]) - len(m.group(0))
                   for m in _REF.finditer(text))

    return growth(call.prompt) + sum(growth(m.content) for m in call.messages)


def fill_templates(call: common_pb2.CallSpec, outputs: Mapping[str, str]) -> common_pb2.CallSpec:
    out = common_pb2.CallSpec()
    out.CopyFrom(call)

    def sub(text: str) -> str:  # one pass: an output's own "{{...}}" stays as it is
        return _REF.sub(lambda m: m.group(0)[1:] if m.group(1) else outputs[m.group(2)], text)

    out.prompt = sub(out.prompt)
    for m in out.messages:
        m.content = sub(m.content)
    return out


def escape_templates(text: str) -> str:
    """`text` with every "{{word}}" in it kept literal when it is a node's prompt or message
    ("\\{{word}}"): text of the caller's own, not a reference to an output."""
    return _REF.sub(lambda m: "\\" + m.group(0), text)
