"""OTLP JSON: the OpenTelemetry protocol's JSON encoding, as the Collector's file exporter
writes it (one ExportTraceServiceRequest per line, trace and span ids in hex).

The file exporter (tracing/file_exporter.py) writes it and `ostinato trace show` reads it
back (tracing/span_file.py); any OTLP JSON file reader (the Collector's otlpjsonfile
receiver) can read these files too.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any) -> Any:
    """Protobuf's JSON mapping writes bytes as base64; OTLP JSON wants ids in hex."""
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in _ID_KEYS and isinstance(v, str) else _hex_ids(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def request_json(request: Message) -> dict[str, Any]:
    """An ExportTraceServiceRequest (protobuf) in OTLP JSON, as a JSON-ready dict."""
    return _hex_ids(MessageToDict(request))


def to_otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An ExportTraceServiceRequest for `spans`, as a JSON-ready dict."""
    return request_json(encode_spans(spans))


def any_value(value: dict[str, Any]) -> Any:
    """The Python value of an OTLP JSON AnyValue ({"stringValue": "x"} -> "x")."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])  # int64 is a string in protobuf JSON
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values", []))
    return None


def attributes(kvs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: any_value(kv.get("value", {})) for kv in kvs}
