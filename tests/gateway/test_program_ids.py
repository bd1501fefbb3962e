"""Program ids inside the mesh: the tenant's name, then the client's id."""

from __future__ import annotations

import pytest

from gateway.program_ids import client_id, inner_id


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
