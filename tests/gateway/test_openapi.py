"""The OpenAPI document names exactly the routes the HTTP API's router serves, and is a
valid OpenAPI 3.1 document whose schemas are valid JSON schemas."""

from __future__ import annotations

import schemathesis
from jsonschema import Draft202012Validator

from gateway.auth import ApiKeyAuthenticator
from gateway.core import GatewayCore
from gateway.http_api import OpenAiApi
from gateway.metrics import GatewayMetrics
from gateway.openapi import OPEN_ROUTES, document
from ostinato.config import GatewayConfig


def router_routes() -> set[tuple[str, str]]:
    """(method, path) of every route of the HTTP API's aiohttp router; HEAD is aiohttp's
    automatic companion of each GET (answered as the GET, without a body)."""
    config = GatewayConfig()
    core = GatewayCore(config, ApiKeyAuthenticator.from_keys({}, False), None, None)  # type: ignore[arg-type]
    app = OpenAiApi(core, GatewayMetrics(config.model)).app()
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None}
    heads = {(m, p) for m, p in routes if m == "HEAD"}
    assert heads <= {("HEAD", p) for m, p in routes if m == "GET"}
    return routes - heads


def document_routes() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document(GatewayConfig())["paths"].items()
            for method in item}


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    assert router_routes() == document_routes()


def test_open_routes_are_the_operations_documented_without_security() -> None:
    doc = document(GatewayConfig())
    open_ = {path for path, item in doc["paths"].items()
             for op in item.values() if op.get("security") == []}
    assert open_ == OPEN_ROUTES


def test_the_document_is_valid_openapi_and_its_schemas_valid_json_schemas() -> None:
    doc = document(GatewayConfig())
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    loaded = schemathesis.openapi.from_dict(doc)  # validates the document against OpenAPI 3.1
    assert sum(1 for _ in loaded.get_all_operations()) == len(document_routes())


def test_limits_come_from_the_gateways_config() -> None:
    doc = document(GatewayConfig(max_new_tokens_limit=77, default_max_new_tokens=64, model="m/x"))
    chat = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert chat["max_tokens"]["maximum"] == 77 and chat["model"]["enum"] == ["m/x"]


def test_a_program_summary_as_the_end_route_writes_it_fits_its_schema() -> None:
    """API review 2026-12-06: the schema listed three usage fields, the answer has the gRPC
    Usage message's four (reasoning_tokens), under additionalProperties: false."""
    from gateway.http_api import summary_json
    from ostinato.v1 import common_pb2

    schema = document(GatewayConfig())["components"]["schemas"]["ProgramSummary"]
    summary = common_pb2.ProgramSummary(program_id="p", tenant="t", calls_completed=2,
                                        usage=common_pb2.Usage(prompt_tokens=5,
                                                               reasoning_tokens=3))
    for written in (summary_json(summary), summary_json(common_pb2.ProgramSummary())):
        assert not list(Draft202012Validator(schema).iter_errors(written)), written
