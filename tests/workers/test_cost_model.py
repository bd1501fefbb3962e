"""The roofline cost model against hand-computed iteration times."""

from __future__ import annotations

import pytest

from workers.sim.cost_model import CostModel, Profile, builtin_profiles, load_profile

# Round numbers so the expected times can be checked by hand.
TOY = Profile(name="toy", params=1e9, layers=10, hidden=1000, kv_heads=2, head_dim=50,
              bytes_per_param=2, gpus=1, peak_flops=1e15, hbm_bandwidth=1e12, hbm_bytes=10e9,
              flops_eff=0.5, bandwidth_eff=0.5, iteration_overhead_s=0.001)
# flop rate 5e14/s, byte rate 5e11/s, weights 2e9 B, KV 2*10*2*50*2 = 4000 B/token


def test_toy_profile_derived_values() -> None:
    assert TOY.kv_bytes_per_token == 4000
    assert TOY.kv_capacity_tokens == int((10e9 * 0.88 - 2e9) / 4000) == 1_700_000


@pytest.mark.parametrize(
    ("batch", "context", "expected_s"),
    [
        # memory bound: (2e9 + 4000*1000) B / 5e11 = 4.008 ms, + 1 ms overhead
        (1, 1000, 0.001 + (2e9 + 4e6) / 5e11),
        # 64 requests, 64k context: bytes (2e9 + 2.56e8) / 5e11 = 4.512 ms; FLOPs 1.3056e11 -> 0.26 ms
        (64, 64_000, 0.001 + max((2 * 1e9 * 64 + 4 * 10 * 1000 * 64_000) / 5e14,
                                 (2e9 + 4000 * 64_000) / 5e11)),
    ],
)
def test_decode_iteration(batch: int, context: int, expected_s: float) -> None:
    assert CostModel(TOY).decode_time(batch, context) == pytest.approx(expected_s, rel=1e-12)


def test_decode_64_is_still_memory_bound_by_hand() -> None:
    assert CostModel(TOY).decode_time(64, 64_000) == pytest.approx(0.001 + 0.004512, rel=1e-9)


def test_prefill_iteration_by_hand() -> None:
    # 1000 new tokens after 500 cached: FLOPs 2e9*1000 + 4*10*1000*(1000*500 + 1000*1001/2)
    flops = 2e12 + 4e4 * (500_000 + 500_500)
    nbytes = 2e9 + 4000 * 1500
    expected = 0.001 + max(flops / 5e14, nbytes / 5e11)
    assert CostModel(TOY).prefill_time([(500, 1000)]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.001 + 0.00408004, rel=1e-6)  # compute bound: 4.08 ms


def test_zero_cost_and_builtin_profiles() -> None:
    assert CostModel(TOY, zero_cost=True).prefill_time([(0, 10_000)]) == 0.0
    assert {"h100-llama3.1-8b", "h100-llama3.1-70b-tp4"} <= set(builtin_profiles())
    p8 = load_profile("h100-llama3.1-8b")
    assert p8.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2  # 128 KiB per token
    # one decode step at batch 1 is memory bound: ~16 GB of weights over ~2.7 TB/s
    assert 0.005 < CostModel(p8).decode_time(1, 1000) < 0.010
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("tpu-v9-mystery")


def test_8b_prefill_matches_the_published_sglang_figure() -> None:
    """sglang PR #1060: Llama-3.1-8B-Instruct on H100, random 8192-token prompts: 27,670 tok/s."""
    cost = CostModel(load_profile("h100-llama3.1-8b"))
    assert 8192 / cost.prefill_time([(0, 8192)]) == pytest.approx(27_670, rel=0.02)


@pytest.mark.parametrize("zero_cost", [False, True])
def test_decode_ends_are_the_running_sum_of_decode_times(zero_cost: bool) -> None:
    cost = CostModel(TOY, zero_cost=zero_cost)
    for batch, context, steps in [(1, 10, 1), (64, 64_000, 50), (300, 1_000_000, 7)]:
        t, expected = 2.5, []
        for j in range(steps):
            t += cost.decode_time(batch, context + j * batch)
            expected.append(t)
        assert cost.decode_ends(2.5, batch, context, steps) == expected  # the same floats
