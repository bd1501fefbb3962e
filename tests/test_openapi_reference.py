"""The HTTP API reference is generated from the gateway's OpenAPI document and must be current."""

from __future__ import annotations

from gateway.openapi import document
from ostinato.config import GatewayConfig
from ostinato.openapi_reference import OUT, render


def test_http_reference_is_current() -> None:
    assert OUT.read_text() == render(), \
        "docs/reference/http.md is stale: run `make docs`"


def test_every_operation_and_schema_has_a_section() -> None:
    text = render()
    doc = document(GatewayConfig())
    for path, item in doc["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in text
    for name in doc["components"]["schemas"]:
        assert f"### {name}\n" in text
