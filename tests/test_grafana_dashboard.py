"""deploy/grafana/ostinato-dashboard.json: a Grafana dashboard over a Prometheus datasource
variable whose every query names only metrics the services export (taken from their metric
definitions: the gateway's, planner's, workers' and the sim engine's registries)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cache.metrics import CacheMetrics
from gateway.metrics import GatewayMetrics
from ostinato.clock import ManualClock
from ostinato.config import SimEngineConfig
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from planner.metrics import PlannerMetrics
from workers.metrics import WorkerMetrics
from workers.sim.engine import RealtimeSimEngine
from workers.sim.metrics import sim_engine_registry

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "ostinato-dashboard.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
             "gauge": ("",)}


def _registries() -> list[CollectorRegistry]:
    gateway = GatewayMetrics("m")
    gateway.watch(SimpleNamespace(metrics=CacheMetrics(), index=[]),  # type: ignore[arg-type]
                  lambda: False)
    worker = WorkerMetrics("w", "m")
    listener = SimpleNamespace(stats=SimpleNamespace(batches=0, gaps=0), translator=SimpleNamespace(
        index_blocks=0, stats=SimpleNamespace(unattributed=0, unsent=0)))
    worker.watch(SimpleNamespace(running=0, kv_events=listener), kv_capacity_blocks=1)
    planner = PlannerMetrics(PlannerCore(ManualClock(), *parse_policy("fcfs+round_robin")))
    engine = sim_engine_registry(RealtimeSimEngine(SimEngineConfig(zero_cost=True)))
    return [gateway.registry, planner.registry, worker.registry, engine]


def exported_series() -> set[str]:
    """Every series name the services expose (a counter's with _total, a histogram's
    _bucket, _sum and _count)."""
    return {family.name + suffix for registry in _registries() for family in registry.collect()
            for suffix in _SUFFIXES[family.type]}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions or label names)."""
    for pattern in (r"\{[^}]*\}", r"\[[^\]]*\]", r'"[^"]*"',
                    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"):
        expr = re.sub(pattern, " ", expr)
    return set(re.findall(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()", expr))


def _panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names('histogram_quantile(0.95, sum by (le, cache) (rate('
                        'ostinato_call_duration_seconds_bucket{tenant=~"$tenant"}'
                        '[$__rate_interval])))') == {"ostinato_call_duration_seconds_bucket"}
    assert metric_names("sum(a_total) / sum by (worker) (sglang:token_usage)") == {
        "a_total", "sglang:token_usage"}


def test_dashboard_is_grafana_json_over_a_prometheus_datasource_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["title"] and board["uid"] and board["schemaVersion"] >= 30
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    exported = exported_series()
    used = {name for panel in _panels() for target in panel["targets"]
            for name in metric_names(target["expr"])}
    assert used and used <= exported, sorted(used - exported)


@pytest.mark.parametrize("name", [
    "ostinato_program_duration_seconds_bucket", "ostinato_call_duration_seconds_bucket",
    "gen_ai_server_time_to_first_token_seconds_bucket",
    "gen_ai_server_time_per_output_token_seconds_bucket", "ostinato_worker_tokens_total",
    "ostinato_planner_queue_depth", "ostinato_worker_inflight_calls", "sglang:token_usage",
    "ostinato_cache_events_total", "ostinato_tenant_tokens_total",
    "ostinato_planner_calls_rejected_total"])
def test_each_metric_group_has_a_panel(name: str) -> None:
    assert any(name in metric_names(t["expr"]) for p in _panels() for t in p["targets"])
