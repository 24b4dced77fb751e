"""The cocotb testbench for qflow designs (qflow_tb) and helpers for tests and benchmarks."""
