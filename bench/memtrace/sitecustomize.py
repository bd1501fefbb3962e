"""Debug-only memory tracing for the soak's child processes (off unless MEMTRACE_DIR is set).

`ostinato bench soak --memtrace DIR` puts this directory first on the children's PYTHONPATH,
so Python imports this file at start-up in every mesh process. With MEMTRACE_DIR set, a
process whose command line names one of MEMTRACE_SERVICES (default "worker,sim-engine")
starts tracemalloc (MEMTRACE_FRAMES frames, default 8; 0: no tracing, only the sizes below,
undistorted by tracing) MEMTRACE_START_S seconds after it
started (default 20: start-up's imports untraced, so it becomes ready in time) and from then
on, every MEMTRACE_EVERY_S seconds (default 10), writes to DIR:
- `<service>-<pid>-<n>.snap`: a tracemalloc snapshot (bench/memtrace/compare.py diffs them);
- one JSON line in `<service>-<pid>.sizes.jsonl`: the traced size, VmRSS, Python's allocated
  blocks, glibc's mallinfo2 (in use, free, mmapped) and, for every live
  instance of the classes in MEMTRACE_CLASSES, len() of each of its sized attributes (the
  bounded structures: caches, recent-report windows), found through the gc.
Tracing slows the process (every allocation is recorded): use it to find what grows, not to
measure speed or the RSS itself.
"""

from __future__ import annotations

import os

if os.environ.get("MEMTRACE_DIR"):
    import sys

    _argv = " ".join(sys.argv + getattr(sys, "orig_argv", []))
    _service = next((s for s in os.environ.get("MEMTRACE_SERVICES", "worker,sim-engine").split(",")
                     if s and f" {s} " in f" {_argv} "), "")
    if _service:
        import gc
        import json
        import threading
        import time
        import tracemalloc
        from pathlib import Path

        _dir = Path(os.environ["MEMTRACE_DIR"])
        _dir.mkdir(parents=True, exist_ok=True)
        _classes = set(filter(None, os.environ.get(
            "MEMTRACE_CLASSES", "KvEventTranslator,WorkerService,RadixCache,SimEngineCore,"
            "RealtimeSimEngine,ZmqKvPublisher").split(",")))
        def _sizes() -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for obj in gc.get_objects():
                name = type(obj).__name__
                if name not in _classes:
                    continue
                row = out.setdefault(f"{name}@{id(obj):x}", {})
                for attr, value in vars(obj).items():
                    try:
                        row[attr] = len(value)
                    except TypeError:
                        continue
            return out

        def _mallinfo() -> dict[str, int]:
            """glibc's heap: in use (uordblks), free inside it (fordblks), mmapped (hblkhd)."""
            import ctypes

            class _Info(ctypes.Structure):
                _fields_ = [(f, ctypes.c_size_t) for f in (
                    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                    "uordblks", "fordblks", "keepcost")]

            try:
                fn = ctypes.CDLL("libc.so.6").mallinfo2
            except (OSError, AttributeError):
                return {}
            fn.restype = _Info
            info = fn()
            return {f: getattr(info, f) for f in ("arena", "hblkhd", "uordblks", "fordblks")}

        def _dump_loop() -> None:
            every = float(os.environ.get("MEMTRACE_EVERY_S", "10"))
            pid, n, t0 = os.getpid(), 0, time.monotonic()
            time.sleep(float(os.environ.get("MEMTRACE_START_S", "20")))
            frames = int(os.environ.get("MEMTRACE_FRAMES", "8"))
            if frames:
                tracemalloc.start(frames)
            while True:
                time.sleep(every)
                n += 1
                if frames:
                    tracemalloc.take_snapshot().dump(
                        str(_dir / f"{_service}-{pid}-{n:04d}.snap"))
                traced, peak = tracemalloc.get_traced_memory()
                rss = next((int(ln.split()[1]) for ln in Path("/proc/self/status").read_text()
                            .splitlines() if ln.startswith("VmRSS:")), 0)
                line = {"n": n, "t": round(time.monotonic() - t0, 1), "traced": traced,
                        "peak": peak, "rss_kib": rss, "py_blocks": sys.getallocatedblocks(),
                        "malloc": _mallinfo(), "sizes": _sizes()}
                with open(_dir / f"{_service}-{pid}.sizes.jsonl", "a") as f:
                    f.write(json.dumps(line) + "\n")

        threading.Thread(target=_dump_loop, name="memtrace", daemon=True).start()
