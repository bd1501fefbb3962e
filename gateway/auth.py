"""API key -> tenant. Keys are compared by SHA-256 digest; the tenant is never client-chosen.

The key directory lives in Redis (cache/tenant_directory.py); the authenticator reads the
gateway's current snapshot of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from cache.tenancy import ANONYMOUS_TENANT, Tenancy, key_digest

DEFAULT_TENANT = ANONYMOUS_TENANT  # (cache/tenancy.py)


class Unauthenticated(Exception):
    pass


def api_key_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if isinstance(value, bytes):
            continue
        if key == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthenticated("the authorization header (gRPC: metadata) must be 'Bearer <api key>'")
        if key == "x-api-key":
            return value
    return None


class ApiKeyAuthenticator:
    def __init__(self, tenancy: Callable[[], Tenancy], allow_anonymous: bool) -> None:
        self._tenancy = tenancy
        self._allow_anonymous = allow_anonymous

    @staticmethod
    def snapshot_of(keys: Mapping[str, str]) -> Tenancy:
        return Tenancy(tenants=frozenset(keys.values()),
                       keys={key_digest(k): t for k, t in keys.items()})

    @classmethod
    def from_keys(cls, keys: Mapping[str, str], allow_anonymous: bool) -> ApiKeyAuthenticator:
        snapshot = cls.snapshot_of(keys)
        return cls(lambda: snapshot, allow_anonymous)

    def generation_of(self, tenant: str) -> str:
        """The tenant's generation (cache/tenant_directory.py; "" for none)."""
        return self._tenancy().generation_of(tenant)

    def tenant_for(self, api_key: str | None, *, any_key_is_anonymous: bool = False) -> str:
        """The key's tenant; in open mode (`allow_anonymous`) a caller without a key is
        tenant `default`. `any_key_is_anonymous` (the OpenAI-compatible HTTP API): in open
        mode a key the mesh does not know is tenant `default` too, since OpenAI clients
        always send one (the `openai` library will not start without it), as vLLM and SGLang
        take any key when none is configured. A known key always names its tenant."""
        if api_key is None:
            if self._allow_anonymous:
                return DEFAULT_TENANT
            raise Unauthenticated("an API key is required")
        tenant = self._tenancy().tenant_for(api_key)
        if tenant == DEFAULT_TENANT:  # stored before keys were refused it (an upgrade)
            raise Unauthenticated(f"this API key names tenant {DEFAULT_TENANT!r}, the tenant "
                                  "of callers without a key in open mode, which no key may "
                                  "name: give it a tenant of another name")
        if tenant is None:
            if self._allow_anonymous and any_key_is_anonymous:
                return DEFAULT_TENANT
            raise Unauthenticated("invalid API key: no tenant has it (an operator creates "
                                  "one with `ostinato tenants create NAME`, which prints its "
                                  "key; `ostinato up --no-auth` runs a mesh without keys)")
        return tenant
