"""Fair-share weights: a tenant record's weight wins; a record that names none (a configured
key's tenant, one created without --weight) takes planner.tenant_weights', else 1. Live
review 2026-12-07 F2: every configured key's seed wrote weight 1, which overrode the
configured weights of every tenant but the anonymous one (A/B completions 1.00 at 3:1)."""

from __future__ import annotations

import pytest

from cache.tenancy import Tenancy, TenantLimits
from cache.tenant_directory import TenantDirectory
from tests.cache.conftest import tenant_name


@pytest.mark.parametrize(("record", "configured", "weight"), [
    (None, {}, 1.0),  # no record, nothing configured: 1
    (None, {"t": 3.0}, 3.0),  # planner.tenant_weights
    (TenantLimits(), {"t": 3.0}, 3.0),  # a record naming no weight: the configured one
    (TenantLimits(rpm=5), {}, 1.0),
    (TenantLimits(weight=0.5), {"t": 3.0}, 0.5),  # a record's weight wins
    (TenantLimits(weight=1.0), {"t": 3.0}, 1.0),  # even the default's value, named
])
def test_weight_of_follows_one_rule(record: TenantLimits | None, configured: dict[str, float],
                                    weight: float) -> None:
    tenancy = Tenancy(limits={} if record is None else {"t": record})
    assert tenancy.weight_of("t", configured) == weight
    assert tenancy.weights(configured).get("t", 1.0) == weight  # the planner's core's


async def test_a_configured_keys_tenant_takes_the_configured_weight(
        directory: TenantDirectory) -> None:
    gold, plain = tenant_name(), tenant_name()
    await directory.seed({f"key-{gold}": gold, f"key-{plain}": plain})
    tenancy = await directory.load()
    assert tenancy.limits_of(gold).weight is None  # the seed names no weight
    assert tenancy.weights({gold: 3.0}) == {gold: 3.0}
    assert [tenancy.weight_of(t, {gold: 3.0}) for t in (gold, plain)] == [3.0, 1.0]
    await directory.update_tenant(gold, weight=0.5)  # the operator's weight wins from now
    assert (await directory.load()).weight_of(gold, {gold: 3.0}) == 0.5


async def test_created_without_a_weight_names_none_and_update_keeps_it(
        directory: TenantDirectory) -> None:
    tenant = tenant_name()
    await directory.create_tenant(tenant, TenantLimits(rpm=10))
    await directory.update_tenant(tenant, tpm=1000)
    limits = (await directory.load()).limits_of(tenant)
    assert (limits.weight, limits.rpm, limits.tpm) == (None, 10, 1000)
