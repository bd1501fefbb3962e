"""The garbage collector's one setting, in every service of the mesh (gateway, planner,
workers, sim engines; ostinato/serving.py `GrpcService.run`, workers/sim/server.py) and in
`ostinato bench planner` (bench/planner_bench.py)."""

from __future__ import annotations

import gc


def freeze_after_start() -> None:
    """Once started (its modules imported, its state restored), the process's objects go to
    the permanent generation, which no collection traverses again. A full collection then
    walks what came since, not the ~90,000 objects of the service's modules and state
    (about 18 ms each for the planner on the dev machine; docs/bench/planner/results.md):
    a pause every call behind it waits out.
    Thresholds stay CPython's defaults. Start-up objects that later become cyclic garbage
    are never freed: they are few, and made once."""
    gc.collect()
    gc.freeze()
