"""A span exporter writing OTLP JSON lines to a file (`ostinato up --trace-file PATH`).

Every service of a mesh may append to the same file: each export is one line written with
a single write() on an O_APPEND descriptor, so lines from several processes never mix.

With a size limit (telemetry.trace_file_max_mb), the file is rotated: before an export, a
file past the limit is moved to PATH.1 (replacing the one there) and a new PATH started;
`ostinato trace` reads PATH.1, then PATH. Of the processes appending to it, the one that
holds the file's lock (flock) and still finds it at PATH moves it; each of the others sees
that PATH is another file at its next export and opens that (a line it writes meanwhile
lands at the end of PATH.1, whole). Without a limit the file only grows; an outside
rotation that copies and truncates it (logrotate's copytruncate) works too, the writes
being O_APPEND.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tracing.otlp_json import to_otlp_json
from tracing.span_file import rotated_path

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT


class JsonLinesSpanExporter(SpanExporter):
    def __init__(self, path: str, max_bytes: int = 0) -> None:
        """`max_bytes`: the size past which the file is rotated; 0: never."""
        self.path = path
        self.max_bytes = max_bytes
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self._fd = os.open(path, _FLAGS, 0o644)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        line = (json.dumps(to_otlp_json(spans), separators=(",", ":")) + "\n").encode()
        try:
            with self._lock:
                if self.max_bytes > 0:
                    self._rotate()
                os.write(self._fd, line)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _is_at_path(self) -> bool:
        """Whether the file written is still the one at self.path (not moved, nor removed)."""
        own = os.fstat(self._fd)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (own.st_dev, own.st_ino)

    def _rotate(self) -> None:
        """Past max_bytes, the file moved to PATH.1 and a new one opened; the file another
        process moved so, left for the new one."""
        if self._is_at_path():
            if os.fstat(self._fd).st_size < self.max_bytes:
                return
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if self._is_at_path():  # (else another process moved it first)
                    os.replace(self.path, rotated_path(self.path))
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        fd = os.open(self.path, _FLAGS, 0o644)
        os.close(self._fd)
        self._fd = fd

    def shutdown(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
