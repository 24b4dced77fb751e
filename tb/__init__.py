"""Helpers for tests and benchmarks (random IRs); the testbench itself is the package ``flow.tb``."""
