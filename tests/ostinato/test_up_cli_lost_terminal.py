"""`ostinato up` whose output cannot be written any more: its terminal closed (SIGHUP, then
EIO on every write) or the pipe it writes to lost its reader (EPIPE). It must still stop its
mesh through Mesh.close() (the services in turn, Redis last, the folder removed) and exit as
for any other stop: its print raised instead, in the banner or before Mesh.close, and the
services were left to the kernel's SIGTERM, all at once (fault review 2026-12-07)."""

from __future__ import annotations

import errno
import io
import os
import signal
import sys

import pytest

from ostinato import cli
from ostinato.lost_terminal import say
from tests.ostinato.test_up_cli_run import HANDLERS, _FakeMesh, fake_mesh  # noqa: F401
from tests.ostinato.up_cli_env import no_mesh_environment  # noqa: F401 (autouse)


class _LostTerminal(io.TextIOBase):
    """A terminal that works until it is lost, then fails every write."""

    def __init__(self, error: OSError) -> None:
        self.lost = False
        self.error = error
        self.written = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.lost:
            raise self.error
        self.written += text
        return len(text)


@pytest.mark.parametrize("error", [OSError(errno.EIO, "Input/output error"),
                                   BrokenPipeError(errno.EPIPE, "Broken pipe")])
@pytest.mark.parametrize("lost_before_banner", [False, True])
def test_up_stops_its_mesh_when_its_output_is_lost(
        fake_mesh: type[_FakeMesh], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        error: OSError, lost_before_banner: bool) -> None:
    terminal = _LostTerminal(error)
    terminal.lost = lost_before_banner  # (a pipe whose reader left at once)
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(fake_mesh, "statuses", {"gateway": [None], "planner": [None],
                                                "worker-0": [None], "worker-1": [None],
                                                "engine-0": [None], "engine-1": [None]})
    looked = fake_mesh.redis_exit

    def redis_exit(self: _FakeMesh) -> int | None:  # the poll loop's first look: the
        terminal.lost = True  # terminal closes (SIGHUP)
        HANDLERS[signal.SIGHUP](signal.SIGHUP, None)
        return looked(self)

    monkeypatch.setattr(fake_mesh, "redis_exit", redis_exit)
    rc = cli.main(["up", "--gateway-port", "0", "--http-port", "0"])
    assert fake_mesh.made[0].kept_logs is False, "Mesh.close() was never called"
    assert rc == 0
    assert ("Press Ctrl-C" in terminal.written) != lost_before_banner


def test_say_points_a_stream_it_cannot_write_at_devnull() -> None:
    """So that nothing written to it later, the interpreter's flush at exit included,
    fails either (a pipe's reader gone: EPIPE; Python ignores SIGPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream:
        say("lost", file=stream, flush=True)  # EPIPE: swallowed
        say("and later", file=stream, flush=True)
        assert os.readlink(f"/proc/self/fd/{stream.fileno()}") == os.devnull
