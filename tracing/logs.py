"""structlog configuration shared by every Ostinato service."""

from __future__ import annotations

import logging
import os
import sys

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, WrappedLogger

# What a request's log lines carry once known: bound by the gRPC interceptors from the
# request (tracing/grpc_interceptors.py), by the HTTP API as it learns them
REQUEST_LOG_FIELDS = ("tenant", "program_id", "call_id")


def add_trace_ids(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """trace_id and span_id of the span current where the line is logged (none: left out).
    tenant and program come from the per-request context the interceptors bind."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event


def configure_logging(service: str, level: str | None = None, json: bool | None = None) -> None:
    """Logs go to stderr: JSON when not a terminal (or OSTINATO_LOG_JSON=1), else console.
    The standard library's loggers (OpenTelemetry's exporters, grpc, aiohttp ...) go the same
    way, warnings and worse only; with JSON, no progress bars (a model's weights loading) are
    drawn among the lines."""
    level_name = (level or os.environ.get("OSTINATO_LOG_LEVEL", "info")).upper()
    numeric = logging.getLevelName(level_name)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    if json is None:
        json = os.environ.get("OSTINATO_LOG_JSON", "") == "1" or not sys.stderr.isatty()
    # An exception's traceback: as structured data in JSON, drawn on a terminal; never the
    # frames' local variables (a call's prompt is one: trace review 2026-12-06)
    renderer: structlog.typing.Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
        tracebacks: list[structlog.typing.Processor] = [structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False))]
        _no_progress_bars()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False))
        tracebacks = []
    structlog.configure(
        processors=[*_shared_processors(), *tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    _route_stdlib_logging([*tracebacks, renderer], max(numeric, logging.WARNING))


def _shared_processors() -> list[structlog.typing.Processor]:
    return [structlog.contextvars.merge_contextvars, add_trace_ids,
            structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso")]


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root logger's handler configure_logging installs (replaced by a later call)."""


def _route_stdlib_logging(rendering: list[structlog.typing.Processor], level: int) -> None:
    """Standard-library log records rendered as structlog's lines are (a JSON line each, with
    the service, level and logger's name), on stderr."""
    handler = _StdlibHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering]))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _no_progress_bars() -> None:
    """No tqdm bars from Hugging Face (huggingface_hub's downloads, transformers' "Loading
    weights"): the variable for those not imported yet, their switch for those that are."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils.logging import disable_progress_bar

        disable_progress_bar()
