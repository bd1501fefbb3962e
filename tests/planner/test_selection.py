"""Choosing policies by name (planner/core/selection.py): presets, the simulator-only ones,
and workload-spec.md's `oracle`, named `clairvoyant` here with the reason said."""

from __future__ import annotations

import re

import pytest

from planner.core.selection import parse_policy


@pytest.mark.parametrize(("name", "priority"), [
    ("default", "srpt"), ("clairvoyant", "clairvoyant"), ("fcfs+round_robin", "fcfs"),
])
def test_presets_and_pairs(name: str, priority: str) -> None:
    assert parse_policy(name)[0].name == priority


@pytest.mark.parametrize(("name", "live", "needle"), [
    ("oracle", False, "policy 'oracle' is called 'clairvoyant' here"),
    ("oracle", True, "unknown policy 'oracle'"),  # the mesh's planner has neither
    ("fastest+magic", False, "unknown policy 'fastest+magic'"),
])
def test_names_refused_say_why(name: str, live: bool, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        parse_policy(name, live=live)
