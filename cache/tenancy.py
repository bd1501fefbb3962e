"""The mesh's tenancy data as one immutable snapshot: tenants, API-key digests, shared prefixes.

Pure: the gateway loads a snapshot from Redis (cache/tenant_directory.py) and swaps it in
whole, so a request sees one consistent version. API keys are known only by SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

# The tenant of callers without a key in open mode (`ostinato up --no-auth`): no tenant of
# the directory may take the name, or it would share its programs, responses and caches
# with every anonymous caller.
ANONYMOUS_TENANT = "default"


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def chatml_system_prefix(system_prompt: str) -> str:
    """The rendered-prompt prefix of a conversation opening with this system prompt
    (gateway/calls.render_prompt's ChatML), for declaring a shared system prompt."""
    return f"<|im_start|>system\n{system_prompt}<|im_end|>\n"


# A fair-share weight's range: tenants' weights at most 1e12 apart, so that neither a
# tenant's fraction of a budget (w / sum of weights) underflows to 0 nor its virtual time
# (service / w) overflows (the planner's planner/core/fair_share.py and tenants.py).
MIN_WEIGHT = 1e-6
MAX_WEIGHT = 1e6


def check_weight(weight: float) -> float:
    """A fair-share weight: a positive number from MIN_WEIGHT to MAX_WEIGHT (a tenant's
    record, `ostinato tenants --weight`, the planner's configured planner.tenant_weights
    and its core's weights)."""
    if not (math.isfinite(weight) and MIN_WEIGHT <= weight <= MAX_WEIGHT):  # (nan too)
        raise ValueError(f"a tenant's weight must be a positive number from {MIN_WEIGHT:g} "
                         f"to {MAX_WEIGHT:g}, got {weight}")
    return weight


@dataclass(frozen=True)
class TenantLimits:
    """A tenant's record: fair-share weight and quotas (0: no limit). A record that names no
    weight (None: a configured key's tenant, or one created without `--weight`) has
    `planner.tenant_weights`' weight, else 1 (`Tenancy.weight_of`)."""

    weight: float | None = None
    rpm: int = 0  # calls per minute
    tpm: int = 0  # tokens (prompt + completion) per minute
    # programs open at once; 0: the gateways' gateway.max_programs_per_tenant;
    # UNLIMITED_PROGRAMS: none, whatever that is (`program_limit`)
    max_programs: int = 0

    def __post_init__(self) -> None:
        if self.weight is not None:
            check_weight(self.weight)
        if min(self.rpm, self.tpm) < 0 or self.max_programs < UNLIMITED_PROGRAMS:
            raise ValueError("rpm and tpm must be >= 0 (0: no limit), max_programs >= 0 "
                             f"(0: the gateways' default) or {UNLIMITED_PROGRAMS} (no limit)")

    def program_limit(self, default: int) -> int:
        """Programs the tenant may hold open at once (0: no limit): its record's, else
        `default` (a gateway's max_programs_per_tenant; 0 for the programs its calls open)."""
        if self.max_programs == UNLIMITED_PROGRAMS:
            return 0
        return self.max_programs or default


UNLIMITED_PROGRAMS = -1  # a record's max_programs: no limit (`ostinato tenants --max-programs unlimited`)


NO_LIMITS = TenantLimits()


@dataclass(frozen=True)
class Tenancy:
    tenants: frozenset[str] = frozenset()
    keys: Mapping[str, str] = field(default_factory=dict)  # sha256(key) -> tenant
    shared_prefixes: Mapping[str, str] = field(default_factory=dict)  # name -> prompt prefix
    limits: Mapping[str, TenantLimits] = field(default_factory=dict)  # tenant -> its record
    # tenant -> the random id of this incarnation of it (cache/tenant_directory.py): a tenant
    # revoked and created again under its name gets a new one
    generations: Mapping[str, str] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()  # digests of keys revoked with `ostinato tenants`

    def limits_of(self, tenant: str) -> TenantLimits:
        return self.limits.get(tenant, NO_LIMITS)

    def weight_of(self, tenant: str, configured: Mapping[str, float]) -> float:
        """The tenant's fair-share weight: its record's, else `planner.tenant_weights`'
        (`configured`), else 1 (the planner's and the gateways' rule)."""
        weight = self.limits_of(tenant).weight
        return weight if weight is not None else configured.get(tenant, 1.0)

    def weights(self, configured: Mapping[str, float]) -> dict[str, float]:
        """Every weight `weight_of` gives other than 1 by default: the configured ones and
        the records' (for the planner's core)."""
        return {**configured, **{t: limits.weight for t, limits in self.limits.items()
                                 if limits.weight is not None}}

    def generation_of(self, tenant: str) -> str:
        """The tenant's generation ("" for a record written before they were)."""
        return self.generations.get(tenant, "")

    def tenant_for(self, api_key: str) -> str | None:
        """The key's tenant, or None; digests are compared in constant time. A key that is not
        valid Unicode (a lone surrogate escape of undecodable header bytes) is no key's: None,
        so its caller is unauthenticated (a 401), not a bad request."""
        try:
            digest = key_digest(api_key)
        except UnicodeEncodeError:
            return None
        found = None
        for known, tenant in self.keys.items():
            if hmac.compare_digest(known, digest):
                found = tenant
        return found

    def shared_bytes(self, prompt: str) -> int:
        """UTF-8 length of the longest declared shared prefix the prompt starts with (0: none)."""
        best = 0
        for prefix in self.shared_prefixes.values():
            if prefix and prompt.startswith(prefix):
                best = max(best, len(prefix.encode("utf-8", "surrogatepass")))
        return best
