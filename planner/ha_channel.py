"""How gateways and workers dial the planner, following the active replica (planner HA).

`planner_address` is one address, or several comma-separated. The channel balances
(round_robin) over every address, with gRPC client-side health checking on the Planner
service: only a planner whose health says SERVING gets calls. The active planner serves;
a standby's Planner service is NOT_SERVING (planner/main.py). When the active one dies its
calls fail UNAVAILABLE at once, and the callers' retries (ostinato/retry.py: the gateway's
Admit, RegisterProgram and EndProgram, the workers' completion reports) go on until a
standby takes over: its health turns SERVING, pushed to the channel over the health Watch
stream, so calls move over as soon as it serves, with no address to look up.

Why health checking rather than reading the lease holder's address from Redis: it needs no
resolver (grpc-python cannot plug one in), and it works the same behind one DNS name that
resolves to every replica (compose; Kubernetes, where both planner pods are Ready, their
readiness probe asking the server as a whole, and the callers pick the active one by the
Planner service's health).

Names in a comma-separated list are resolved once, at start (use IP addresses or one DNS
name for replicas whose addresses change).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Sequence

import grpc

PLANNER_SERVICE = "ostinato.v1.Planner"
SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "healthCheckConfig": {"serviceName": PLANNER_SERVICE},
})
CHANNEL_OPTIONS = (("grpc.service_config", SERVICE_CONFIG),
                   # a planner restarted in place is dialled again within 2 s
                   ("grpc.initial_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 2000),
                   # a DNS name's replicas looked up again (a pod replaced) after 2 s, not 30
                   ("grpc.dns_min_time_between_resolutions_ms", 2000),
                   # a planner that stops answering without closing its connections (its
                   # node frozen or cut off; SIGSTOP): pings unanswered for 5 s close them,
                   # so the streams and health watch on it fail over to the standby that
                   # took the lease; before, every admission waited out its call's limit.
                   # 4 + 2 s: about a lease's TTL (5 s), which a standby waits out before it
                   # serves (10 + 5 s held a unary call picked to the frozen planner 15 s
                   # after the standby served). A ping goes only on a connection that read
                   # nothing for 4 s (an idle one), and is answered by gRPC Core's threads,
                   # not the planner's event loop. (The planner takes pings every 2 s:
                   # ostinato/serving.py.)
                   ("grpc.keepalive_time_ms", 4_000),
                   ("grpc.keepalive_timeout_ms", 2_000),
                   # gRPC Core (1.85) closes a connection whose ping went unanswered after
                   # this one, not keepalive_timeout_ms (default 60 s: a frozen active planner
                   # held the next admission 10 + 60 s, check14); so 2 s here too.
                   ("grpc.http2.ping_timeout_ms", 2_000),
                   # pings go on a connection that sends nothing too (gRPC Core's default,
                   # 2, then waits 60 s: a frozen planner under an idle caller went
                   # unnoticed that long; review 2026-12-06)
                   ("grpc.http2.max_pings_without_data", 0),
                   ("grpc.keepalive_permit_without_calls", 1))


def planner_target(address: str) -> str:
    """A gRPC target for one address (as given: a name may resolve to several) or several."""
    parts = [p.strip() for p in address.split(",") if p.strip()]
    if not parts:
        raise ValueError("planner_address: empty")
    if len(parts) == 1:
        return parts[0]
    return "ipv4:" + ",".join(_ipv4(p) for p in parts)


def _ipv4(host_port: str) -> str:
    host, sep, port = host_port.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"planner_address: {host_port!r} is not host:port")
    try:
        return f"{ipaddress.IPv4Address(host)}:{port}"
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"planner_address: {host!r} does not resolve to an IPv4 address "
                         f"({exc})") from None
    return f"{infos[0][4][0]}:{port}"


def planner_channel(address: str,
                    interceptors: Sequence[grpc.aio.ClientInterceptor] = ()) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(planner_target(address), options=CHANNEL_OPTIONS,
                                     interceptors=list(interceptors))
