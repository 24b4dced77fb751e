"""The cocotb testbench for every qflow design (``qflow_tb``, ``packing``) and its HDL harness (package data)."""
