"""The gRPC API reference is generated from the protos' comments and must be current."""

from __future__ import annotations

from ostinato.proto_reference import OUT, render


def test_grpc_reference_is_current() -> None:
    assert OUT.read_text() == render(), \
        "docs/reference/grpc.md is stale: run `make docs`"


def test_every_gateway_method_is_documented() -> None:
    text = render()
    section = text[text.index("### service `Gateway`"):]
    rows = [ln for ln in section.split("\n\n")[1].splitlines() if ln.startswith("| `")]
    assert rows and all(not ln.endswith("|  |") for ln in rows), rows
