"""Every RPC and every HTTP route of a live mesh with auth on refuses a missing and a wrong
API key (UNAUTHENTICATED / 401), except what is documented as open: the standard gRPC
health and reflection services, and GET /health, /openapi.json. RPCs are enumerated by
server reflection, routes from the aiohttp router. The gateway's Prometheus metrics (tenant
labels) are on its internal metrics_port, never on the public HTTP port. API keys are kept only as
SHA-256 digests and compared with hmac.compare_digest against every known digest.

The planner and the workers have no keys: they are internal (docs/deploy.md: only the
gateway is reachable from outside; their NetworkPolicies admit the gateway, planner and
workers); the test checks they bind loopback by default."""

from __future__ import annotations

import hmac
import http.client
import re
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from cache import tenancy
from gateway.auth import ApiKeyAuthenticator
from gateway.openapi import OPEN_ROUTES
from ostinato.config import GatewayConfig, PlannerConfig, WorkerConfig, load_mesh_config
from ostinato.mesh import Mesh
from tests.gateway.test_openapi import router_routes

KEY = "sec-key-0123456789"
OPEN_SERVICES = {health.SERVICE_NAME, reflection.SERVICE_NAME}
NO_KEY: tuple[tuple[str, str], ...] = ()
WRONG_KEYS = [(("authorization", "Bearer sec-key-0123456780"),), (("x-api-key", "wrong-key-000"),),
              (("authorization", "Basic " + KEY),)]


@pytest.fixture(scope="module")
def secured() -> Iterator[Mesh]:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 1, "gateway": {"api_keys": {KEY: "sec"}, "allow_anonymous": False,
                                  "semantic_cache": False},
    })
    mesh = Mesh(cfg, ephemeral_ports=True)
    mesh.start()
    yield mesh
    mesh.close()


def _methods(address: str) -> dict[str, list[tuple[str, bool]]]:
    """Service -> [(method, server_streaming)], by the server's reflection."""
    with grpc.insecure_channel(address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(db)
        out = {}
        for name in db.get_services():
            service = pool.FindServiceByName(name)
            out[name] = [(m.name, m.server_streaming) for m in service.methods]
        return out


def test_every_gateway_rpc_refuses_a_missing_and_a_wrong_key(secured: Mesh) -> None:
    methods = _methods(secured.endpoints.gateway)
    assert set(methods) == {"ostinato.v1.Gateway", *OPEN_SERVICES}, methods
    checked = 0
    with grpc.insecure_channel(secured.endpoints.gateway) as channel:
        for service, rpcs in methods.items():
            if service in OPEN_SERVICES:
                continue
            for name, streams in rpcs:
                path = f"/{service}/{name}"
                for metadata in (NO_KEY, *WRONG_KEYS):
                    kind = channel.unary_stream if streams else channel.unary_unary
                    rpc = kind(path, request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
                    with pytest.raises(grpc.RpcError) as refused:
                        result = rpc(b"", metadata=metadata, timeout=20)
                        if streams:
                            list(result)
                    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (
                        path, metadata, refused.value.details())
                    checked += 1
    assert checked == 4 * len(methods["ostinato.v1.Gateway"]) >= 20


def test_the_right_key_is_let_through(secured: Mesh) -> None:
    with grpc.insecure_channel(secured.endpoints.gateway) as channel:
        stats = channel.unary_unary("/ostinato.v1.Gateway/CacheStats",
                                    request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        stats(b"", metadata=(("authorization", f"Bearer {KEY}"),), timeout=20)


def _http(mesh: Mesh, method: str, path: str, headers: dict[str, str]) -> int:
    host, port = mesh.endpoints.gateway_http.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        body = b"{}" if method == "POST" else None
        conn.request(method, path, body=body, headers={"Content-Type": "application/json",
                                                       **headers})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_every_http_route_refuses_a_missing_and_a_wrong_key(secured: Mesh) -> None:
    routes = router_routes()
    assert {p for _, p in routes} >= OPEN_ROUTES
    for method, path in sorted(routes):
        concrete = re.sub(r"\{[^}]*\}", "some-id", path)  # {program_id}, {response_id}, ...
        for headers in ({}, {"Authorization": "Bearer sec-key-0123456780"},
                        {"x-api-key": "wrong-key-000"}, {"Authorization": KEY}):
            status = _http(secured, method, concrete, headers)
            if path in OPEN_ROUTES:
                assert status == 200, (method, path, headers, status)
            else:
                assert status == 401, (method, path, headers, status)


def test_metrics_are_on_the_internal_metrics_port_not_the_public_one(secured: Mesh) -> None:
    assert _http(secured, "GET", "/metrics", {}) == 404
    metrics = secured.endpoints.metrics["gateway"]
    assert metrics not in (secured.endpoints.gateway, secured.endpoints.gateway_http)
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as resp:
        assert resp.status == 200 and b"ostinato_tenancy_stale" in resp.read()


def test_internal_services_bind_loopback_by_default() -> None:
    assert GatewayConfig().host == PlannerConfig().host == WorkerConfig().host == "127.0.0.1"


def test_keys_are_kept_as_digests_and_compared_in_constant_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {KEY: "sec", "other-key-0123": "other", "third-key-0123": "third"}
    snapshot = ApiKeyAuthenticator.snapshot_of(keys)
    assert set(snapshot.keys) == {tenancy.key_digest(k) for k in keys}
    assert not set(keys) & set(snapshot.keys)  # no key itself is kept
    compared: list[tuple[str, str]] = []
    compare = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(tenancy.hmac, "compare_digest", spy)
    auth = ApiKeyAuthenticator(lambda: snapshot, allow_anonymous=False)
    for key, tenant in ((KEY, "sec"), ("not-a-key-at-all", None)):
        compared.clear()
        if tenant is None:
            with pytest.raises(Exception, match="invalid API key"):
                auth.tenant_for(key)
        else:
            assert auth.tenant_for(key) == tenant
        # every known digest compared, whether or not one matches (no early exit)
        assert len(compared) == len(keys)
        assert {b for _, b in compared} == {tenancy.key_digest(key)}
