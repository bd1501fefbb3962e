"""A call's sampling seed across the mesh: clients may give OpenAI's int64 or any uint64;
the proto carries it as a uint64 (a negative seed modulo 2**64); SGLang takes an int64
(`sampling_seed` outside [-2**63, 2**63 - 1] is a 400), so the worker sends the same 64 bits
as a signed number. Each seed has one 64-bit pattern: the same answer for the same seed."""

from __future__ import annotations

SEED_MIN = -(1 << 63)  # OpenAI's int64
SEED_MAX = (1 << 64) - 1  # the proto's uint64


def proto_seed(seed: int) -> int:
    """The uint64 the proto carries for a whole number in [SEED_MIN, SEED_MAX]; a ValueError
    naming the range for anything else."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not SEED_MIN <= seed <= SEED_MAX:
        raise ValueError(f"seed must be a whole number from {SEED_MIN} to {SEED_MAX}, "
                         f"got {seed!r}")
    return seed % (1 << 64)


def engine_seed(seed: int) -> int:
    """SGLang's `sampling_seed` (int64) for a proto seed: the same 64 bits, signed."""
    return seed - (1 << 64) if seed >= 1 << 63 else seed
