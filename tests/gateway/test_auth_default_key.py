"""No API key may name tenant 'default' (open mode's callers without a key): a key stored for
it before the directory refused one (a gateway's seed of `gateway.api_keys: {KEY: default}`,
which the config accepted then) is still in Redis after an upgrade, and must not
authenticate as that tenant, which every keyless caller in open mode shares (review
2026-12-07)."""

from __future__ import annotations

import pytest

from cache.tenancy import ANONYMOUS_TENANT, Tenancy, key_digest
from gateway.auth import ApiKeyAuthenticator, Unauthenticated

KEY = "sk-owner-of-default"


@pytest.mark.parametrize("open_mode", [False, True])
def test_a_key_stored_for_the_anonymous_tenant_is_refused(open_mode: bool) -> None:
    stored = Tenancy(tenants=frozenset({ANONYMOUS_TENANT, "acme"}),
                     keys={key_digest(KEY): ANONYMOUS_TENANT, key_digest("sk-acme-key"): "acme"})
    auth = ApiKeyAuthenticator(lambda: stored, allow_anonymous=open_mode)
    with pytest.raises(Unauthenticated, match="no key may name"):
        auth.tenant_for(KEY)
    assert auth.tenant_for("sk-acme-key") == "acme"
