"""Observability: structured logging now; OpenTelemetry tracing and metrics build on it."""
