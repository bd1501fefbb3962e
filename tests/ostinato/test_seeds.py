"""A seed's one 64-bit pattern (ostinato/seeds.py): clients' int64 or uint64 in, the proto's
uint64, SGLang's int64 out; an int64 seed reaches the engine unchanged."""

from __future__ import annotations

import pytest

from ostinato.seeds import SEED_MAX, SEED_MIN, engine_seed, proto_seed


@pytest.mark.parametrize(("given", "proto", "engine"), [
    (0, 0, 0), (42, 42, 42), ((1 << 63) - 1, (1 << 63) - 1, (1 << 63) - 1),
    (1 << 63, 1 << 63, -(1 << 63)), (SEED_MAX, SEED_MAX, -1), (-1, SEED_MAX, -1),
    (SEED_MIN, 1 << 63, SEED_MIN),
])
def test_one_pattern_per_seed(given: int, proto: int, engine: int) -> None:
    assert proto_seed(given) == proto and engine_seed(proto) == engine


@pytest.mark.parametrize("seed", [-3, 0, 7, SEED_MIN, (1 << 63) - 1])
def test_an_int64_seed_reaches_the_engine_unchanged(seed: int) -> None:
    assert engine_seed(proto_seed(seed)) == seed


@pytest.mark.parametrize("seed", [SEED_MAX + 1, SEED_MIN - 1, 1.0, True, "1"])
def test_past_64_bits_or_not_a_whole_number_refused(seed: object) -> None:
    with pytest.raises(ValueError, match=f"seed must be a whole number from {SEED_MIN} to "
                                         f"{SEED_MAX}, got"):
        proto_seed(seed)  # type: ignore[arg-type]
