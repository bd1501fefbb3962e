"""`ostinato up`'s embedded Redis, started again as it dies (ostinato/up_children.py
RedisKeeper), up to a limit: table-driven, with a stand-in mesh and clock."""

from __future__ import annotations

import pytest

from ostinato import up_children


class _DyingRedis:
    """A mesh whose Redis is found dead at each look in `deaths` (look numbers)."""

    def __init__(self, deaths: set[int]) -> None:
        self.deaths, self.looks, self.starts, self.stopped = deaths, 0, 0, False

    def redis_exit(self) -> int | None:
        self.looks += 1
        return -9 if self.looks in self.deaths and not self.stopped else None

    def start_redis(self) -> str:
        self.starts += 1
        return "redis://127.0.0.1:3/0"

    def stop_redis(self) -> None:
        self.stopped = True


@pytest.mark.parametrize(("deaths", "seconds_apart", "starts", "left_down"), [
    ({1, 2, 3, 4, 5}, 1.0, 5, False),  # five deaths in a minute: each started again
    ({1, 2, 3, 4, 5, 6}, 1.0, 5, True),  # the sixth: left down (OOM-killed, say)
    ({1, 2, 3, 4, 5, 6}, 20.0, 6, False),  # the first out of the window by the sixth
    (set(), 1.0, 0, False),
])
def test_a_redis_that_keeps_dying_is_left_down(deaths: set[int], seconds_apart: float,
                                               starts: int, left_down: bool) -> None:
    mesh, now = _DyingRedis(deaths), [0.0]
    keeper = up_children.RedisKeeper(mesh, lambda: now[0], limit=5, window_s=60.0)
    lines = []
    for _ in range(8):
        lines.extend(keeper.check())
        now[0] += seconds_apart
    assert (mesh.starts, mesh.stopped, keeper.died) == (starts, left_down, bool(deaths))
    assert lines.count("redis started again on its port, from its append-only file") == starts
    assert any("again after 5 restarts in 60 s: not started again" in line for line in lines) == left_down
