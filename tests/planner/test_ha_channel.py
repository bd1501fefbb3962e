"""The planner channel's target: one address as given, several as one static list."""

from __future__ import annotations

import pytest

from planner.ha_channel import planner_target


@pytest.mark.parametrize(("address", "target"), [
    ("127.0.0.1:50052", "127.0.0.1:50052"),
    ("planner:50052", "planner:50052"),  # one name: DNS may give every replica
    ("127.0.0.1:1, 127.0.0.1:2", "ipv4:127.0.0.1:1,127.0.0.1:2"),
    ("localhost:1,127.0.0.2:2,", "ipv4:127.0.0.1:1,127.0.0.2:2"),
])
def test_targets(address: str, target: str) -> None:
    assert planner_target(address) == target


@pytest.mark.parametrize("address", ["", " , ", "127.0.0.1,127.0.0.2:1",
                                     "no-such-host.invalid:1,127.0.0.1:2"])
def test_bad_addresses_are_refused_with_the_field_named(address: str) -> None:
    with pytest.raises(ValueError, match="planner_address"):
        planner_target(address)
