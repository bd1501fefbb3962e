"""Program ids inside the mesh: the tenant's name, then the client's id."""

from __future__ import annotations

import pytest

from cache.tenancy import Tenancy
from gateway.auth import ApiKeyAuthenticator
from gateway.core import GatewayCore
from gateway.mesh_run import cache_salt
from ostinato.gateway_config import GatewayConfig
from ostinato.program_ids import client_id, client_text, inner_id, namespace_of


@pytest.mark.parametrize(("tenant", "program_id", "inner"), [
    ("acme", "p1", "acme/p1"),
    ("globex", "p1", "globex/p1"),  # the same client id: another program
    ("default", "0f3a", "default/0f3a"),
    ("t-1_x", "a:b.c", "t-1_x/a:b.c"),
])
def test_inner_ids_name_one_tenants_program_and_give_the_clients_back(
        tenant: str, program_id: str, inner: str) -> None:
    assert inner_id(tenant, program_id) == inner
    assert client_id(inner) == program_id


def test_a_generation_makes_another_namespace() -> None:
    """Security review 2026-12-05 F3: a tenant created again under its name (another
    generation) names other programs and another KV-cache salt; messages read as before."""
    old, new = inner_id("acme", "p1", "0a1b"), inner_id("acme", "p1", "9f8e")
    assert old == "acme#0a1b/p1" and old != new != inner_id("acme", "p1")
    assert client_id(new) == "p1"
    assert namespace_of(new, "acme") == "acme#9f8e"
    assert cache_salt(namespace_of(new, "acme")) != cache_salt(namespace_of(old, "acme"))
    assert namespace_of("acme/p1", "acme") == "acme"
    assert namespace_of("p1", "acme") == namespace_of("globex#1/p1", "acme") == "acme"
    assert client_text("acme", f"no program '{new}', nor \"acme/p2\"") == \
        "no program 'p1', nor \"p2\""


def test_the_gateway_names_programs_in_the_tenants_current_generation() -> None:
    snapshots = [Tenancy(tenants=frozenset({"acme"}), generations={"acme": "0a1b"})]
    auth = ApiKeyAuthenticator(lambda: snapshots[-1], allow_anonymous=False)
    core = GatewayCore(GatewayConfig(), auth, None, None)  # type: ignore[arg-type]
    assert core.program("acme", "p1") == "acme#0a1b/p1"
    snapshots.append(Tenancy(tenants=frozenset({"acme"}), generations={"acme": "9f8e"}))
    assert core.program("acme", "p1") == "acme#9f8e/p1"  # revoked, created again
