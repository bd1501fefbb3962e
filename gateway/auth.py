"""API key -> tenant. Keys are compared by SHA-256 digest; the tenant is never client-chosen."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

DEFAULT_TENANT = "default"


class Unauthenticated(Exception):
    pass


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def api_key_from_metadata(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if isinstance(value, bytes):
            continue
        if key == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthenticated("authorization metadata must be 'Bearer <api key>'")
        if key == "x-api-key":
            return value
    return None


class ApiKeyAuthenticator:
    def __init__(self, keys: Mapping[str, str], allow_anonymous: bool) -> None:
        self._by_digest = {key_digest(k): tenant for k, tenant in keys.items()}
        self._allow_anonymous = allow_anonymous

    def tenant_for(self, api_key: str | None) -> str:
        if api_key is None:
            if self._allow_anonymous:
                return DEFAULT_TENANT
            raise Unauthenticated("an API key is required")
        digest = key_digest(api_key)
        for known, tenant in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return tenant
        raise Unauthenticated("invalid API key")
