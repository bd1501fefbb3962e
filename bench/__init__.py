"""Benchmarks: the virtual-time cluster simulator and live mesh benchmarks (issue 5; not built yet)."""
