"""Every log line carries the current span's trace and span ids; JSON logs are JSON lines
only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from tracing.logs import add_trace_ids

ROOT = Path(__file__).parents[2]


def test_trace_ids_added_inside_a_span_only() -> None:
    assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s") as span:
        event = add_trace_ids(None, "info", {"event": "x"})
    ctx = span.get_span_context()
    assert event == {"event": "x", "trace_id": format(ctx.trace_id, "032x"),
                     "span_id": format(ctx.span_id, "016x")}


# A service's process: JSON logging configured, then a standard-library logger's warning
# (OpenTelemetry's exporter with no collector), a structlog line, the progress bar switch.
SERVICE = """
import logging, os, structlog
from tracing.logs import configure_logging
configure_logging("gateway", json=True)
configure_logging("gateway", json=True)  # twice: still one line per record
logging.getLogger("opentelemetry.exporter").warning("Transient error %s", "UNAVAILABLE")
logging.getLogger("grpc").info("not at the default level")
structlog.get_logger().info("serving", port=1)
import huggingface_hub.utils
print(os.environ["HF_HUB_DISABLE_PROGRESS_BARS"], huggingface_hub.utils.are_progress_bars_disabled())
"""


def test_json_logs_are_json_lines_only() -> None:
    """(operator review F8) Standard-library loggers wrote plain lines into the JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OSTINATO_", "HF_HUB_"))}
    out = subprocess.run([sys.executable, "-c", SERVICE], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert [(e["event"], e["level"], e["service"]) for e in lines] == [
        ("Transient error UNAVAILABLE", "warning", "gateway"), ("serving", "info", "gateway")]
    assert lines[0]["logger"] == "opentelemetry.exporter" and "timestamp" in lines[0]
    assert out.stdout == "1 True\n"


FAILING = """
import logging, sys, structlog
from tracing.logs import configure_logging
configure_logging("gateway", json=sys.argv[1] == "json")

def handle(prompt: str) -> None:
    raise ValueError("the engine refused it")

for log in (structlog.get_logger().exception, logging.getLogger("aiohttp").exception):
    try:
        handle("SECRET PROMPT TEXT")
    except ValueError:
        log("request failed")
"""


def test_an_exceptions_traceback_is_logged_without_local_variables() -> None:
    """Trace review 2026-12-06: in JSON an exception logged only `"exc_info": true` (no
    traceback); on a terminal its traceback printed the frames' locals, a prompt among them."""
    for mode in ("json", "console"):
        out = subprocess.run([sys.executable, "-c", FAILING, mode], capture_output=True,
                             text=True, timeout=60, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 0, out.stderr
        assert "SECRET PROMPT TEXT" not in out.stderr, (mode, out.stderr)
        assert out.stderr.count("the engine refused it") >= 2, (mode, out.stderr)
        if mode == "json":
            lines = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]
            assert [line["event"] for line in lines] == ["request failed"] * 2
            for line in lines:
                frames = line["exception"][0]["frames"]
                assert frames[-1]["name"] == "handle" and "locals" not in frames[-1]
