"""The cluster simulator on tiny, hand-checkable cases; results; determinism of a sweep."""

from __future__ import annotations

import itertools
import json

import pytest

from bench.cluster import ClusterConfig, ClusterSim
from bench.programs import generate
from bench.results import capacity, percentile
from bench.spec import SpecError, parse_spec
from bench.sweep import SweepConfig, run_sweep, warm_up, write_results
from cache.block_hash import DEFAULT_BLOCK_SIZE, prefix_block_hashes
from workers.sim.cost_model import CostModel, load_profile

PROFILE = load_profile("h100-llama3.1-8b")


def two_call_spec(programs: int = 1, rate: float = 1.0, think: float = 0.5) -> dict:
    return {"version": 1, "seed": 3, "programs": programs,
            "arrival": {"process": "uniform", "rate": rate},
            "classes": [{"name": "c", "shape": "chain", "calls": 2, "first_prompt_tokens": 100,
                         "step_prompt_tokens": 20, "output_tokens": 3, "think_time_s": think}]}


def test_one_engine_one_program_timeline_is_the_sum_of_its_parts() -> None:
    spec = parse_spec(two_call_spec())
    (plan,) = generate(spec)
    run = ClusterSim([plan], "fcfs+round_robin", PROFILE, ClusterConfig(engines=1)).run()
    cost = CostModel(PROFILE)
    first, second = run.calls
    # call 0: prefill 100 tokens (samples token 1), decode 2 more at contexts 101, 102
    t0 = cost.prefill_time([(0, 100)]) + cost.decode_time(1, 101) + cost.decode_time(1, 102)
    assert first.finished - first.ready == pytest.approx(t0, rel=1e-9)
    assert first.cached_tokens == 0 and first.prompt_tokens == 100
    # call 1 starts after 0.5 s of think time; its prompt is call 0's prompt + output + 20 new
    assert second.ready == pytest.approx(first.finished + 0.5)
    assert second.prompt_tokens == 123
    # the radix cache holds the prompt and all 3 output tokens (SGLang's cache_finished_req
    # leaves out the last output token, which has no KV yet: the sim is one token generous)
    assert second.cached_tokens == 103
    t1 = (cost.prefill_time([(103, 20)]) + cost.decode_time(1, 124) + cost.decode_time(1, 125))
    assert second.finished - second.ready == pytest.approx(t1, rel=1e-9)
    (outcome,) = run.outcomes
    assert outcome.finished == pytest.approx(plan.arrival + t0 + 0.5 + t1)


def test_two_programs_on_one_engine_and_a_budget_of_one_queue_in_the_planner() -> None:
    spec = parse_spec(two_call_spec(programs=2, rate=1000.0, think=0.0))
    plans = generate(spec)
    run = ClusterSim(plans, "fcfs+round_robin", PROFILE, ClusterConfig(engines=1, budget=1)).run()
    by = {(c.program, c.call): c for c in run.calls}
    # FCFS per call: p0c0, then p1c0 (arrived before p0c1 was ready), then p0c1, p1c1
    order = sorted(by, key=lambda k: by[k].dispatched)
    assert order == [(0, 0), (1, 0), (0, 1), (1, 1)]
    for a, b in itertools.pairwise(order):  # one at a time
        assert by[b].dispatched == pytest.approx(by[a].finished)


@pytest.mark.parametrize("points,limit,expected", [
    ([(1, 1.0, True), (2, 2.0, True), (3, 4.0, True)], 3.0, (2.5, True)),
    ([(1, 1.0, True), (2, 2.0, True)], 5.0, (2.0, False)),
    ([(1, 6.0, True), (2, 7.0, True)], 5.0, (0.0, True)),
    ([(2, 2.0, True), (1, 1.0, True), (4, 10.0, True)], 6.0, (3.0, True)),
    # an unstable rate is refused however low its latency, and not interpolated into
    ([(1, 1.0, True), (2, 2.0, True), (3, 2.5, False)], 3.0, (2.0, True)),
    ([(1, 1.0, False), (2, 2.0, True)], 3.0, (0.0, True)),
    # the first failure ends the search: a later passing rate does not count
    ([(1, 1.0, True), (2, 2.0, False), (3, 2.0, True)], 3.0, (1.0, True)),
])
def test_capacity_interpolates_the_first_crossing(points, limit, expected) -> None:  # type: ignore[no-untyped-def]
    assert capacity(points, limit) == pytest.approx(expected)


def test_percentile() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([5], 0.99) == 5


def _strip_wall(results: dict) -> dict:
    results = json.loads(json.dumps(results))
    results.pop("sweep_wall_s")
    point = results["at_80pct_of_baseline_capacity"]
    for run in results["runs"] + (point["runs"] if point else []):
        for key in ("sim_wall_s", "sim_s_per_wall_s", "sim_cpu_s", "sim_s_per_cpu_s"):
            run.pop(key)
    return results


def test_same_spec_and_seed_give_identical_results(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = parse_spec({**two_call_spec(programs=30, rate=5.0),
                       "tenants": [{"name": "a", "share": 1}, {"name": "b", "share": 1}]})
    cfg = SweepConfig(("fcfs+round_robin", "default"), (2.0, 8.0), engines=2, jobs=2,
                      window_s=20.0)
    first = run_sweep(spec, cfg, progress=None)
    second = run_sweep(spec, cfg, progress=None)
    assert _strip_wall(first) == _strip_wall(second)
    files = write_results(first, tmp_path)
    names = {f.name for f in files}
    assert {"results.json", "results.md", "latency_vs_rate.png", "p99_vs_rate.png",
            "prefix_hit_rate.png"} <= names
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["kind"] == "sim" and data["workload"] == "workload" and len(data["runs"]) == 4
    run = data["runs"][0]
    for key in ("policy", "rate", "programs", "completed", "failed", "program_latency_s",
                "normalized_latency_s_per_token", "throughput_programs_per_s", "prefix_hit_rate",
                "deadline_attainment", "per_tenant", "sim_wall_s", "simulated_s",
                "sim_s_per_wall_s", "sim_cpu_s", "sim_s_per_cpu_s"):
        assert key in run
    assert set(run["per_tenant"]) == {"a", "b"}
    assert set(data["capacity"]) == {"fcfs+round_robin", "default"}
    third = run_sweep(parse_spec({**two_call_spec(programs=30, rate=5.0), "seed": 4}), cfg,
                      progress=None)
    assert _strip_wall(third) != _strip_wall(first)


def test_warm_up_teaches_the_planner_from_another_seed_before_measured_runs() -> None:
    spec = parse_spec({**two_call_spec(programs=30, rate=5.0), "seed": 7})
    cfg = SweepConfig(("default",), (4.0,), engines=1, warmup_programs=40, window_s=10.0)
    learned = warm_up(spec, cfg)
    assert learned is not None
    assert learned.program_sizes.remaining("c", 0.0) is not None  # program sizes of class c
    assert warm_up(spec, SweepConfig(("default",), (4.0,), warmup_programs=0)) is None
    warm = run_sweep(spec, cfg, progress=None)
    assert warm["warmup"] == {"programs": 40, "seed": 1007, "rate": 2.0}
    cold = run_sweep(spec, SweepConfig(("default",), (4.0,), engines=1, warmup_programs=0,
                                       window_s=10.0),
                     progress=None)
    assert cold["warmup"]["programs"] == 0
    with pytest.raises(SpecError, match="--warmup"):
        SweepConfig(("default",), (4.0,), warmup_programs=-1).validate()


def test_the_planner_learns_only_what_live_clients_and_workers_tell_it() -> None:
    spec = parse_spec({"version": 1, "seed": 5, "programs": 6,
                       "arrival": {"process": "uniform", "rate": 2.0},
                       "classes": [
                           {"name": "told", "shape": "chain", "calls": 3, "max_tokens": 900,
                            "first_prompt_tokens": 300, "step_prompt_tokens": 40,
                            "output_tokens": {"dist": "uniform", "low": 100, "high": 200}},
                           {"name": "quiet", "labelled": False, "shape": "chain", "calls": 2,
                            "first_prompt_tokens": 300,
                            "output_tokens": {"dist": "uniform", "low": 100, "high": 200,
                                              "max": 250}}]})
    sim = ClusterSim(generate(spec), "default", PROFILE, ClusterConfig(engines=2))
    submits, progress, registered = [], [], []
    core = sim.core
    real_submit, real_progress, real_register = core.submit, core.progress, core.register_program

    def submit(program_id, tenant, call_id, **kwargs):  # type: ignore[no-untyped-def]
        plan = sim.programs[int(program_id[1:])]
        prompt = sim._states[plan.index].prompts[int(call_id)]
        submits.append({**kwargs, "expected": prefix_block_hashes(
            prompt, plan.salt, shared_tokens=plan.shared_tokens)})
        return real_submit(program_id, tenant, call_id, **kwargs)

    def report(program_id, call_id, n):  # type: ignore[no-untyped-def]
        progress.append((program_id, call_id, n))
        return real_progress(program_id, call_id, n)

    def register(*args, **kwargs):  # type: ignore[no-untyped-def]
        registered.append(kwargs["program_class"])
        return real_register(*args, **kwargs)

    core.submit, core.progress, core.register_program = submit, report, register  # type: ignore[method-assign]
    run = sim.run()
    drawn = {c.output_tokens for o in run.outcomes for c in o.plan.calls}
    assert {s["max_new_tokens"] for s in submits} == {900, 250}  # the class's max_tokens...
    assert not drawn & {900, 250}  # ...never a drawn length
    assert set(registered) == {"told", ""}  # an unlabelled class sends no program_class
    assert all(s["kv_matches"] is not None and set(s["kv_matches"]) == {"e0", "e1"}
               for s in submits)
    later = [s for s in submits if s["parents"]]
    assert later and all(max(s["kv_matches"].values()) > 0 for s in later)  # context is held
    assert all(s["prefix_hashes"] == s["expected"] for s in submits)  # the gateway's hashes
    assert progress
    by_call: dict = {}
    for program_id, call_id, n in progress:
        by_call.setdefault((program_id, call_id), []).append(n)
    for counts in by_call.values():  # each report crosses a new multiple of 64 tokens
        assert [n // 64 for n in counts] == sorted(set(n // 64 for n in counts))
        assert counts[0] >= 64



def test_a_declared_shared_prefix_is_named_alike_for_every_tenant_but_reused_within_one() -> None:
    """As live: the gateway hashes a declared (global) shared prefix alike for every tenant,
    so the index shows it wherever any tenant's call ran; the engine keeps each tenant's KV
    under its own salt (SGLang's cache_salt covers the whole prompt), so only a tenant's own
    earlier call saves it the prefill."""
    spec = parse_spec({"version": 1, "seed": 2, "programs": 12,
                       "arrival": {"process": "uniform", "rate": 0.2},
                       "tenants": [{"name": "a", "share": 1}, {"name": "b", "share": 1}],
                       "classes": [{"name": "g", "shape": "chain", "calls": 1,
                                    "shared_prefix": {"id": "pub", "tokens": 256,
                                                      "scope": "global"},
                                    "first_prompt_tokens": 64, "output_tokens": 16}]})
    sim = ClusterSim(generate(spec), "default", PROFILE, ClusterConfig(engines=1))
    matched: dict[str, int] = {}
    real_submit = sim.core.submit

    def submit(program_id, tenant, call_id, **kwargs):  # type: ignore[no-untyped-def]
        plan = sim.programs[int(program_id[1:])]
        prompt = sim._states[plan.index].prompts[int(call_id)]
        assert kwargs["prefix_hashes"] == prefix_block_hashes(prompt, f"tenant:{tenant}",
                                                              shared_tokens=256)
        matched[program_id] = kwargs["kv_matches"]["e0"]
        return real_submit(program_id, tenant, call_id, **kwargs)

    sim.core.submit = submit  # type: ignore[method-assign]
    run = sim.run()
    seen: set[str] = set()
    firsts = others = 0
    for tl in sorted(run.calls, key=lambda c: c.ready):
        plan = sim.programs[tl.program]
        if tl.program:  # after the first program: the index shows the shared blocks held
            assert matched[plan.program_id] >= 256 // DEFAULT_BLOCK_SIZE
        if plan.tenant not in seen:  # a tenant's first call: no prefix from the other's
            seen.add(plan.tenant)
            assert tl.cached_tokens < 64
            firsts += 1
        else:
            assert tl.cached_tokens >= 256
            others += 1
    assert firsts == 2 and others


def test_a_calls_context_and_hashes_are_held_only_while_a_child_or_its_engine_needs_them() -> None:
    spec = parse_spec({"version": 1, "seed": 3, "programs": 2,
                       "arrival": {"process": "uniform", "rate": 1.0},
                       "classes": [{"name": "t", "shape": "tree", "fanout": 2, "depth": 2,
                                    "first_prompt_tokens": 100, "step_prompt_tokens": 20,
                                    "output_tokens": 40, "context": "accumulate",
                                    "think_time_s": 0.1}]})
    sim = ClusterSim(generate(spec), "default", PROFILE, ClusterConfig(engines=2))
    real_ready = sim._ready
    held: list[tuple[set[int], set[int]]] = []

    def ready(pidx: int, cidx: int) -> None:
        real_ready(pidx, cidx)
        st = sim._states[pidx]
        waited_on = {p for p, n in st.unready_children.items() if n}  # a child's prompt to build
        assert set(st.contexts) <= waited_on
        assert set(st.hashes) <= waited_on | set(st.prompts)  # or not yet given to an engine
        held.append((set(st.contexts), set(st.hashes)))

    sim._ready = ready  # type: ignore[method-assign]
    run = sim.run()
    assert all(o.finished > 0 for o in run.outcomes) and len(held) == 2 * 7
    assert held[:3] == [({0}, {0}), ({0, 1}, {0, 1}), ({1, 2}, {1, 2})]  # the root's: gone


def test_the_planners_outbox_is_taken_after_each_dispatch_as_the_live_service_does() -> None:
    spec = parse_spec(two_call_spec(programs=3, rate=2.0))
    sim = ClusterSim(generate(spec), "default", PROFILE, ClusterConfig(engines=1))
    core = sim.core
    real_dispatch, real_take = core.dispatch, core.take_events
    taken: list = []
    left_before_dispatch: list[int] = []

    def dispatch():  # type: ignore[no-untyped-def]
        left_before_dispatch.append(len(core._events))
        return real_dispatch()

    def take():  # type: ignore[no-untyped-def]
        events = real_take()
        taken.extend(events)
        return events

    core.dispatch, core.take_events = dispatch, take  # type: ignore[method-assign]
    run = sim.run()
    assert all(o.finished > 0 for o in run.outcomes)
    # every call's changes (queued, running, done) and every program's were taken; none left
    # behind to hold ended calls' records until the run ends
    assert core._events == []
    assert sum(type(e).__name__ == "CallChanged" for e in taken) >= 3 * len(run.calls)
    assert {type(e).__name__ for e in taken} >= {"ProgramRegistered", "ProgramEnded"}
    # between two dispatches only one event's changes pile up (a submission, a completion)
    assert max(left_before_dispatch) <= 4


@pytest.mark.parametrize("ends", [True, False])
def test_programs_clients_do_not_end_are_conversations_the_planner_expires(ends: bool) -> None:
    # an OpenAI-compatible client never ends its program: the simulator leaves it to the
    # planner (a conversation, taken as done once idle; its housekeeping every second)
    spec = parse_spec({"version": 1, "seed": 5, "programs": 6,
                       "arrival": {"process": "uniform", "rate": 2.0},
                       "classes": [{"name": "chat", "shape": "chain", "calls": 2,
                                    "ends_programs": ends, "first_prompt_tokens": 300,
                                    "output_tokens": 20}]})
    sim = ClusterSim(generate(spec), "default", PROFILE, ClusterConfig(engines=2))
    ended, expired = [], []
    real_end, real_expire = sim.core.end_program, sim.core.expire

    def end(*args):  # type: ignore[no-untyped-def]
        ended.append(args[0])
        return real_end(*args)

    def expire():  # type: ignore[no-untyped-def]
        expired.append(sim.clock.now())
        return real_expire()

    sim.core.end_program, sim.core.expire = end, expire  # type: ignore[method-assign]
    run = sim.run()
    assert all(o.finished is not None for o in run.outcomes)  # every program completes
    if ends:
        assert len(ended) == 6 and not expired
    else:
        assert not ended and expired  # nobody ends them; the planner's housekeeping ran
        assert all(p.conversation for p in sim.core._programs.values())
        assert len(sim.core._programs) == 6  # not idle past program_idle_ttl_s in this run
