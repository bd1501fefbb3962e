"""`ostinato health`: gRPC health of a real server, HTTP health of a real endpoint, and the
exit status a container health check reads."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ostinato.health_cli import main
from tests.ports import closed_port

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def grpc_health() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()



def test_grpc_serving_exits_zero(grpc_health, capsys) -> None:
    address, servicer = grpc_health
    servicer.set("", SERVING)
    assert main([address]) == 0
    assert capsys.readouterr().out.strip() == "SERVING"


def test_grpc_not_serving_exits_one(grpc_health, capsys) -> None:
    address, servicer = grpc_health
    servicer.set("", NOT_SERVING)
    assert main([address]) == 1
    assert "NOT_SERVING" in capsys.readouterr().err


def test_grpc_named_service(grpc_health, capsys) -> None:
    address, servicer = grpc_health
    servicer.set("ostinato.v1.Planner", SERVING)
    assert main([address, "--service", "ostinato.v1.Planner"]) == 0
    assert main([address, "--service", "ostinato.v1.Gateway"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_grpc_unreachable_exits_one_quickly(capsys) -> None:
    assert main([f"127.0.0.1:{closed_port()}", "--timeout", "2"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:0", "localhost:65536"])
def test_a_port_no_service_can_have_exits_two(address: str, capsys) -> None:  # type: ignore[no-untyped-def]
    """gRPC would dial 99999 modulo 65536 and name another port in its error."""
    assert main([address]) == 2
    assert capsys.readouterr().err == f"ostinato health {address}: the port must be 1-65535\n"


def test_http(http_base, capsys) -> None:
    assert main([f"{http_base}/health"]) == 0
    assert main([f"{http_base}/other"]) == 1
    assert "HTTP 503" in capsys.readouterr().err
    assert main([f"http://127.0.0.1:{closed_port()}/health"]) == 1


def test_module_entry_point_exit_status(grpc_health) -> None:
    """What a container's health check runs."""
    address, servicer = grpc_health
    servicer.set("", SERVING)
    ok = subprocess.run([sys.executable, "-m", "ostinato.health_cli", address],
                        capture_output=True, text=True, timeout=30)
    assert (ok.returncode, ok.stdout.strip()) == (0, "SERVING")
    servicer.set("", NOT_SERVING)
    bad = subprocess.run([sys.executable, "-m", "ostinato.health_cli", address],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1


def test_subcommand_wiring(grpc_health) -> None:
    """As ostinato/cli.py wires it: add_parser(sub), then run(args)."""
    import argparse

    from ostinato.health_cli import add_parser, run

    address, servicer = grpc_health
    servicer.set("", SERVING)
    parser = argparse.ArgumentParser(prog="ostinato")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["health", address, "--timeout", "5"])
    assert (args.command, run(args)) == ("health", 0)


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf", "soon"])
def test_a_timeout_not_above_zero_is_refused(timeout: str, capsys) -> None:  # type: ignore[no-untyped-def]
    """A zero or negative deadline was sent, and reported as the server's DEADLINE_EXCEEDED."""
    with pytest.raises(SystemExit) as refused:
        main([f"127.0.0.1:{closed_port()}", "--timeout", timeout])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "argument --timeout: " in err and repr(timeout) in err
    assert "DEADLINE_EXCEEDED" not in err
