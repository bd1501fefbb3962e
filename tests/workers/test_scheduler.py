"""The sim engine's SGLang-like scheduler, stepped in virtual time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.sim.cost_model import CostModel
from workers.sim.scheduler import EngineEvent, EngineParams, Req, SimEngineCore
from workers.sim.text import Decoder, FixedLengthDecoder

from .test_cost_model import TOY


def req(rid: str, prompt: list[int], out: int = 8, priority: int = 0, salt: str = "",
        stop: tuple[str, ...] = ()) -> Req:
    dec = Decoder(prompt, max_new_tokens=out, ignore_eos=True, stop=stop)
    return Req(rid=rid, prompt_ids=list(prompt), decoder=dec, priority=priority, salt=salt)


def engine(capacity: int = 100_000, **kw) -> SimEngineCore:  # type: ignore[no-untyped-def]
    return SimEngineCore(CostModel(TOY), EngineParams(max_total_tokens=capacity, **kw))


def run(core: SimEngineCore, arrivals: list[tuple[float, Req]]) -> dict[str, EngineEvent]:
    """Drives the core like the cluster simulator: arrivals and engine events in time order."""
    arrivals = sorted(arrivals, key=lambda a: a[0])
    done: dict[str, EngineEvent] = {}
    while arrivals or core.next_event_time() is not None:
        nxt = core.next_event_time()
        if arrivals and (nxt is None or arrivals[0][0] <= nxt):
            t, r = arrivals.pop(0)
            events = core.step(t)  # catch up to the arrival, then submit
            core.submit(r, t)
        else:
            events = core.step(nxt)  # type: ignore[arg-type]
        done.update({e.rid: e for e in events if e.finished})
    return done


def test_single_request_timing_is_the_sum_of_its_iterations() -> None:
    core = engine()
    prompt = list(range(100))
    done = run(core, [(0.0, req("a", prompt, out=3))])
    cost = CostModel(TOY)
    # prefill of 100 tokens samples token 1; two decode steps at contexts 101 and 102
    expected = cost.prefill_time([(0, 100)]) + cost.decode_time(1, 101) + cost.decode_time(1, 102)
    e = done["a"]
    assert e.e2e_latency == pytest.approx(expected, rel=1e-12)
    assert e.first_token_at == pytest.approx(cost.prefill_time([(0, 100)]))
    assert (e.prompt_tokens, e.completion_tokens, e.cached_tokens) == (100, 3, 0)
    assert e.finish_reason == {"type": "length", "length": 3}


def test_prefix_cache_hits_and_flush() -> None:
    core = engine()
    p = list(range(1000))
    half = p[:500] + [7] * 500
    done = run(core, [(0.0, req("a", p)), (1.0, req("b", p)), (2.0, req("c", half)),
                      (3.0, req("d", p, salt="other-tenant"))])
    assert done["a"].cached_tokens == 0
    assert done["b"].cached_tokens == 999  # all but the last token, which is recomputed
    assert done["c"].cached_tokens == 500
    assert done["d"].cached_tokens == 0  # another salt never shares a prefix
    assert done["b"].e2e_latency < done["a"].e2e_latency
    assert core.flush_cache()
    again = run(core, [(10.0, req("e", p))])
    assert again["e"].cached_tokens == 0


def test_high_priority_request_submitted_last_finishes_first() -> None:
    core = engine(max_running_requests=2)
    lows = [(0.001 * i, req(f"low{i}", [i, 1, 2, 3], out=200, priority=0)) for i in range(6)]
    high = (0.01, req("high", [9, 9, 9], out=20, priority=100))
    done = run(core, [*lows, high])
    assert all(done["high"].time < done[f"low{i}"].time for i in range(6))
    # without priority scheduling, the same arrivals serve it last
    core = engine(max_running_requests=2, enable_priority=False)
    lows = [(0.001 * i, req(f"low{i}", [i, 1, 2, 3], out=200)) for i in range(6)]
    done = run(core, [*lows, (0.01, req("high", [9, 9, 9], out=20, priority=100))])
    assert done["high"].time > max(done[f"low{i}"].time for i in range(4))


def test_small_priority_gap_does_not_preempt() -> None:
    core = engine(max_running_requests=1, preemption_threshold=10)
    done = run(core, [(0.0, req("low", [1, 2], out=50, priority=0)),
                      (0.001, req("mid", [3, 4], out=5, priority=5))])
    assert done["low"].time < done["mid"].time


def test_chunked_prefill_spreads_a_long_prompt_over_iterations() -> None:
    core = engine(chunked_prefill_size=256)
    run(core, [(0.0, req("a", list(range(1000)), out=1))])
    assert core.iterations == 4  # ceil(1000 / 256) prefill iterations; the last samples the token


def test_retraction_when_kv_runs_out_still_completes_everything() -> None:
    core = engine(capacity=600, max_running_requests=8)
    arrivals = [(0.0, req(f"r{i}", [i] * 50, out=120)) for i in range(6)]
    done = run(core, arrivals)
    assert len(done) == 6 and all(e.completion_tokens == 120 for e in done.values())
    assert core.cache.size + core.cache.reserved <= 600


def test_stop_string_and_abort() -> None:
    core = engine()
    r = req("a", [1, 2, 3], out=100)
    core.submit(r, 0.0)
    core.step(0.02)
    ev = core.abort("a", 0.02)
    assert ev is not None and ev.finish_reason["type"] == "abort"  # type: ignore[index]
    assert core.next_event_time() is None and core.cache.reserved == 0
    assert core.abort("nope", 0.03) is None


def test_oversized_prompt_is_rejected() -> None:
    with pytest.raises(ValueError, match="exceeds the KV pool"):
        engine(capacity=50).submit(req("a", list(range(60))), 0.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.5), st.integers(1, 300), st.integers(1, 60),
                          st.integers(0, 3)), min_size=1, max_size=12))
def test_fast_forward_matches_token_by_token_stepping(spec) -> None:  # type: ignore[no-untyped-def]
    def arrivals():  # type: ignore[no-untyped-def]
        return [(t, req(f"r{i}", [p % 7] * plen, out=out, priority=p))
                for i, (t, plen, out, p) in enumerate(spec)]

    slow = run(engine(max_running_requests=4), arrivals())
    fast = run(engine(max_running_requests=4, fast_forward=True), arrivals())
    assert slow.keys() == fast.keys()
    for rid in slow:
        assert fast[rid].time == pytest.approx(slow[rid].time, rel=1e-9, abs=1e-12)
        assert fast[rid].cached_tokens == slow[rid].cached_tokens


def test_lpm_serves_the_longest_cached_prefix_first() -> None:
    shared = list(range(500))
    for policy, first in (("lpm", "hit"), ("fcfs", "miss")):
        core = engine(max_running_requests=1, schedule_policy=policy)
        done = run(core, [(0.0, req("warm", shared, out=1)),
                          (0.001, req("blocker", [9] * 10, out=30)),
                          (0.002, req("miss", [7] * 500, out=1)),
                          (0.003, req("hit", [*shared, 1], out=1))])
        order = sorted(["hit", "miss"], key=lambda r: done[r].time)
        assert order[0] == first, policy


def test_zero_cost_mode_takes_no_simulated_time() -> None:
    core = SimEngineCore(CostModel(TOY, zero_cost=True), EngineParams(max_total_tokens=10_000))
    done = run(core, [(1.0, req("a", list(range(300)), out=50)), (1.0, req("b", [1, 2], out=5))])
    assert all(e.e2e_latency == 0.0 and e.time == 1.0 for e in done.values())
    assert done["a"].completion_tokens == 50


@pytest.mark.parametrize("bad", [{"schedule_policy": "random"}, {"max_total_tokens": 0}])
def test_invalid_engine_params(bad: dict) -> None:
    with pytest.raises(ValueError):
        EngineParams(**{"max_total_tokens": 100, **bad})


def test_admission_reserves_from_max_new_tokens_not_the_length_only_the_sim_knows() -> None:
    from workers.sim.text import FixedLengthDecoder

    def fixed(rid: str, base: int, max_new: int | None) -> Req:
        return Req(rid=rid, prompt_ids=list(range(base, base + 100)),
                   decoder=FixedLengthDecoder(10, base + 10_000, max_new_tokens=max_new))

    # Room for both prompts and outputs, but not for 30% of a 1000-token max_tokens as well:
    # like SGLang, the engine holds the second request back while the first runs.
    for max_new, together in ((None, True), (1000, False)):
        core = engine(capacity=400)
        core.submit(fixed("a", 0, max_new), 0.0)
        core.submit(fixed("b", 1000, max_new), 0.0)
        core.next_event_time()
        assert (core.num_running == 2) is together
    d = FixedLengthDecoder(10, 0, max_new_tokens=1000)
    d.advance(4)
    assert (d.remaining_upper_bound(), d.reserve_bound()) == (6, 996)


def test_full_key_is_built_once_per_output_length_and_follows_the_output() -> None:
    req = Req("r", [5, 6, 7], FixedLengthDecoder(4, 100), salt="a")
    key = req.full_key()
    assert tuple(key[1:]) == (5, 6, 7) and req.full_key() is key  # the same array, not rebuilt
    assert key.typecode == "Q" and key[0] >= 1 << 63  # packed; the salt token lies above ids
    req.decoder.advance(2)
    assert tuple(req.full_key()[1:]) == (5, 6, 7, 100, 101)
    req.decoder.advance(5)  # runs to its length
    assert tuple(req.full_key()[1:]) == (5, 6, 7, 100, 101, 102, 103)


def test_block_hashes_of_prompt_and_output_to_come_give_the_same_kv_events() -> None:
    """A caller that knows a FixedLengthDecoder's output may hand the engine the hashes of
    the prompt followed by it (the cluster simulator does): the engine then hashes nothing,
    and publishes what it publishes hashing the output itself."""
    from cache.block_hash import block_hashes

    def fixed(rid: str, base: int, hashes: bool) -> Req:
        prompt = list(range(base, base + 70))
        dec = FixedLengthDecoder(40, base + 10_000)
        known = block_hashes(prompt + list(dec.output()), 16, "t") if hashes else ()
        return Req(rid=rid, prompt_ids=prompt, decoder=dec, salt="t", block_hashes=known)

    published = []
    for hashes in (False, True):
        core = engine(fast_forward=True, stream_events=False)
        done = run(core, [(0.0, fixed("a", 0, hashes)), (0.01, fixed("b", 1000, hashes))])
        assert {e.rid: e.completion_tokens for e in done.values()} == {"a": 40, "b": 40}
        published.append(core.cache.take_events())
    assert published[0] == published[1] and published[0]


def test_fixed_length_output_is_built_once_and_keys_share_it() -> None:
    d = FixedLengthDecoder(5, 100)
    whole = d.output()
    assert tuple(whole) == (100, 101, 102, 103, 104) and d.output() is whole
    d.advance(3)
    assert tuple(d.output_key()) == (100, 101, 102)
    d.advance(2)
    assert d.output_key() is whole
