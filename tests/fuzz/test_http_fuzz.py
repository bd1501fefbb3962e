"""Schemathesis over the HTTP API of a live mesh, from the OpenAPI document the gateway serves
at /openapi.json: requests the document allows (positive) and ones it forbids (negative),
for every operation. No 500, every response conforms to the document (status, content
type, headers, body schema), forbidden input is refused with a 4xx, and afterwards nothing
is open, queued or running at the planner once the programs the fuzzer started are ended.

Bounded and deterministic: fixed max_examples, derandomize=True, no example database."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.openapi import document
from ostinato.mesh import Mesh
from tests.fuzz.conftest import FUZZ_KEY, nothing_left, planner_state

# Both: the document's security schemes make schemathesis send a generated x-api-key too.
AUTH = {"Authorization": f"Bearer {FUZZ_KEY}", "x-api-key": FUZZ_KEY}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
FUZZ = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module")
def base_url(fuzz_mesh: Mesh) -> str:
    return f"http://{fuzz_mesh.endpoints.gateway_http}"


@pytest.fixture(scope="module")
def schema(base_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def test_the_served_document_is_the_gateways(base_url: str, fuzz_mesh: Mesh) -> None:
    with urllib.request.urlopen(f"{base_url}/openapi.json", timeout=10) as resp:
        assert json.loads(resp.read()) == json.loads(json.dumps(
            document(fuzz_mesh.config.gateway)))


def _end_programs(base_url: str, session: requests.Session, program_ids: set[str]) -> None:
    for program_id in program_ids:
        resp = session.post(f"{base_url}/v1/programs/{program_id}/end", headers=AUTH, timeout=30)
        assert resp.status_code == 200, resp.text


def _program_of(response: schemathesis.Response) -> str | None:
    """The program a successful response started or ran in (the fuzzer ends it)."""
    if response.status_code != 200:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    if content_type.startswith("text/event-stream"):
        events = [json.loads(line[6:]) for line in response.text.splitlines()
                  if line.startswith("data: {")]
        return next((e["ostinato"]["program_id"] for e in events if "ostinato" in e), None)
    if not content_type.startswith("application/json"):
        return None
    body = response.json()
    return body.get("program_id") or (body.get("ostinato") or {}).get("program_id")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation(schema: schemathesis.BaseSchema, base_url: str, fuzz_mesh: Mesh,
                         session: requests.Session, mode: GenerationMode) -> None:
    started: set[str] = set()
    checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])

    @FUZZ
    @given(case=schema.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, session=session, headers=AUTH, timeout=30)
        program = _program_of(response)
        if program:
            started.add(program)
        case.validate_response(response, checks=checks)

    try:
        check()
    finally:
        _end_programs(base_url, session, started)
    # Still serving, and nothing of the fuzzing left behind at the planner.
    ok = session.post(f"{base_url}/v1/chat/completions", headers=AUTH, timeout=30, json={
        "messages": [{"role": "user", "content": "still there?"}], "max_tokens": 2})
    assert ok.status_code == 200, ok.text
    _end_programs(base_url, session, {ok.json()["ostinato"]["program_id"]})
    assert planner_state(fuzz_mesh) == nothing_left(fuzz_mesh)
