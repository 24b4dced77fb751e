"""Benchmarks: speed figures live here, not in timed tests. `make bench` runs them all."""
