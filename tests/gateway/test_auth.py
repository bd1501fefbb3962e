"""API keys map to tenants; bad keys are refused; the tenant never comes from the client."""

from __future__ import annotations

import pytest

from gateway.auth import ApiKeyAuthenticator, Unauthenticated, api_key_from_metadata


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((), None),
        ((("authorization", "Bearer k1"),), "k1"),
        ((("authorization", "bearer  k1 "),), "k1"),
        ((("x-api-key", "k2"),), "k2"),
        ((("x-tenant", "acme"),), None),
    ],
)
def test_key_from_metadata(metadata: tuple, expected: str | None) -> None:
    assert api_key_from_metadata(metadata) == expected


def test_malformed_authorization_is_refused() -> None:
    with pytest.raises(Unauthenticated):
        api_key_from_metadata((("authorization", "Basic abc"),))


def test_tenants() -> None:
    auth = ApiKeyAuthenticator.from_keys({"k1": "acme"}, allow_anonymous=True)
    assert auth.tenant_for("k1") == "acme"
    assert auth.tenant_for(None) == "default"
    with pytest.raises(Unauthenticated, match="invalid API key"):  # gRPC: a key sent is checked
        auth.tenant_for("k2")
    # the OpenAI-compatible API in open mode: any key an OpenAI client sends
    assert auth.tenant_for("k2", any_key_is_anonymous=True) == "default"
    assert auth.tenant_for("k1", any_key_is_anonymous=True) == "acme"
    strict = ApiKeyAuthenticator.from_keys({"k1": "acme"}, allow_anonymous=False)
    with pytest.raises(Unauthenticated, match="required"):
        strict.tenant_for(None)
    # and says where a key comes from (a new user's placeholder key: the README walk)
    with pytest.raises(Unauthenticated, match=r"invalid API key: .*`ostinato tenants create"):
        strict.tenant_for("k2", any_key_is_anonymous=True)


def test_a_key_that_is_not_unicode_is_unauthenticated() -> None:
    """Security review 2026-12-05 F5: undecodable header bytes (a lone surrogate escape, as
    aiohttp hands a latin-1 key over) are an invalid key (401), not a bad request (400)."""
    key = b"ost-\xe9\xe9".decode("utf-8", "surrogateescape")
    closed = ApiKeyAuthenticator.from_keys({"k1-long-key": "acme"}, allow_anonymous=False)
    with pytest.raises(Unauthenticated, match="invalid API key"):
        closed.tenant_for(key)
    opened = ApiKeyAuthenticator.from_keys({"k1-long-key": "acme"}, allow_anonymous=True)
    assert opened.tenant_for(key, any_key_is_anonymous=True) == "default"
