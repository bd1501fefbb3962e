"""The environment a mesh service's process starts with (the children of `ostinato up`,
`bench live` and the soak: ostinato/mesh.py).

- Logs as JSON lines, unbuffered; no other `OSTINATO_*` variable: the mesh's config file is
  the children's one source of settings.
- gRPC's C core on its older I/O path, not the EventEngine (on by default since grpcio
  1.80): a message received through grpc.aio on the EventEngine crosses three threads (an
  EventEngine thread reads it, grpc.aio's poller thread takes its completion, the event
  loop runs the handler), each handoff a futex or eventfd wake-up. Without it, on this
  2-core machine, the gateway, planner and workers spent 6-12% less CPU a call and the
  call path's p50 at 100 calls/s fell 4-6% (two meshes side by side, one with each setting:
  docs/bench/live/results.md round 23); a unary ping-pong 0.35 -> 0.27 ms (round 21).
  gRPC reads it from the environment once, when first imported, so it is set where a
  process starts: here, and in the image (deploy/Dockerfile; a test holds it to this
  value). An operator's own `GRPC_EXPERIMENTS` wins; the SDK's callers are left as they
  are. A grpcio that no longer knows these experiments logs "Unknown experiment" and runs
  its default.
- Its code from where the parent's came (PYTHONPATH led by it), run with `python -P`: never a
  module of the directory `up` runs in that is named as one of ours (a walkthrough's
  scratch `cache.py` there was the planner's `cache`, and the mesh did not start).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

GRPC_EXPERIMENTS = "-event_engine_client,-event_engine_listener"
CODE_ROOT = str(Path(__file__).resolve().parents[1])  # where `ostinato` was imported from


def service_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` (the parent's) as a mesh service's process gets it."""
    kept = {k: v for k, v in env.items()
            if not k.startswith("OSTINATO_") or k.startswith("OSTINATO_LOG")}
    path = [CODE_ROOT, *(p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                         if p and p != CODE_ROOT)]
    return {"GRPC_EXPERIMENTS": GRPC_EXPERIMENTS, **kept, "PYTHONPATH": os.pathsep.join(path),
            "OSTINATO_LOG_JSON": "1", "PYTHONUNBUFFERED": "1"}
