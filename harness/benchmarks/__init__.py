"""Benchmarks: scripts that measure and report numbers (run with ``python -m harness.benchmarks.<name>``)."""
