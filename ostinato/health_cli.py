"""`ostinato health ADDRESS`: is a service up? For container health checks and scripts.

ADDRESS is host:port for the standard gRPC health service (grpc.health.v1) that the gateway,
planner and workers serve, or an http(s):// URL for an HTTP endpoint that answers 2xx when
healthy (the sim engine's or SGLang's /health). Exit status: 0 serving, 1 not serving or not
reachable (the reason on stderr), 2 refused input (a port outside 1-65535, a --timeout not
above 0).

It loads none of the services' code, so a check is one short process (about 0.2 s of CPU);
it also runs as `python -m ostinato.health_cli ADDRESS`.
"""

from __future__ import annotations

import argparse
import math
import sys
import urllib.error
import urllib.request
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("health", help="check a service's health: gRPC health at host:port, "
                                      "or an HTTP URL (exit 0 when serving)")
    _arguments(p)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", metavar="ADDRESS",
                   help="host:port of a gRPC service (gateway, planner, worker), or an "
                        "http(s):// URL such as http://127.0.0.1:30000/health")
    p.add_argument("--service", default="",
                   help="gRPC: the service to ask about, by its full name (ostinato.v1.Gateway, "
                   "ostinato.v1.Planner, ostinato.v1.Worker; default: the server as a whole)")
    p.add_argument("--timeout", type=_seconds, default=3.0, help="seconds, more than 0 (default 3)")


def _seconds(text: str) -> float:
    """A --timeout: a finite number of seconds above 0 (argparse refuses others: exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, got {text!r}")
    return value


def _check_grpc(address: str, service: str, timeout_s: float) -> str | None:
    """None when SERVING, else why not."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            # (types-grpcio-health-checking declares no methods on HealthStub)
            reply = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND and service:  # (gRPC health says no more)
                return f"NOT_FOUND: the server has no service {service!r}"
            return f"{exc.code().name}: {exc.details()}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return None


def _check_http(url: str, timeout_s: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def _bad_port(address: str) -> bool:
    """host:port with a port outside 1-65535 (gRPC would dial it modulo 65536)."""
    port = address.rpartition(":")[2]
    return port.isdigit() and not 0 < int(port) < 65536


def run(args: argparse.Namespace) -> int:
    """0 serving, 1 not serving or unreachable, 2 an address no service can have."""
    address: str = args.address
    if not address.startswith(("http://", "https://")) and _bad_port(address):
        print(f"ostinato health {address}: the port must be 1-65535", file=sys.stderr)
        return 2
    if address.startswith(("http://", "https://")):
        problem = _check_http(address, args.timeout)
    else:
        problem = _check_grpc(address, args.service, args.timeout)
    if problem is not None:
        print(f"ostinato health {address}: {problem}", file=sys.stderr)
        return 1
    print("SERVING")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ostinato health", description=__doc__.split("\n")[0])
    _arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
