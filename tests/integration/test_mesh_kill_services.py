"""Mesh.kill_services, what `ostinato up`'s second Ctrl-C calls while its mesh stops or an
aborted start-up stops what it started: every service killed at once, a frozen one too (a
graceful stop waits 10 s for each in turn), and the embedded Redis left to stop cleanly."""

from __future__ import annotations

import signal

from tests.conftest import running_mesh


def test_every_service_is_killed_a_frozen_one_too() -> None:
    with running_mesh({"workers": 1}) as mesh:
        names = ["gateway", "planner", "worker-0", "engine-0"]
        procs = [mesh.child(name) for name in names]
        procs[0].send_signal(signal.SIGSTOP)  # frozen: it would never answer SIGTERM
        mesh.kill_services()
        assert [p.wait(timeout=60) for p in procs] == [-signal.SIGKILL] * len(names)
        assert mesh.redis_serving()  # (stopped after them, on leaving)
        mesh.kill_services()  # again, once they are reaped: nothing to do
