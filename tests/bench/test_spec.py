"""Workload specs: built-ins load, every field is validated, errors name the field."""

from __future__ import annotations

import random

import pytest

from bench.dists import SpecError, parse_dist
from bench.programs import generate
from bench.spec import builtin_workloads, load_spec, parse_spec

MINIMAL = {"version": 1, "classes": [{"name": "c", "first_prompt_tokens": 10, "output_tokens": 5}]}


def spec_with(**changes: object) -> dict:
    data = {**MINIMAL, "classes": [dict(MINIMAL["classes"][0])]}
    for key, value in changes.items():
        if key.startswith("class_"):
            data["classes"][0][key[6:]] = value
        else:
            data[key] = value
    return data


def test_builtins_load_and_generate() -> None:
    assert builtin_workloads() == ["chat", "flood", "lats", "mapreduce", "mixed", "react"]
    for name in builtin_workloads():
        spec = load_spec(name).with_overrides(programs=20)
        programs = generate(spec)
        assert len(programs) == 20 and all(p.calls for p in programs)
    lats = generate(load_spec("lats").with_overrides(programs=1))[0]
    assert len(lats.calls) == 156  # 1 + 5 + 25 + 125
    mr = generate(load_spec("mapreduce").with_overrides(programs=1))[0]
    assert [len(c.parents) for c in mr.calls] == [0] * 8 + [8] and mr.deadline_s is not None


@pytest.mark.parametrize("changes,field", [
    ({"version": 2}, "version"),
    ({"bogus": 1}, "bogus"),
    ({"arrival": {"process": "weird"}}, "arrival.process"),
    ({"arrival": {"rate": -1}}, "arrival.rate"),
    ({"programs": 0}, "programs"),
    ({"tenants": [{"name": "a", "weight": 0}]}, "tenants[0].weight"),
    ({"tenants": [{"name": "a"}, {"name": "a"}]}, "tenants"),
    ({"class_shape": "ring"}, "classes[0].shape"),
    ({"class_calls": {"dist": "lognormal", "mean": 3, "sigma": -1}}, "classes[0].calls.sigma"),
    ({"class_calls": {"dist": "lognormal", "mean": 3}}, "classes[0].calls"),
    ({"class_output_tokens": {"dist": "gauss", "mean": 3}}, "classes[0].output_tokens.dist"),
    ({"class_output_tokens": {"dist": "uniform", "low": 5, "high": 1}}, "classes[0].output_tokens"),
    ({"class_output_tokens": {"dist": "const", "value": 3, "extra": 1}}, "classes[0].output_tokens"),
    ({"class_shared_prefix": {"id": "x", "tokens": 0}}, "classes[0].shared_prefix.tokens"),
    ({"class_shared_prefix": {"id": "x", "tokens": 5, "scope": "planet"}},
     "classes[0].shared_prefix.scope"),
    ({"class_context": "sometimes"}, "classes[0].context"),
    ({"class_think_time_s": "soon"}, "classes[0].think_time_s"),
    ({"class_stages": []}, "classes[0].stages"),
    ({"class_fanout": 0}, "classes[0].fanout"),
])
def test_validation_errors_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with(**changes))
    assert str(info.value).startswith(field), str(info.value)


def test_missing_required_fields_and_files() -> None:
    with pytest.raises(SpecError, match=r"^classes\[0\].output_tokens: required"):
        parse_spec({"version": 1, "classes": [{"name": "c", "first_prompt_tokens": 1}]})
    with pytest.raises(SpecError, match="no built-in"):
        load_spec("no-such-workload")


@pytest.mark.parametrize("dist,mean", [
    (7, 7.0),
    ({"dist": "uniform", "low": 2, "high": 4}, 3.0),
    ({"dist": "exponential", "mean": 5}, 5.0),
    ({"dist": "lognormal", "mean": 100, "sigma": 0.8}, 100.0),
    ({"dist": "geometric", "p": 0.25}, 4.0),
])
def test_dists_sample_their_mean(dist: object, mean: float) -> None:
    d = parse_dist(dist, "x")
    rng = random.Random(0)
    xs = [d.sample(rng) for _ in range(20000)]
    assert sum(xs) / len(xs) == pytest.approx(mean, rel=0.05)
    assert d.expected == pytest.approx(mean)


def test_clamps_and_zipf_support() -> None:
    d = parse_dist({"dist": "exponential", "mean": 10, "min": 2, "max": 3}, "x")
    rng = random.Random(1)
    assert all(2 <= d.sample(rng) <= 3 for _ in range(1000))
    z = parse_dist({"dist": "zipf", "s": 1.2, "max": 10}, "x")
    xs = [z.sample(rng) for _ in range(2000)]
    assert set(xs) <= set(map(float, range(1, 11))) and xs.count(1.0) > xs.count(2.0)


def test_generation_is_deterministic_and_prefix_stable() -> None:
    spec = load_spec("react")
    a = generate(spec.with_overrides(programs=30))
    b = generate(spec.with_overrides(programs=50))
    assert a == b[:30]  # more programs leave the earlier ones unchanged
    c = generate(spec.with_overrides(programs=30, seed=99))
    assert a != c


@pytest.mark.parametrize("output,max_tokens", [
    (5, 5),  # a constant: its value
    ({"dist": "lognormal", "mean": 34, "sigma": 0.7, "max": 2048}, 2048),  # the clamp
    ({"dist": "exponential", "mean": 34}, 4096),  # no maximum: DEFAULT_MAX_TOKENS
])
def test_max_tokens_defaults_to_the_output_maximum_never_a_drawn_length(output: object,
                                                                        max_tokens: int) -> None:
    klass = parse_spec(spec_with(class_output_tokens=output)).classes[0]
    assert klass.max_tokens == max_tokens and klass.labelled


def test_outputs_are_cut_at_the_classes_max_tokens_and_labels_are_optional() -> None:
    spec = parse_spec(spec_with(class_output_tokens={"dist": "uniform", "low": 50, "high": 100},
                                class_max_tokens=60, class_labelled=False, programs=50))
    assert not spec.classes[0].labelled
    outputs = [c.output_tokens for p in generate(spec) for c in p.calls]
    assert max(outputs) == 60 and min(outputs) >= 50


@pytest.mark.parametrize("changes,message", [
    ({"class_max_tokens": 0}, r"classes\[0\].max_tokens: must be >= 1"),
    ({"class_labelled": "yes"}, r"classes\[0\].labelled: expected true or false"),
])
def test_bad_client_fields_name_the_field(changes: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(spec_with(**changes))


def test_the_stream_begins_with_the_finite_batch() -> None:
    import itertools

    from bench.programs import stream

    spec = load_spec("mixed").with_overrides(programs=30)
    assert list(itertools.islice(stream(spec), 30)) == generate(spec)


def test_ends_programs_defaults_to_true_is_checked_and_can_be_overridden() -> None:
    base = {"version": 1, "seed": 1, "programs": 2, "arrival": {"process": "uniform", "rate": 1},
            "classes": [{"name": "a", "first_prompt_tokens": 10, "output_tokens": 5}]}
    spec = parse_spec(base)
    assert spec.classes[0].ends_programs
    assert not spec.with_overrides(ends_programs=False).classes[0].ends_programs
    bad = {**base, "classes": [{**base["classes"][0], "ends_programs": "no"}]}
    with pytest.raises(SpecError, match="ends_programs: expected true or false"):
        parse_spec(bad)
