"""A planner frozen (SIGSTOP: its connections stay open, nothing answers), seen from a gateway's
admissions (gateway/admissions.py over planner/ha_channel.py's channel, ostinato/retry.py):
with a standby serving, the admission moves to it once gRPC gives up on the frozen one
(keepalive time + timeout); alone, the call fails UNAVAILABLE after PLANNER_WAIT_S.

Stand-in planners in child processes (the test's own code, below: Health and AdmitStream);
the channel's keepalive times are scaled down 5x, so a timer the channel options leave
at gRPC's default (ping_timeout: 60 s) shows as a hang, not as a slower pass."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from gateway.admissions import Admissions
from gateway.worker_channels import CHANNEL_OPTIONS as WORKER_CHANNEL_OPTIONS
from ostinato import retry
from ostinato.v1 import planner_pb2, planner_pb2_grpc
from planner.ha_channel import CHANNEL_OPTIONS, SERVICE_CONFIG, planner_target

PLANNER = '''
import asyncio, signal, sys
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from ostinato.v1 import planner_pb2, planner_pb2_grpc

class Planner(planner_pb2_grpc.PlannerServicer):
    async def AdmitStream(self, requests, context):
        await context.send_initial_metadata(())
        async for msg in requests:
            if not msg.cancel:
                yield planner_pb2.AdmitStreamResponse(id=msg.id, grant=planner_pb2.Grant(
                    call_id=msg.admit.call_id, worker_id=sys.argv[1]))

async def main():
    server = grpc.aio.server(options=[("grpc.http2.min_ping_interval_without_data_ms", 100),
                                      ("grpc.keepalive_permit_without_calls", 1)])
    planner_pb2_grpc.add_PlannerServicer_to_server(Planner(), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    status = health_pb2.HealthCheckResponse
    async def serve():
        await checks.set("ostinato.v1.Planner", status.SERVING)
    if sys.argv[1] == "standby":  # serves once told (SIGUSR1): it took the lease
        await checks.set("ostinato.v1.Planner", status.NOT_SERVING)
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGUSR1, lambda: asyncio.ensure_future(serve()))
    else:
        await serve()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()

asyncio.run(main())
'''
SCALE = 5  # the channel's keepalive times, 5x shorter (4 + 2 s: 0.8 + 0.4 s)
_TIMES = ("grpc.keepalive_time_ms", "grpc.keepalive_timeout_ms", "grpc.http2.ping_timeout_ms")


@contextmanager
def planners(*names: str) -> Iterator[list[tuple[subprocess.Popen[str], str]]]:
    """Stand-in planners, each (its process, its address), killed on leaving."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for name in names:
            procs.append(subprocess.Popen([sys.executable, "-c", PLANNER, name], text=True,
                                          stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]))
        yield [(p, f"127.0.0.1:{int(p.stdout.readline())}") for p in procs]  # type: ignore[union-attr]
    finally:
        for p in procs:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()


def channel(addresses: list[str]) -> grpc.aio.Channel:
    options = dict(CHANNEL_OPTIONS)
    assert options["grpc.service_config"] == SERVICE_CONFIG
    for key in _TIMES:
        if key in options:
            options[key] = int(options[key]) // SCALE  # type: ignore[call-overload]
    return grpc.aio.insecure_channel(planner_target(",".join(addresses)),
                                     options=list(options.items()))


@pytest.mark.parametrize("options", [CHANNEL_OPTIONS, WORKER_CHANNEL_OPTIONS],
                         ids=["planner", "worker"])
def test_every_ping_is_given_up_on_as_keepalive_says(options: tuple) -> None:
    """gRPC Core closes a connection whose ping went unanswered after grpc.http2.ping_timeout_ms
    (default 60 s), not after keepalive_timeout_ms: both are set, alike."""
    given = dict(options)
    assert given["grpc.http2.ping_timeout_ms"] == given["grpc.keepalive_timeout_ms"]
    assert given["grpc.http2.max_pings_without_data"] == 0  # (else 2 pings, then 60 s apart)
    if options is CHANNEL_OPTIONS:  # the planner's: its callers' retries count its silence
        silent_ms = int(given["grpc.keepalive_time_ms"]) + int(given["grpc.keepalive_timeout_ms"])
        assert silent_ms / 1000 == retry.SILENT_S


@pytest.mark.parametrize("options", [CHANNEL_OPTIONS, WORKER_CHANNEL_OPTIONS],
                         ids=["planner", "worker"])
def test_servers_take_their_callers_keepalive_pings(options: tuple) -> None:
    """A ping sooner than a server's min_ping_interval_without_data_ms is a strike (two, and
    it closes the connection, GOAWAY too_many_pings): every server takes its callers' pings
    with room to spare (twice the interval)."""
    from ostinato.serving import SERVER_OPTIONS

    taken_ms = int(dict(SERVER_OPTIONS)["grpc.http2.min_ping_interval_without_data_ms"])
    assert 2 * taken_ms <= int(dict(options)["grpc.keepalive_time_ms"])


async def _admit(admissions: Admissions, call_id: str, failing_for_s: float) -> planner_pb2.Grant:
    return await retry.with_retry(admissions.Admit, planner_pb2.AdmitRequest(call_id=call_id),
                                  120.0, failing_for_s=failing_for_s)


async def test_a_frozen_active_planner_is_left_for_the_standby_within_its_keepalive() -> None:
    with planners("active", "standby") as [(active, a), (standby, b)]:
        async with channel([a, b]) as ch:
            admissions = Admissions(planner_pb2_grpc.PlannerStub(ch))
            assert (await _admit(admissions, "c1", 30.0)).worker_id == "active"
            active.send_signal(signal.SIGSTOP)
            standby.send_signal(signal.SIGUSR1)  # it takes over
            async with asyncio.timeout(20):  # (before ping_timeout was set: 60 s and more)
                grant = await _admit(admissions, "c2", 30.0)
            assert grant.worker_id == "standby"
            await admissions.close()


async def test_a_frozen_planners_hung_admission_fails_as_the_retry_counts_failing() -> None:
    """Alone, a frozen planner's admission hangs until gRPC gives up on its connection, and
    fails in words that ostinato/retry.py counts as failing time, not as served (so the call
    fails after PLANNER_WAIT_S, not that plus each hung attempt: 119.6 s before, 30 s after,
    by hand). The count itself is test_retry.py's (no time bound here beyond a hang's)."""
    with planners("active") as [(active, a)]:
        async with channel([a]) as ch:
            admissions = Admissions(planner_pb2_grpc.PlannerStub(ch))
            assert (await _admit(admissions, "c1", 30.0)).worker_id == "active"
            active.send_signal(signal.SIGSTOP)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async with asyncio.timeout(20):  # (keepalive time + timeout: 1.2 s here)
                    await admissions.Admit(planner_pb2.AdmitRequest(call_id="c2"), timeout=60)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            details = err.value.details() or ""
            assert any(words in details for words in retry._SILENT + retry._UNREACHED), details
            await admissions.close()
