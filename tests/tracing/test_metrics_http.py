"""/metrics as each scraper asks for it: SGLang's names (with ':') stay as they are unless
a scraper asks for another escaping."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tracing.metrics_http import metrics_response

PROMETHEUS_2 = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
PROMETHEUS_3 = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,"
                "text/plain;version=0.0.4;q=0.5")


@pytest.mark.parametrize("accept", ["", PROMETHEUS_2, PROMETHEUS_3, "text/plain;version=1.0.0"])
def test_sglangs_names_reach_every_scraper_as_they_are(accept: str) -> None:
    """Trace review 2026-12-06: to Prometheus 2's Accept (OpenMetrics, no escaping named)
    the samples came as `sglang_num_requests_total` under a `# TYPE sglang:num_requests`,
    so the parser saw two families and the dashboards' queries found nothing."""
    registry = CollectorRegistry()
    Counter("sglang:num_requests", "requests", registry=registry).inc()
    body = metrics_response(registry, accept).body
    assert isinstance(body, bytes)
    text = body.decode()
    assert "sglang:num_requests_total 1.0" in text and "sglang_num_requests" not in text
    if "openmetrics" in metrics_response(registry, accept).headers["Content-Type"]:
        families = list(text_string_to_metric_families(text))
        assert [f.name for f in families] == ["sglang:num_requests"]
