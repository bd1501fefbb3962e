"""`ostinato up`'s embedded Redis, started again as it dies (ostinato/up_children.py
RedisKeeper), up to a limit, without waiting in `up`'s poll loop for it to serve:
table-driven, with a stand-in mesh and clock."""

from __future__ import annotations

import pytest

from ostinato import up_children

STARTED = "redis started again on its port, from its append-only file"


class _Redis:
    """A mesh's embedded Redis, killed when the test says, serving `serve_after` looks
    after each start."""

    def __init__(self, serve_after: int = 1) -> None:
        self.serve_after, self.looks = serve_after, 0
        self.code: int | None = None
        self.starts, self.stopped = 0, False

    def kill(self) -> None:
        if not self.stopped:
            self.code = -9

    def redis_exit(self) -> int | None:
        return self.code

    def start_redis(self, *, wait: bool = True) -> str:
        assert not wait  # up's loop goes on watching the other services meanwhile
        self.starts, self.code, self.looks = self.starts + 1, None, 0
        return "redis://127.0.0.1:3/0"

    def redis_serving(self) -> bool:
        self.looks += 1
        return self.code is None and self.looks >= self.serve_after

    def stop_redis(self) -> None:
        self.stopped, self.code = True, None


def _run(mesh: _Redis, deaths: set[int], seconds_apart: float, looks: int = 8,
         **limits: float) -> tuple[up_children.RedisKeeper, list[str]]:
    now = [0.0]
    keeper = up_children.RedisKeeper(mesh, lambda: now[0], **limits)  # type: ignore[arg-type]
    lines = []
    for look in range(looks):
        if look in deaths:
            mesh.kill()
        lines.extend(keeper.check())
        now[0] += seconds_apart
    return keeper, lines


@pytest.mark.parametrize(("deaths", "seconds_apart", "starts", "served", "left_down"), [
    ({0, 1, 2, 3, 4}, 1.0, 5, 1, False),  # five deaths in a minute: each started again
    ({0, 1, 2, 3, 4, 5}, 1.0, 5, 0, True),  # the sixth: left down (OOM-killed, say)
    ({0, 1, 2, 3, 4, 5}, 20.0, 6, 1, False),  # the first out of the window by the sixth
    ({0, 3}, 1.0, 2, 2, False),  # serving again between deaths
    (set(), 1.0, 0, 0, False),
])
def test_a_redis_that_keeps_dying_is_left_down(deaths: set[int], seconds_apart: float,
                                               starts: int, served: int,
                                               left_down: bool) -> None:
    """A death while it starts again counts as one."""
    mesh = _Redis()
    keeper, lines = _run(mesh, deaths, seconds_apart, limit=5, window_s=60.0)
    assert (mesh.starts, mesh.stopped, keeper.died) == (starts, left_down, bool(deaths))
    assert lines.count(STARTED) == served
    assert any("again after 5 restarts in 60 s: not started again" in line
               for line in lines) == left_down


@pytest.mark.parametrize(("serve_after", "seconds_apart", "said"), [
    (3, 1.0, STARTED),  # two looks starting (its file loading): nothing said meanwhile
    (100, 10.0, "redis not serving within 60 s of starting again (its append-only file "
                "still loading?): stopped; the mesh goes on without it (no caches or "
                "quotas; restart the mesh)"),
])
def test_a_redis_starting_again_is_looked_at_once_a_check(serve_after: int,
                                                          seconds_apart: float,
                                                          said: str) -> None:
    mesh = _Redis(serve_after=serve_after)
    _, lines = _run(mesh, {0}, seconds_apart, looks=10, start_s=60.0)
    assert lines[1:] == [said] and mesh.starts == 1
    assert mesh.stopped == (said != STARTED)
